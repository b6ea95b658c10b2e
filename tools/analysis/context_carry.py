# Copyright (c) mmsb contributors. All rights reserved.
"""What a trained context model carries to a disc beyond its receptive field.

    python tools/analysis/context_carry.py \\
        configs/evidence/fcn_sb-r20-cifar_1xb8-600it_context-global-112.py \\
        work_dirs/evidence/ctx-global/sb-seed0/iter_600.pth [--out carry.json]

The evidence runs score what a model *predicts*; this asks what its features
*hold*. It runs the model (mmseg's ``inference_model``) over the training and
validation images of the config's context data and reads, with forward
hooks, per disc (the mean over the disc's pixels, each map resized
bilinearly to the image):

- ``features``: the classifier's input (the decode head's ``conv_seg``), what
  the 1x1 classifier reads;
- ``sb``: the bias maps of every ``SpatialBias`` in the backbone (K maps of
  P x P each, before they join their convolution), where the model has any;
- ``sb.<block>``: those of one block.

Each is scored as the shortcut probes are (``shortcut_probes.fit_probe``: a
small MLP trained on the training discs, validation accuracy %, chance 50),
on all validation discs and on those within and beyond the field. A probe
far above the model's own accuracy beyond the field means the information
reaches the disc and the classifier does not use it (a learning problem);
a probe at chance means it does not reach it.
"""
import argparse
import json
import os.path as osp
import sys

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from shortcut_probes import context_config, fit_probe  # noqa: E402


def disc_means(maps, objects, size, padded=None):
    """(objects, C) means of ``maps`` (C, h, w) over each disc's pixels.

    The maps cover the network's input: the image of ``size`` (h, w), padded
    at the bottom and right to ``padded`` when the data preprocessor pads
    it. They are resized bilinearly to the input and cropped to the image.
    """
    padded = tuple(padded or size)
    if padded[0] < size[0] or padded[1] < size[1]:
        raise ValueError(f'padded size {padded} is smaller than the image '
                         f'{tuple(size)}')
    up = F.interpolate(maps[None].float(), size=padded, mode='bilinear',
                       align_corners=False)[0].numpy()
    up = up[:, :size[0], :size[1]]
    out = []
    for obj in objects:
        mask = np.zeros(size, np.uint8)
        cx, cy = obj['centre']
        cv2.circle(mask, (int(round(cx)), int(round(cy))),
                   max(int(round(obj['radius'])), 1), 1, -1)
        sel = mask.astype(bool)
        out.append(up[:, sel].mean(axis=1))
    return np.stack(out)


def collect(model, root, split, batch_size=16):
    """Per-disc features of every hooked map, labels and gaps of a split."""
    from mmseg.apis import inference_model

    from mmsb.models.layers import SpatialBias
    with open(osp.join(root, f'meta-{split}.json')) as f:
        meta = json.load(f)
    sub = 'training' if split == 'train' else 'validation'
    captured = {}
    hooks = [model.decode_head.conv_seg.register_forward_hook(
        lambda m, i, o: captured.__setitem__('features', i[0].detach()))]
    sb_names = []
    for name, module in model.backbone.named_modules():
        if isinstance(module, SpatialBias):
            key = 'sb.' + name.rsplit('.spatial_bias', 1)[0]
            sb_names.append(key)
            hooks.append(module.register_forward_hook(
                lambda m, i, o, key=key: captured.__setitem__(key,
                                                              o.detach())))
    # the size of the network's input, as the data preprocessor padded it
    padded = {}
    hooks.append(model.backbone.register_forward_pre_hook(
        lambda m, args: padded.__setitem__('size', tuple(args[0].shape[-2:]))))
    feats = {}
    labels, gaps = [], []
    try:
        for start in range(0, len(meta), batch_size):
            recs = meta[start:start + batch_size]
            paths = [osp.join(root, 'images', sub, r['file'] + '.png')
                     for r in recs]
            with torch.no_grad():
                inference_model(model, paths)
            for b, rec in enumerate(recs):
                size = cv2.imread(paths[b]).shape[:2]
                for key, maps in captured.items():
                    feats.setdefault(key, []).append(disc_means(
                        maps[b], rec['objects'], size, padded['size']))
                labels += [o['label'] - 1 for o in rec['objects']]
                gaps += [o['gap'] for o in rec['objects']]
    finally:
        for h in hooks:
            h.remove()
    feats = {k: np.concatenate(v) for k, v in feats.items()}
    if sb_names:
        feats['sb'] = np.concatenate([feats[k] for k in sb_names], axis=1)
    return feats, np.array(labels), np.array(gaps)


def carry(config, checkpoint, seed=0, epochs=400, device='cpu',
          cfg_options=None):
    """``{'field', 'n_within', 'n_beyond', 'probes': {name: {'all',
    'within', 'beyond'}}}`` for a context config and its checkpoint."""
    from mmengine.runner import load_checkpoint
    from mmseg.apis import init_model
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} not found')
    cfg, field = context_config(config, cfg_options)
    ds = cfg.train_dataloader.dataset
    # the weights alone: init checkpoints (work_dirs/evidence/<task>/init)
    # carry no dataset meta, which init_model would ask for
    model = init_model(cfg, None, device=device)
    load_checkpoint(model, checkpoint, map_location=device)
    train, y_train, _ = collect(model, ds.data_root, 'train')
    val, y_val, gaps = collect(model, ds.data_root, 'val')
    beyond = gaps > (field - 1) / 2
    out = dict(config=config, checkpoint=checkpoint, field=field,
               n_within=int((~beyond).sum()), n_beyond=int(beyond.sum()),
               probes={})
    for name in sorted(val):
        pred = fit_probe(train[name], y_train, val[name], y_val, seed,
                         epochs, return_pred=True)
        right = pred == y_val
        out['probes'][name] = dict(
            dims=int(val[name].shape[1]),
            all=float(right.mean() * 100),
            within=float(right[~beyond].mean() * 100),
            beyond=float(right[beyond].mean() * 100))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='a context config (configs/evidence)')
    p.add_argument('checkpoint')
    p.add_argument('--seed', type=int, default=0, help='the probes\' seed')
    p.add_argument('--out', default=None, help='also write the JSON here')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, as tools/train.py')
    args = p.parse_args(argv)
    res = carry(args.config, args.checkpoint, seed=args.seed,
                cfg_options=args.cfg_options)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=1)
    print(json.dumps(res))


if __name__ == '__main__':
    main()
