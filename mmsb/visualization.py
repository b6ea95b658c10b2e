# Copyright (c) mmsb contributors. All rights reserved.
"""Pictures of what spatial bias learns: its bias maps over an image.

:func:`collect_bias_maps` hooks every :class:`SpatialBias` of a model and
returns the maps it produced (upsampled to the size of the conv output they
join, as they enter Eq. 1); :func:`draw_bias_maps` overlays them on the image
with mmengine's ``Visualizer.draw_featmap`` and tiles them into one picture:
one row per SB block, one column per bias map.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from mmengine.visualization import Visualizer

from mmsb.models.layers import SpatialBias


@torch.no_grad()
def collect_bias_maps(model: torch.nn.Module,
                      inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Run ``model(inputs)`` and return {SB module name: maps (B,K,P,P)}."""
    maps = OrderedDict()
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, SpatialBias):
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: maps.__setitem__(
                    name, o.detach().float().cpu())))
    if not handles:
        raise ValueError(f'{type(model).__name__} has no SpatialBias module')
    try:
        model(inputs)
    finally:
        for h in handles:
            h.remove()
    return maps


def draw_bias_maps(image: np.ndarray,
                   maps: Dict[str, torch.Tensor],
                   blocks: Optional[Sequence[str]] = None,
                   cell: int = 160,
                   alpha: float = 0.5) -> np.ndarray:
    """Tile the bias maps of one image (RGB uint8 HxWx3) into a picture.

    Args:
        image: The input image, RGB.
        maps: Output of :func:`collect_bias_maps` (batch index 0 is drawn).
        blocks: Names to draw (default: all, in network order).
        cell: Side of each tile in pixels.
        alpha: Heatmap opacity.

    Returns:
        np.ndarray: RGB picture; row labels name the block.
    """
    names = list(blocks) if blocks is not None else list(maps)
    unknown = [n for n in names if n not in maps]
    if unknown:
        raise KeyError(f'no bias maps for {unknown}; available: {list(maps)}')
    h, w = image.shape[:2]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    label_w = 150
    rows = []
    for name in names:
        m = maps[name][0]                               # (K, P, P)
        tiles = [small]
        for k in range(m.shape[0]):
            up = torch.nn.functional.interpolate(
                m[k][None, None], size=small.shape[:2], mode='bilinear',
                align_corners=False)[0]
            tiles.append(
                Visualizer.draw_featmap(
                    up, small, channel_reduction='squeeze_mean',
                    alpha=alpha))
        row = np.concatenate(tiles, axis=1)
        label = np.full((row.shape[0], label_w, 3), 255, np.uint8)
        for i, part in enumerate(name.split('.')[:3]):
            cv2.putText(label, part, (6, 22 + 20 * i),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                        cv2.LINE_AA)
        rows.append(np.concatenate([label, row], axis=1))
    return np.concatenate(rows, axis=0)


# ----------------------------------------------------------------- Grad-CAM
def load_model(cfg, checkpoint: Optional[str] = None) -> torch.nn.Module:
    """Build ``cfg.model`` in its scope (no pretrained download) and load
    ``checkpoint``; returns the model in eval mode on the CPU."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        # as the Runner does: mmpretrain configs keep it at the top level
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg['backbone'] = dict(model_cfg['backbone'])
        model_cfg['backbone'].pop('init_cfg', None)
    model = MODELS.build(model_cfg)
    if checkpoint:
        ckpt = load_checkpoint(model, checkpoint, map_location='cpu',
                               strict=True)
        meta = (ckpt.get('meta') or {}).get('dataset_meta')
        if meta:  # class names, as the Runner saved them
            model.dataset_meta = meta
    return model.eval()


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
    from mmsb.models.backbones.sb_resnet import SBBottleneck
    return [n for n, m in model.named_modules()
            if isinstance(m, SBBottleneck) and m.spatial_bias is not None]


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
