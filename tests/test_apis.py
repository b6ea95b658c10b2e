# Copyright (c) mmsb contributors. All rights reserved.
"""mmsb.apis: the model of a config as the Runner builds it, and loaded
from a checkpoint outside a Runner."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint

from mmsb.apis import load_model, runner_model_cfg

MODEL = dict(type='ImageClassifier',
             backbone=dict(type='SBResNetCIFAR', depth=11, base_channels=8,
                           init_cfg=dict(type='Pretrained',
                                         checkpoint='nowhere.pth')),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=2, in_channels=128))
TOP = dict(mean=[1.0] * 3, std=[2.0] * 3)


def test_runner_model_cfg_merges_top_level_data_preprocessor():
    cfg = Config(dict(model=MODEL, data_preprocessor=TOP))
    model = runner_model_cfg(cfg)
    assert model.data_preprocessor == TOP
    assert 'data_preprocessor' not in cfg.model  # the config is untouched
    own = dict(MODEL, data_preprocessor=dict(mean=[0.0] * 3))
    cfg = Config(dict(model=own, data_preprocessor=TOP))
    assert runner_model_cfg(cfg).data_preprocessor == dict(mean=[0.0] * 3)
    assert 'data_preprocessor' not in runner_model_cfg(Config(dict(
        model=MODEL)))


def test_load_model(tmp_path):
    cfg = Config(dict(default_scope='mmpretrain', model=MODEL,
                      data_preprocessor=TOP))
    model = load_model(cfg)  # the backbone's init_cfg is not followed
    assert not model.training
    assert model.data_preprocessor.mean.flatten().tolist() == [1.0] * 3
    ckpt = str(tmp_path / 'partial.pth')
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()
             if k.startswith('backbone.')}
    save_checkpoint(dict(state_dict=state,
                         meta=dict(dataset_meta=dict(classes=('a', 'b')))),
                    ckpt)
    with pytest.raises(RuntimeError, match='missing keys'):
        load_model(cfg, ckpt)
    model = load_model(cfg, ckpt, strict=False)
    assert model.dataset_meta == dict(classes=('a', 'b'))
    assert not model.backbone.conv1.weight.any()
