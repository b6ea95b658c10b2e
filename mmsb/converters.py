# Copyright (c) mmsb contributors. All rights reserved.
"""Convert SB-ResNets trained with the authors' code into mmsb's layout.

The authors (github.com/GoJunHyeong/SpatialBias) publish their model and
training code, not trained weights: as of 2026-11 their repository holds
``README.md``, ``SB_module.py``, ``resnet.py`` and ``train.py`` and links no
weight files. A network trained with their ``train.py`` is saved by timm's
``CheckpointSaver`` (``checkpoint-<epoch>.pth.tar``, ``model_best.pth.tar``,
``last.pth.tar``): a dict with ``epoch``, ``arch``, ``state_dict``,
``optimizer``, ``version``, ``args`` (the run's ``argparse.Namespace``) and,
when used, ``amp_scaler``, ``state_dict_ema`` (``--model-ema``) and
``metric``. :func:`load_training_checkpoint` reads such a file with
``weights_only=True`` and allowlists ``argparse.Namespace`` for that load
only.

Their model is a torchvision-style bottleneck ResNet. ImageNet: depth 50, 101,
152 (and 200, which mmsb cannot build), 7x7 stem, four stages; their code
registers only ``sb_resnet50`` (spatial bias in stages 1-3) with timm.
CIFAR: depth 9n+2, a 3x3 stem of 16 channels and three stages of n
bottlenecks. Their basic blocks cannot carry spatial bias. The branch is
``layerX.Y.SB`` with ``feature_reduction.0`` (1x1 conv),
``feature_reduction.1`` (BN) and ``sb_conv`` (the 1-D conv); ``bn2`` and
``conv3`` are widened by the bias maps and the classifier is ``fc``. mmsb
names the branch ``layerX.Y.spatial_bias.{reduce,bn,mix}``; everything else
already matches mmdet's ResNet. The first release of their code
(``spatial_bias.py``, keys ``conv_gc_reduction``, ``bn_gc_reduction``,
``nlc_convolution``) is refused.
"""
import argparse
import math
import pickle
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

from .compat import safe_globals_scope

#: Globals a timm ``CheckpointSaver`` file holds beyond tensors and plain
#: containers: the run's arguments. Optimizer and AMP scaler states are plain.
CHECKPOINT_SAVER_GLOBALS = (argparse.Namespace, )
#: The state dicts a ``CheckpointSaver`` file can hold.
STATE_DICT_KEYS = ('state_dict', 'state_dict_ema')

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
_OLD_LAYOUT = re.compile(
    r'\.(conv_gc_reduction|bn_gc_reduction|nlc_convolution)\.')
_BLOCK = re.compile(r'^layer(\d+)\.(\d+)\.')

# Block counts of the authors' bottleneck ResNets that mmsb's SBResNet builds.
IMAGENET_DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}
# In the authors' depth table, not in mmdet's ResNet (so not in SBResNet).
_AUTHORS_ONLY_DEPTHS = {(3, 24, 36, 3): 200}
_EXPECTED = ('bottleneck blocks per stage (3, 4, 6, 3) = depth 50, '
             '(3, 4, 23, 3) = 101, (3, 8, 36, 3) = 152 (ImageNet) or '
             '(n, n, n) = depth 9n+2 (CIFAR)')


def _weights_only_reason(err: Exception) -> str:
    """What the weights-only unpickler refused, without torch's advice to
    reload with ``weights_only=False``."""
    raw = err.__context__  # torch re-raises the unpickler's error `from None`
    text = str(raw) if isinstance(raw, Exception) and str(raw) else str(err)
    text = text.split(' Please use `torch.serialization', 1)[0]
    return ' '.join(text.split())[:300]


def load_training_checkpoint(path: str):
    """Read a checkpoint of the authors' ``train.py`` (timm
    ``CheckpointSaver``) or a bare state dict, with ``weights_only=True``.

    :data:`CHECKPOINT_SAVER_GLOBALS` are allowed for this load only, on top
    of what ``weights_only`` admits anyway (tensors, plain containers and,
    once mmsb is imported, the Runner-checkpoint globals of
    :mod:`mmsb.compat`). A file holding anything else is refused; it is never
    unpickled unrestricted.

    Raises:
        pickle.UnpicklingError: the file holds a global that is not allowed,
            or holds an ``argparse.Namespace`` and this torch (< 2.4) has no
            allowlist to admit it.
        ValueError: torch.load cannot read the file at all (empty, truncated
            or not written by torch.save).
    """
    with safe_globals_scope(CHECKPOINT_SAVER_GLOBALS) as allowed:
        try:
            return torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as e:
            reason = _weights_only_reason(e)
            if not allowed and 'argparse.Namespace' in reason:
                raise pickle.UnpicklingError(
                    f'the file holds an argparse.Namespace (the "args" that '
                    f"timm's CheckpointSaver stores), which torch "
                    f'{torch.__version__} cannot load with weights_only=True: '
                    f'it has no allowlist (torch.serialization.'
                    f'add_safe_globals). Use torch >= 2.4 (2.5 or newer '
                    f'scopes the allowlist to this load); mmsb never loads '
                    f'it with weights_only=False.') from e
            raise pickle.UnpicklingError(
                f'refused by torch.load(weights_only=True); a '
                f"CheckpointSaver file holds only tensors, plain containers "
                f'and argparse.Namespace; this one also: {reason}') from e
        except Exception as e:  # torch says KeyError: 101, EOFError: ...
            detail = ' '.join(str(e).split())[:300]
            raise ValueError(
                f'not a file torch.load can read (empty, truncated or not '
                f'written by torch.save): {type(e).__name__}' +
                (f': {detail}' if detail else '')) from e


