"""mmsb's models in the MODELS registries of mmdet, mmseg and mmpretrain."""
import pytest

import mmsb
from mmsb import models
from mmsb.registry import register_downstream

MMSB_NAMES = {
    'SBBottleneck', 'SBResNet', 'SBResNetV1c', 'SBResNetV1d', 'SBResNetCIFAR',
    'SpatialBias', 'SplitNorm'
}


def _mmsb_entries(scope):
    """Name -> class for the entries of ``scope``'s MODELS from mmsb."""
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    return {
        name: cls
        for name, cls in registry.module_dict.items()
        if cls.__module__.split('.')[0] == 'mmsb'
    }


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_downstream_names(scope):
    assert set(models.__all__) == MMSB_NAMES
    entries = _mmsb_entries(scope)
    assert set(entries) == MMSB_NAMES
    assert all(cls is getattr(models, name) for name, cls in entries.items())


def test_register_downstream_takes_the_classes():
    classes = [getattr(models, n) for n in models.__all__]
    done = register_downstream(classes)  # again: nothing changes
    assert done == {s: list(models.__all__)
                    for s in ('mmdet', 'mmseg', 'mmpretrain')}
    for scope in done:
        assert set(_mmsb_entries(scope)) == MMSB_NAMES
    assert mmsb.register_downstream is register_downstream
