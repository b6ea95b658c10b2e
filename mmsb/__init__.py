# Copyright (c) mmsb contributors. All rights reserved.
"""mmsb: Spatial Bias (Go & Ryu, arXiv 2302.12505) for OpenMMLab.

Importing mmsb (every mmsb config does, through ``custom_imports``) activates
the compatibility layer for current PyTorch (:mod:`mmsb.compat`), registers
SpatialBias and the SB-ResNet backbones in mmsb's registry and in those of
mmdet, mmseg and mmpretrain that are installed.
"""
from . import compat  # noqa: F401  (first: patches must precede any Runner)
from .version import __version__, version_info
from . import models  # noqa: F401,E402
from . import data  # noqa: F401,E402  (demo datasets; after models)
from .registry import register_downstream

register_downstream()

__all__ = ['__version__', 'version_info', 'register_downstream']