def _is_bare_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(v, torch.Tensor) for v in obj.values())


def checkpoint_summary(ckpt) -> dict:
    """``epoch``, ``arch`` and ``metric`` of a ``CheckpointSaver`` file (those
    present, as plain values)."""
    if not isinstance(ckpt, dict) or _is_bare_state_dict(ckpt):
        return {}
    return {
        k: ckpt[k]
        for k in ('epoch', 'arch', 'metric')
        if isinstance(ckpt.get(k), (int, float, str))
    }


def unwrap_state_dict(ckpt,
                      which: str = 'state_dict') -> Dict[str, torch.Tensor]:
    """The tensor dict of a checkpoint, DataParallel ``module.`` prefixes
    removed.

    Args:
        ckpt: A ``CheckpointSaver`` dict or a bare state dict.
        which (str): ``'state_dict'`` (the trained model) or
            ``'state_dict_ema'`` (its EMA, saved with ``--model-ema``). The
            other one is never taken instead. Default: 'state_dict'.
    """
    if which not in STATE_DICT_KEYS:
        raise ValueError(f'which={which!r}; expected one of {STATE_DICT_KEYS}')
    if _is_bare_state_dict(ckpt):
        if which != 'state_dict':
            raise KeyError(
                f'the checkpoint is a bare state dict, it has no {which!r}')
        sd = ckpt
    elif isinstance(ckpt, dict) and isinstance(ckpt.get(which), dict):
        sd = ckpt[which]
    elif isinstance(ckpt, dict):
        hint = (' (the run was trained without --model-ema)'
                if which == 'state_dict_ema' else '')
        raise KeyError(f'the checkpoint has no {which!r}{hint}; its keys: '
                       f'{sorted(map(str, ckpt))}')
    else:
        raise ValueError(f'the checkpoint is a {type(ckpt).__name__}, not a '
                         f'dict holding a state dict')
    if not _is_bare_state_dict(sd):
        raise ValueError(f'{which!r} holds no tensors')
    out = OrderedDict()
    for k, v in sd.items():
        out[k[len('module.'):] if k.startswith('module.') else k] = v
    return out


def _check_layout(state_dict):
    old = [k for k in state_dict if _OLD_LAYOUT.search(k)]
    if old:
        raise ValueError(
            f'unsupported layout: {len(old)} key(s) such as {old[0]!r} come '
            f"from the first release of the authors' code (spatial_bias.py, "
            f'keys conv_gc_reduction/bn_gc_reduction/nlc_convolution), whose '
            f'branch reduces with a strided conv in the first block of a '
            f'stage. mmsb converts only the current layout (resnet.py with '
            f'SB_module.py, keys layerX.Y.SB.*)')


