# Copyright (c) mmsb contributors. All rights reserved.
"""Pictures of what spatial bias learns: its bias maps over an image.

:func:`collect_bias_maps` hooks every :class:`SpatialBias` of a model and
returns the maps it produced (upsampled to the size of the conv output they
join, as they enter Eq. 1); :func:`draw_bias_maps` overlays them on the image
with mmengine's ``Visualizer.draw_featmap`` and tiles them into one picture:
one row per SB block, one column per bias map. Grad-CAM, which needs the
``grad-cam`` extra, is in ``tools/analysis/visualize_cam.py``.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

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

