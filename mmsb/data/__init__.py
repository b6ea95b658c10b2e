# Copyright (c) mmsb contributors. All rights reserved.
"""Embedded demo data: generators (:mod:`.demo`) and the dataset types of
``configs/demo`` (:mod:`.datasets`), registered in mmdet, mmseg and
mmpretrain on ``import mmsb.data`` (the demo configs' ``custom_imports``)."""
from .datasets import *  # noqa: F401,F403
from .datasets import __all__ as _datasets
from .demo import ensure_demo_data, generate_if_missing

__all__ = ['ensure_demo_data', 'generate_if_missing'] + _datasets
