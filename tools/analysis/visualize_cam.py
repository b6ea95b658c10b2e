# Copyright (c) mmsb contributors. All rights reserved.
"""Grad-CAM of the convolution branch and the spatial-bias branch of SB
blocks, side by side over the input (paper Fig. 2 and Fig. 4).

    python tools/analysis/visualize_cam.py CONFIG CHECKPOINT IMAGE [IMAGE ...] \\
        [--blocks backbone.layer1.1 backbone.layer2.1] [--target N] [--out cam.png]

For mmpretrain classifiers (the target is a class score) and mmseg
segmentors (the target is a class over the pixels predicted as it). Images
are read and normalised as the config's pipeline and data_preprocessor do.
Needs the ``grad-cam`` package (``pip install "mmsb[cam]"``). An existing
output file is not overwritten unless --force.

:func:`sb_gradcam` and :func:`draw_gradcam_grid` are what the command runs;
``tools/analysis/evidence.py --cam`` imports them to draw its picture.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch


class _TensorOutput(torch.nn.Module):
    """``model(x, mode='tensor')``: logits of a classifier, per-pixel
    logits of a segmentor; what grad-cam differentiates."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x, mode='tensor')
        return out[0] if isinstance(out, (list, tuple)) else out


def sb_block_names(model: torch.nn.Module) -> List[str]:
    """Names of the model's bottlenecks that carry a spatial-bias branch."""
    from mmsb.models.backbones.sb_resnet import sb_blocks
    return [name for name, _ in sb_blocks(model)]


def _branches(model: torch.nn.Module, block: str):
    """(conv branch, spatial-bias branch) modules of an SB block."""
    names = sb_block_names(model)
    if block not in names:
        raise KeyError(f'{block!r} is not a block with spatial bias; SB '
                       f'blocks of this model: {names}')
    module = model.get_submodule(block)
    conv = module.conv1 if module.sb_position == 'conv1' else module.conv2
    return conv, module.spatial_bias


def sb_gradcam(model: torch.nn.Module,
               image: np.ndarray,
               blocks: Sequence[str],
               target: Optional[int] = None) -> Dict[str, dict]:
    """Grad-CAM of the convolution branch and the spatial-bias branch of
    SB blocks, as in the paper's Fig. 2 and Fig. 4.

    The convolution branch is the block's conv output that the bias maps
    join (``conv2``, or ``conv1`` with ``sb_position='conv1'``); the
    spatial-bias branch is the :class:`SpatialBias` output, its K bias maps
    of P x P. Each CAM weighs a branch's channels by the mean gradient of the
    target score (Grad-CAM, Selvaraju et al. 2017, via the ``grad-cam``
    package) and is resized to the image.

    Args:
        model: An mmpretrain classifier or mmseg segmentor (eval mode).
        image: The image as the config's pipeline loads it (BGR uint8 HxWx3,
            ``mmcv.imread``); the model's own data_preprocessor normalises
            it.
        blocks: Names of SB blocks, e.g. ``'backbone.layer1.1'``.
        target: Class to explain (default: the predicted class; for a
            segmentor, the most frequent predicted non-background class,
            over the pixels predicted as it).

    Returns:
        dict: block name -> dict(conv=(H, W), sb=(H, W)) float arrays in
        [0, 1], and the key ``'target'``: the class explained.
    """
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import (
            ClassifierOutputTarget, SemanticSegmentationTarget)
    except ImportError as e:
        raise ImportError('Grad-CAM needs the grad-cam package: pip install '
                          '"mmsb[cam]" (or grad-cam ttach scikit-learn)') \
            from e
    data = model.data_preprocessor(
        dict(inputs=[torch.from_numpy(np.ascontiguousarray(
            image.transpose(2, 0, 1)))]), False)
    x = data['inputs'].float()
    net = _TensorOutput(model).eval()
    with torch.no_grad():
        out = net(x)
    if out.dim() == 2:  # classifier logits (1, C)
        target = int(out.argmax(1)) if target is None else int(target)
        targets = [ClassifierOutputTarget(target)]
    else:               # segmentor logits (1, C, h, w)
        pred = out.argmax(1)[0].numpy()
        if target is None:
            counts = np.bincount(pred.ravel(), minlength=out.shape[1])
            counts[0] = 0 if counts[1:].sum() else counts[0]
            target = int(counts.argmax())
        targets = [SemanticSegmentationTarget(
            int(target), (pred == target).astype(np.float32))]
    cams = {'target': target}
    for block in blocks:
        cams[block] = {}
        for kind, layer in zip(('conv', 'sb'), _branches(model, block)):
            with GradCAM(model=net, target_layers=[layer]) as cam:
                cams[block][kind] = cam(input_tensor=x, targets=targets)[0]
    return cams


