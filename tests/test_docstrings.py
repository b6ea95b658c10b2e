"""The Example blocks in mmsb's docstrings run and print what they show."""
import doctest
import importlib

import pytest

MODULES = ['mmsb.models.layers.spatial_bias', 'mmsb.models.backbones.sb_resnet',
           'mmsb.analysis']


@pytest.mark.parametrize('name', MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
