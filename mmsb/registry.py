# Copyright (c) mmsb contributors. All rights reserved.
"""mmsb's registry and its bridge into the downstream toolboxes.

``MODELS`` has scope ``mmsb`` and mmengine's root registry as parent, so
``type='mmsb.SBResNet'`` resolves from any scope. :func:`register_downstream`
also puts mmsb's public models into the MODELS registry of each of mmdet,
mmseg and mmpretrain that is installed, so ``type='SBResNet'`` works in their
configs once ``custom_imports`` has imported mmsb.
"""
import importlib

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmsb', locations=['mmsb.models'])

DOWNSTREAM = ('mmdet', 'mmseg', 'mmpretrain')


def register_downstream(names=None):
    """Register mmsb's models in every installed downstream MODELS registry.

    Returns:
        dict: downstream scope -> names registered there (empty if absent).
    """
    import mmsb.models as models
    names = list(names or models.__all__)
    done = {}
    for scope in DOWNSTREAM:
        try:
            registry = importlib.import_module(f'{scope}.registry').MODELS
        except ImportError:
            done[scope] = []
            continue
        for name in names:
            cls = getattr(models, name)
            existing = registry.module_dict.get(name)
            if existing is cls:
                continue
            # force: a stale class from an earlier import (e.g. reload) loses.
            registry.register_module(name=name, module=cls, force=True)
        done[scope] = names
    return done