def draw_gradcam_grid(rows, blocks: Sequence[str],
                      classes: Optional[Sequence[str]] = None,
                      cell: int = 128):
    """Tile Grad-CAM results: one row per image (the image, then the conv
    and SB CAM of each block over it), a header naming the columns.

    Args:
        rows: (label, RGB uint8 image, :func:`sb_gradcam` result) per image.
        blocks: The block names, in column order.
        classes: Class names, to name the explained class (default: its
            index).
        cell: Side of a tile in pixels.

    Returns:
        np.ndarray: RGB uint8 picture.
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image
    label_w, head_h = 190, 34
    header = [np.full((head_h, label_w, 3), 255, np.uint8)]
    for text in ['image'] + [f'{b.replace("backbone.", "")} {k}'
                             for b in blocks for k in ('conv', 'SB')]:
        tile = np.full((head_h, cell, 3), 255, np.uint8)
        cv2.putText(tile, text, (4, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (0, 0, 0), 1, cv2.LINE_AA)
        header.append(tile)
    lines = [np.concatenate(header, 1)]
    for label, image, cams in rows:
        small = cv2.resize(image, (cell, cell),
                           interpolation=cv2.INTER_NEAREST)
        base = small.astype(np.float32) / 255
        tiles = [small]
        for block in blocks:
            for kind in ('conv', 'sb'):
                cam = cv2.resize(cams[block][kind], (cell, cell),
                                 interpolation=cv2.INTER_LINEAR)
                tiles.append(show_cam_on_image(base, cam, use_rgb=True,
                                               image_weight=0.55))
        text = np.full((cell, label_w, 3), 255, np.uint8)
        target = cams['target']
        if classes is not None and 0 <= target < len(classes):
            target = classes[target]
        for i, part in enumerate(
                [label[:26], label[26:52], f'explains: {target}']):
            cv2.putText(text, part, (6, 24 + 22 * i),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                        cv2.LINE_AA)
        lines.append(np.concatenate([text] + tiles, 1))
    return np.concatenate(lines, 0)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('images', nargs='+')
    p.add_argument('--blocks', nargs='+', default=None,
                   help='SB blocks (default: the last SB block of each stage)')
    p.add_argument('--target', type=int, default=None,
                   help='class to explain (default: the prediction)')
    p.add_argument('--size', type=int, default=None,
                   help='resize the longer image side to this first')
    p.add_argument('--out', default='cam.png')
    p.add_argument('--force', action='store_true')
    args = p.parse_args(argv)
    for path, what in [(args.config, 'config'),
                       (args.checkpoint, 'checkpoint')] + \
            [(i, 'image') for i in args.images]:
        if not osp.isfile(path):
            sys.exit(f'error: {what} not found: {path}')
    if osp.exists(args.out) and not args.force:
        sys.exit(f'error: {args.out} exists; pass --force to overwrite it')

    import mmcv
    from mmengine.config import Config

    from mmsb.apis import load_model
    cfg = Config.fromfile(args.config)
    if cfg.get('default_scope') not in ('mmpretrain', 'mmseg'):
        sys.exit(f'error: {args.config}: Grad-CAM here explains classifiers '
                 f'(mmpretrain) and segmentors (mmseg); default_scope is '
                 f'{cfg.get("default_scope")!r}')
    try:
        model = load_model(cfg, args.checkpoint)
        blocks = args.blocks or _last_sb_blocks(model)
        rows = []
        for path in args.images:
            img = mmcv.imread(path)
            if args.size:
                img = mmcv.imrescale(img, (args.size, args.size))
            cams = sb_gradcam(model, img, blocks, target=args.target)
            rows.append((osp.basename(path), mmcv.bgr2rgb(img), cams))
    except (KeyError, ValueError, RuntimeError, ImportError) as e:
        sys.exit(f'error: {e}')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(draw_gradcam_grid(rows, blocks)), args.out)
    print(f'wrote {args.out}: {len(rows)} image(s) x {len(blocks)} SB '
          f'block(s), conv and SB branch each')


def _last_sb_blocks(model):
    last = {name.rsplit('.', 1)[0]: name for name in sb_block_names(model)}
    return list(last.values())


if __name__ == '__main__':
    main()
