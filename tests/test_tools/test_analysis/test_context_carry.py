"""tools/analysis/context_carry.py: per-disc probes of what a context model's
features and bias maps hold, read with forward hooks through mmseg's own
inference API."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from utils import REPO, load_tool

carry_tool = load_tool('analysis/context_carry')

CFG = osp.join(REPO, 'configs', 'evidence',
               'fcn_{}r20-cifar_1xb8-600it_context-local-112.py')


def test_disc_means_average_exactly_the_disc():
    maps = torch.zeros(2, 20, 20)
    maps[0, 3:8, 12:17] = 1.0       # rows 3-7 (y), columns 12-16 (x)
    maps[1] = 5.0
    objs = [dict(centre=[14.0, 5.0], radius=2.0),   # inside the block
            dict(centre=[5.0, 14.0], radius=2.0)]   # x and y swapped
    out = carry_tool.disc_means(maps, objs, (20, 20))
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out[:, 1], 5.0)
    assert out[0, 0] == pytest.approx(1.0)
    assert out[1, 0] == pytest.approx(0.0)


def test_disc_means_read_a_padded_input_where_the_image_is():
    """A map of a 16 x 16 input that holds a 12 x 12 image padded at the
    bottom and right: the image's pixels are its top-left 12 x 12."""
    maps = torch.zeros(1, 16, 16)
    maps[0, 8:12, 8:12] = 1.0
    objs = [dict(centre=[10.0, 10.0], radius=1.0)]
    out = carry_tool.disc_means(maps, objs, (12, 12), padded=(16, 16))
    assert out[0, 0] == pytest.approx(1.0)
    # read as if it were unpadded, the disc lands elsewhere
    assert carry_tool.disc_means(maps, objs, (12, 12))[0, 0] < 0.9
    with pytest.raises(ValueError, match=r'padded size \(8, 8\) is smaller'):
        carry_tool.disc_means(maps, objs, (12, 12), padded=(8, 8))


def _init_checkpoint(model_prefix, path):
    from mmseg.registry import MODELS
    cfg = Config.fromfile(CFG.format(model_prefix))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, path)


@pytest.mark.parametrize('model', ['sb', 'plain'])
def test_local_rule_colour_reaches_the_classifier_input(tmp_path, model):
    """On the local rule a disc's class is its own colour: the classifier
    input of an untrained network, averaged over the disc, holds it at every
    distance. Hooks on the wrong map or a disc read in the wrong place fall
    to chance."""
    prefix = '' if model == 'plain' else f'{model}-'
    ckpt = str(tmp_path / 'init.pth')
    _init_checkpoint(prefix, ckpt)
    root = str(tmp_path / 'ctx') + '/'
    demo = dict(num_train=80, num_val=40, img_size=112, seed=4,
                rule='local', key_border=20)
    res = carry_tool.carry(
        CFG.format(prefix), ckpt, epochs=300,
        cfg_options={'train_dataloader.dataset.data_root': root,
                     'train_dataloader.dataset.demo_cfg': demo})
    assert res['field'] == 35
    assert res['n_within'] + res['n_beyond'] > 100
    probes = res['probes']
    blocks = ['sb.layer1.0', 'sb.layer1.1', 'sb.layer2.0', 'sb.layer2.1']
    expected = {'features'} | ({'sb', *blocks} if model == 'sb' else set())
    assert set(probes) == expected
    assert probes['features']['dims'] == 256
    if model == 'sb':
        assert probes['sb']['dims'] == 12
        assert all(probes[b]['dims'] == 3 for b in blocks)
    assert probes['features']['within'] >= 90, probes
    assert probes['features']['beyond'] >= 90, probes
