# Copyright (c) mmsb contributors. All rights reserved.
"""Shortcut probes: can the label be read without the ability the task is
meant to test?

    python tools/analysis/shortcut_probes.py configs/demo/resnet20-cifar_1xb32-2400it_pathfinder-32.py
    python tools/analysis/shortcut_probes.py configs/evidence/fcn_r20-cifar_1xb8-600it_context-spatial-112.py

Each probe is a small classifier (an MLP with two hidden layers of 64 units,
full-batch AdamW, standardised inputs) trained on the training split and
scored on the validation split, on one cue:

- ``markers``: the two marker centres (ordered by x) and their distance,
  read from the generator's ``meta-<split>.json``: where the markers are;
- ``pooled``: the image average-pooled to P x P, P the ``pooled_size`` of
  the SB config: what the spatial-bias branch sees of its input, without
  any learnt feature;
- ``ink``: the total ink of the image.

A probe well above chance means the task measures that cue, not path
following. The evidence tool runs them and puts them beside the models.

On the context tasks (:mod:`mmsb.data.context`, a segmentation config) the
probes classify objects (a disc's class, 50% chance), read from the
generator's ``meta-<split>.json``:

- ``object``: the disc's own pixels (its box, resized to 12 x 12);
- ``window``: what the plain network can see of it: its box widened by the
  reach ``(field - 1) / 2`` of the config's receptive field on every side
  (the union of its pixels' fields; zeros outside the image), resized to
  16 x 16;
- ``coords``: where it is and where the keys are, without their colours:
  the disc's centre and radius and both key centres.

Each is scored on all validation objects and on those within and beyond the
field; beyond it, all three must be near chance on the global and spatial
rules.
"""
import argparse
import json
import os.path as osp

import cv2
import numpy as np
import torch
from mmengine.config import DictAction
from torch import nn

PROBES = ('markers', 'pooled', 'ink')
CONTEXT_PROBES = ('object', 'window', 'coords')


def load_split(root, split, pooled_size):
    """Features of every probe and the labels of one split."""
    meta_file = osp.join(root, f'meta-{split}.json')
    if not osp.isfile(meta_file):
        raise FileNotFoundError(
            f'{meta_file} not found: the probes read the marker positions '
            f'the Pathfinder generator writes there (regenerate the data)')
    with open(meta_file) as f:
        meta = json.load(f)
    markers, pooled, ink, labels = [], [], [], []
    for rec in meta:
        img = cv2.imread(osp.join(root, rec['file']), cv2.IMREAD_GRAYSCALE)
        (px, py), (qx, qy) = rec['markers']
        markers.append([px, py, qx, qy, np.hypot(px - qx, py - qy)])
        pooled.append(cv2.resize(img.astype(np.float32),
                                 (pooled_size, pooled_size),
                                 interpolation=cv2.INTER_AREA).ravel())
        ink.append([img.sum() / 255.0])
        labels.append(rec['label'])
    feats = dict(markers=np.array(markers), pooled=np.array(pooled),
                 ink=np.array(ink))
    return feats, np.array(labels)


def fit_probe(x_train, y_train, x_val, y_val, seed=0, epochs=400,
              return_pred=False):
    """Validation accuracy (%) of a small MLP trained on one cue (or, with
    ``return_pred``, its predictions)."""
    g = torch.Generator().manual_seed(seed)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xt = torch.tensor((x_train - mean) / std, dtype=torch.float32)
    xv = torch.tensor((x_val - mean) / std, dtype=torch.float32)
    yt = torch.tensor(y_train)
    net = nn.Sequential(nn.Linear(xt.shape[1], 64), nn.ReLU(),
                        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) /
                    (p.shape[-1] ** 0.5 if p.dim() > 1 else 10))
    opt = torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=1e-3)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    with torch.no_grad():
        pred = net(xv).argmax(1).numpy()
    if return_pred:
        return pred
    return float((pred == y_val).mean() * 100)


def run_probes(root, pooled_size, seed=0, epochs=400):
    """``{probe: validation top-1 (%)}`` for the Pathfinder data in
    ``root``."""
    train, y_train = load_split(root, 'train', pooled_size)
    val, y_val = load_split(root, 'val', pooled_size)
    return {name: fit_probe(train[name], y_train, val[name], y_val, seed,
                            epochs)
            for name in PROBES}


