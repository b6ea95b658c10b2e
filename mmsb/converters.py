# Copyright (c) mmsb contributors. All rights reserved.
"""Convert the authors' released SB-ResNet checkpoints into mmsb's layout.

The authors' models (timm-registered ``sb_resnet50``, torchvision-style
ResNet) name the branch ``layerX.Y.SB`` with ``feature_reduction.0`` (1x1
conv), ``feature_reduction.1`` (BN) and ``sb_conv`` (the 1-D conv), widen
``bn2``/``conv3`` by the bias channels and end in ``fc``. mmsb names the same
tensors ``layerX.Y.spatial_bias.{reduce,bn,mix}``; everything else already
matches mmdet's ResNet naming.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

_SB_RENAMES = (
    (re.compile(r'^(layer\d+\.\d+)\.SB\.feature_reduction\.0\.(.+)$'),
     r'\1.spatial_bias.reduce.\2'),
    (re.compile(r'^(layer\d+\.\d+)\.SB\.feature_reduction\.1\.(.+)$'),
     r'\1.spatial_bias.bn.\2'),
    (re.compile(r'^(layer\d+\.\d+)\.SB\.sb_conv\.(.+)$'),
     r'\1.spatial_bias.mix.\2'),
)
_RESNET_KEY = re.compile(
    r'^(conv1\.weight|bn1\.(weight|bias|running_mean|running_var|'
    r'num_batches_tracked)|layer\d+\.\d+\.(conv\d|bn\d|downsample\.\d)\.'
    r'(weight|bias|running_mean|running_var|num_batches_tracked))$')


def unwrap_state_dict(ckpt) -> Dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint (``state_dict``/``model`` nesting,
    DataParallel ``module.`` prefixes removed)."""
    sd = ckpt
    for key in ('state_dict', 'model', 'state_dict_ema'):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not sd:
        raise ValueError('the checkpoint holds no state dict')
    out = OrderedDict()
    for k, v in sd.items():
        out[k[len('module.'):] if k.startswith('module.') else k] = v
    return out


def convert_official_sb_resnet(
        state_dict: Dict[str, torch.Tensor],
        with_head: bool = True) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Map the authors' keys to mmsb's.

    Args:
        state_dict: The authors' state dict (see :func:`unwrap_state_dict`).
        with_head: True: mmpretrain ImageClassifier layout (``backbone.*``,
            ``head.fc.*``). False: bare backbone for mmdet/mmseg (``fc``
            dropped).

    Returns:
        (converted state dict, backbone config inferred from the tensors:
        depth, sb_stages and sb_cfg).
    """
    converted = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        new = None
        for pattern, repl in _SB_RENAMES:
            if pattern.match(key):
                new = pattern.sub(repl, key)
                break
        if new is None and _RESNET_KEY.match(key):
            new = key
        if new is None and key.startswith('fc.'):
            if with_head:
                converted['head.' + key] = value
            continue
        if new is None:
            unknown.append(key)
            continue
        converted[('backbone.' if with_head else '') + new] = value
    if unknown:
        raise ValueError(
            f'{len(unknown)} key(s) are not part of an SB-ResNet checkpoint: '
            f'{unknown[:8]}{" ..." if len(unknown) > 8 else ""}')
    return converted, infer_backbone_cfg(state_dict)


def infer_backbone_cfg(state_dict: Dict[str, torch.Tensor]) -> dict:
    """SBResNet arguments that reproduce the authors' model."""
    blocks = {}
    for key in state_dict:
        m = re.match(r'^layer(\d+)\.(\d+)\.conv1\.weight$', key)
        if m:
            stage = int(m.group(1))
            blocks[stage] = max(blocks.get(stage, 0), int(m.group(2)) + 1)
    if not blocks:
        raise ValueError('no ResNet blocks (layerX.Y.conv1.weight) found')
    num_stages = max(blocks)
    counts = tuple(blocks.get(i, 0) for i in range(1, num_stages + 1))
    depths = {(2, 2, 2, 2): 26, (3, 4, 6, 3): 50, (3, 4, 23, 3): 101,
              (3, 8, 36, 3): 152}
    sb_stages = tuple(
        any(k.startswith(f'layer{i}.') and '.SB.' in k for k in state_dict)
        for i in range(1, num_stages + 1))
    cfg = dict(type='SBResNet', depth=depths.get(counts), sb_stages=sb_stages)
    mix = next((v for k, v in state_dict.items()
                if k.endswith('.SB.sb_conv.weight')), None)
    red = next((v for k, v in state_dict.items()
                if k.endswith('.SB.feature_reduction.0.weight')), None)
    if mix is not None and red is not None:
        positions, _, kernel = mix.shape
        side = int(round(math.sqrt(positions)))
        reduced = red.shape[0]
        cfg['sb_cfg'] = dict(
            num_bias=reduced - kernel + 1,
            kernel_size=int(kernel),
            pooled_size=side)
    if cfg['depth'] is None:
        cfg['type'] = 'SBResNetCIFAR'
        n = counts[0]
        cfg['depth'] = 9 * n + 2
        cfg['sb_cfg'] = cfg.get('sb_cfg', {})
    return cfg
