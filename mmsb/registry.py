# Copyright (c) mmsb contributors. All rights reserved.
"""mmsb's registry and its bridge into the downstream toolboxes.

``MODELS`` has scope ``mmsb`` and mmengine's root registry as parent, so
``type='mmsb.SBResNet'`` resolves from any scope. :func:`register_downstream`
puts given classes into the MODELS registry of each of mmdet, mmseg and
mmpretrain that is installed; ``import mmsb`` passes mmsb's public models, so
``type='SBResNet'`` works in their configs once ``custom_imports`` has
imported mmsb. This module imports nothing of mmsb.
"""
import importlib

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmsb', locations=['mmsb.models'])

DOWNSTREAM = ('mmdet', 'mmseg', 'mmpretrain')


def register_downstream(modules):
    """Register ``modules`` in every installed downstream MODELS registry.

    Args:
        modules (list[type]): classes, each registered under its
            ``__name__``.

    Returns:
        dict: downstream scope -> names registered there (empty if absent).
    """
    names = [cls.__name__ for cls in modules]
    done = {}
    for scope in DOWNSTREAM:
        try:
            registry = importlib.import_module(f'{scope}.registry').MODELS
        except ImportError:
            done[scope] = []
            continue
        for name, cls in zip(names, modules):
            if registry.module_dict.get(name) is not cls:
                # force: a stale class from an earlier import (reload) loses.
                registry.register_module(name=name, module=cls, force=True)
        done[scope] = names
    return done