def config_probes(config, cfg_options=None, seed=0):
    """Probes for a Pathfinder config: its data (generated if missing) and
    the ``pooled_size`` of its SB backbone (defaults of SBResNetCIFAR when
    the config has none)."""
    from mmengine.config import Config

    from mmsb.data.demo import generate_if_missing
    from mmsb.models import SBResNetCIFAR
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    ds = cfg.train_dataloader.dataset
    generate_if_missing('pathfinder', ds.data_root,
                        **(ds.get('demo_cfg') or {}))
    sb_cfg = cfg.model.backbone.get('sb_cfg') or {}
    pooled = sb_cfg.get('pooled_size',
                        SBResNetCIFAR.default_sb_cfg['pooled_size'])
    return dict(pooled_size=pooled,
                **run_probes(ds.data_root, pooled, seed=seed))


def context_features(root, split, field):
    """Features of every context probe, labels (0: ``a``, 1: ``b``) and
    gaps of the objects of one split of a context data set."""
    meta_file = osp.join(root, f'meta-{split}.json')
    if not osp.isfile(meta_file):
        raise FileNotFoundError(f'{meta_file} not found: the probes read '
                                f'the objects the context generator writes '
                                f'there (regenerate the data)')
    with open(meta_file) as f:
        meta = json.load(f)
    sub = 'training' if split == 'train' else 'validation'
    reach = (field - 1) // 2
    feats = {k: [] for k in CONTEXT_PROBES}
    labels, gaps = [], []
    for rec in meta:
        img = cv2.imread(osp.join(root, 'images', sub, rec['file'] + '.png'))
        padded = cv2.copyMakeBorder(img, reach, reach, reach, reach,
                                    cv2.BORDER_CONSTANT, value=0)
        keys = [c for k in rec['keys'] for c in k['centre']]
        for obj in rec['objects']:
            x0, y0, x1, y1 = obj['box']
            own = img[y0:y1 + 1, x0:x1 + 1].astype(np.float32)
            feats['object'].append(cv2.resize(
                own, (12, 12), interpolation=cv2.INTER_AREA).ravel())
            # box +- reach in padded coordinates: x0 - reach + reach = x0
            win = padded[y0:y1 + 2 * reach + 1,
                         x0:x1 + 2 * reach + 1].astype(np.float32)
            feats['window'].append(cv2.resize(
                win, (16, 16), interpolation=cv2.INTER_AREA).ravel())
            feats['coords'].append(obj['centre'] + [obj['radius']] + keys)
            labels.append(obj['label'] - 1)
            gaps.append(obj['gap'])
    return ({k: np.array(v) for k, v in feats.items()}, np.array(labels),
            np.array(gaps))


def run_context_probes(root, field, seed=0, epochs=400):
    """``{probe: {'all', 'within', 'beyond': validation accuracy (%)}}``
    for the context data in ``root`` and a receptive field of ``field``
    pixels, and the number of validation objects within and beyond it."""
    train, y_train, _ = context_features(root, 'train', field)
    val, y_val, gaps = context_features(root, 'val', field)
    beyond = gaps > (field - 1) / 2
    out = dict(n_within=int((~beyond).sum()), n_beyond=int(beyond.sum()))
    for name in CONTEXT_PROBES:
        pred = fit_probe(train[name], y_train, val[name], y_val, seed,
                         epochs, return_pred=True)
        right = pred == y_val
        out[name] = {'all': float(right.mean() * 100),
                     'within': float(right[~beyond].mean() * 100),
                     'beyond': float(right[beyond].mean() * 100)}
    return out


def context_config(config, cfg_options=None):
    """A context config (with ``cfg_options``), its data generated if
    missing, and the ``field`` of its ``ContextObjectAccuracy``."""
    from mmengine.config import Config

    from mmsb.data.demo import generate_if_missing
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    ds = cfg.train_dataloader.dataset
    generate_if_missing('context', ds.data_root,
                        **(ds.get('demo_cfg') or {}))
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) \
        else [cfg.val_evaluator]
    fields = [e['field'] for e in evaluators
              if e['type'] == 'ContextObjectAccuracy']
    if not fields:
        raise ValueError(f'{config}: no ContextObjectAccuracy in '
                         f'val_evaluator, so no receptive field to probe')
    return cfg, fields[0]


def config_context_probes(config, cfg_options=None, seed=0):
    """Context probes for a context config: its validation data (generated
    if missing) and the ``field`` of its ``ContextObjectAccuracy``."""
    cfg, field = context_config(config, cfg_options)
    return dict(field=field, **run_context_probes(
        cfg.train_dataloader.dataset.data_root, field, seed=seed))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='a Pathfinder config (configs/demo) or a '
                   'context config (configs/evidence)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, as tools/train.py')
    args = p.parse_args(argv)
    if 'context' in osp.basename(args.config):
        res = config_context_probes(args.config, args.cfg_options,
                                    seed=args.seed)
    else:
        res = config_probes(args.config, args.cfg_options, seed=args.seed)
    print(json.dumps(res))


if __name__ == '__main__':
    main()
