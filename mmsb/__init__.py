# Copyright (c) mmsb contributors. All rights reserved.
"""mmsb: Spatial Bias (Go & Ryu, arXiv 2302.12505) for OpenMMLab.

Importing mmsb (every mmsb config does, through ``custom_imports``) only
registers: SpatialBias and the SB-ResNet backbones in mmsb's registry and in
those of mmdet, mmseg and mmpretrain that are installed, the globals of
Runner checkpoints for torch's ``weights_only`` loading, and a DDP wrapper
(:mod:`mmsb.compat`). The generated datasets of the demo configs live in
:mod:`mmsb.data`, which those configs import themselves.
"""
from . import compat  # noqa: F401  (checkpoint allowlist, DDP wrapper)
from . import models
from .registry import register_downstream
from .version import __version__, version_info

register_downstream([getattr(models, name) for name in models.__all__])

__all__ = ['__version__', 'version_info', 'register_downstream']