def convert_official_sb_resnet(
        state_dict: Dict[str, torch.Tensor],
        with_head: bool = True) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Map the authors' keys to mmsb's and check them against the model.

    Args:
        state_dict: The authors' state dict (see :func:`unwrap_state_dict`).
        with_head: True: mmpretrain ImageClassifier layout (``backbone.*``,
            ``head.fc.*``). False: bare backbone for mmdet/mmseg (``fc``
            dropped).

    Returns:
        (converted state dict, backbone config inferred from the tensors:
        type, depth, sb_stages and sb_cfg). The converted backbone tensors
        match the model that config builds key for key and shape for shape.
    """
    _check_layout(state_dict)
    converted = OrderedDict()
    backbone = OrderedDict()
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
        backbone[new] = value
        converted[('backbone.' if with_head else '') + new] = value
    if unknown:
        raise ValueError(
            f'{len(unknown)} key(s) are not part of an SB-ResNet checkpoint: '
            f'{unknown[:8]}{" ..." if len(unknown) > 8 else ""}')
    cfg = infer_backbone_cfg(state_dict)
    _check_against_model(backbone, cfg)
    return converted, cfg


def _block_counts(state_dict):
    blocks = {}
    for key in state_dict:
        m = _BLOCK.match(key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not blocks:
        raise ValueError('no ResNet blocks (layerX.Y.*) found')
    stages = sorted(blocks)
    if stages != list(range(1, len(stages) + 1)):
        raise ValueError(f'stages {stages} found; expected layer1 to layerN')
    for s in stages:
        if sorted(blocks[s]) != list(range(len(blocks[s]))):
            raise ValueError(f'layer{s} has blocks {sorted(blocks[s])}; '
                             f'expected 0 to n-1')
    return tuple(len(blocks[s]) for s in stages)


def infer_backbone_cfg(state_dict: Dict[str, torch.Tensor]) -> dict:
    """SBResNet / SBResNetCIFAR arguments that rebuild the authors' model.

    Accepts exactly the bottleneck networks of the authors' ``resnet.py`` that
    mmsb builds: ImageNet depth 50/101/152 (``SBResNet``) and CIFAR depth
    9n+2 (``SBResNetCIFAR``). Any other block counts are an error that names
    them.
    """
    _check_layout(state_dict)
    counts = _block_counts(state_dict)
    kinds = {
        f'layer{s + 1}.{b}': f'layer{s + 1}.{b}.conv3.weight' in state_dict
        for s, n in enumerate(counts) for b in range(n)
    }
    if not any(kinds.values()):
        raise ValueError(
            f'found basic blocks (no conv3) with block counts {counts}; no '
            f'SB-ResNet has basic blocks (the authors put spatial bias in '
            f'bottlenecks only). Expected {_EXPECTED}')
    if not all(kinds.values()):
        basic = [b for b, bottleneck in kinds.items() if not bottleneck]
        raise ValueError(f'blocks {basic[:8]} have no conv3 while the others '
                         f'are bottlenecks (block counts {counts})')
    if len(counts) == 4:
        if counts in _AUTHORS_ONLY_DEPTHS:
            raise ValueError(
                f'block counts {counts} (depth '
                f'{_AUTHORS_ONLY_DEPTHS[counts]}) are in the authors\' '
                f'depth table but mmsb\'s SBResNet (mmdet\'s ResNet) has no '
                f'such depth; expected {_EXPECTED}')
        if counts not in IMAGENET_DEPTHS:
            raise ValueError(f'block counts {counts} belong to no SB-ResNet; '
                             f'expected {_EXPECTED}')
        cfg = dict(type='SBResNet', depth=IMAGENET_DEPTHS[counts])
    elif len(counts) == 3 and len(set(counts)) == 1:
        cfg = dict(type='SBResNetCIFAR', depth=9 * counts[0] + 2)
    else:
        raise ValueError(f'block counts {counts} belong to no SB-ResNet; '
                         f'expected {_EXPECTED}')

    sb_stages = []
    for s, n in enumerate(counts):
        with_sb = [f'layer{s + 1}.{b}.SB.sb_conv.weight' in state_dict
                   for b in range(n)]
        if any(with_sb) and not all(with_sb):
            raise ValueError(
                f'layer{s + 1}: spatial bias in blocks '
                f'{[b for b in range(n) if with_sb[b]]} of {n}; the authors\' '
                f'model has it in every block of a stage or in none')
        sb_stages.append(all(with_sb))
    cfg['sb_stages'] = tuple(sb_stages)
    if any(sb_stages):
        s = sb_stages.index(True) + 1
        mix = state_dict[f'layer{s}.0.SB.sb_conv.weight']
        red = state_dict.get(f'layer{s}.0.SB.feature_reduction.0.weight')
        if red is None or mix.dim() != 3 or mix.shape[0] != mix.shape[1]:
            raise ValueError(
                f'layer{s}.0.SB: expected feature_reduction.0.weight and a '
                f'1-D sb_conv.weight of shape (P*P, P*P, k), got sb_conv '
                f'{tuple(mix.shape)}')
        positions, _, kernel = mix.shape
        side = math.isqrt(positions)
        if side * side != positions:
            raise ValueError(f'layer{s}.0.SB.sb_conv mixes {positions} '
                             f'positions, not a square P*P')
        cfg['sb_cfg'] = dict(
            num_bias=int(red.shape[0] - kernel + 1),
            kernel_size=int(kernel),
            pooled_size=side)
    return cfg


def _check_against_model(backbone_sd, cfg):
    """Every tensor has its key and shape in the model ``cfg`` builds."""
    from mmsb.models import SBResNet, SBResNetCIFAR
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    model_cls = SBResNetCIFAR if cfg['type'] == 'SBResNetCIFAR' else SBResNet
    try:
        expected = {
            k: tuple(v.shape)
            for k, v in model_cls(**kwargs).state_dict().items()
        }
    except (KeyError, ValueError) as e:
        raise ValueError(f'inferred {cfg} cannot be built: {e}') from e
    found = {k: tuple(v.shape) for k, v in backbone_sd.items()}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = [f'{k}: {found[k]} (model {expected[k]})'
             for k in expected if k in found and found[k] != expected[k]]
    problems = []
    for what, keys in (('missing', missing), ('unexpected', extra),
                       ('wrong shape', wrong)):
        if keys:
            problems.append(f'{what}: {keys[:6]}'
                            f'{" ..." if len(keys) > 6 else ""}')
    if problems:
        raise ValueError(f'the tensors do not fit {cfg}: ' +
                         '; '.join(problems))
