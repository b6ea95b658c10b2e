"""configs/evidence/*context*: the plain network and its SB, non-local and
GCNet twins on the three context rules. Each twin changes only the
backbone; the receptive field the configs state is the one measured from
the built plain model; every model trains a step on the configs' own
pipeline through mmseg."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from utils import REPO, load_tool

from mmsb.data.demo import generate_if_missing

RULES = ('local', 'global', 'spatial')
MODELS = ('plain', 'sb', 'nl', 'gc')
NAME = 'fcn_{}r20-cifar_1xb8-600it_context-{}-112.py'


def _path(model, rule):
    prefix = '' if model == 'plain' else f'{model}-'
    return osp.join(REPO, 'configs', 'evidence', NAME.format(prefix, rule))


def _cfg(model, rule):
    return Config.fromfile(_path(model, rule))


@pytest.mark.parametrize('rule', RULES)
def test_twins_change_only_the_backbone(rule):
    plain = _cfg('plain', rule).to_dict()
    assert plain['custom_imports'] == dict(
        imports=['mmsb', 'mmsb.data', 'mmsb.evaluation'],
        allow_failed_imports=False)
    ds = plain['train_dataloader']['dataset']
    assert ds['demo_cfg']['rule'] == rule
    assert ds['data_root'] == f'data/demo/context-{rule}/'
    assert plain['val_dataloader']['dataset']['data_root'] == ds['data_root']
    assert plain['val_evaluator'][1]['meta_file'] == \
        ds['data_root'] + 'meta-val.json'
    assert plain['train_cfg']['max_iters'] == 600  # the "600it"
    assert plain['train_dataloader']['batch_size'] == 8  # the "1xb8"
    expected = {'sb': dict(sb_stages=(True, True, False)),
                'nl': dict(plugins=[dict(
                    cfg=dict(type='NonLocal2d', reduction=2, use_scale=True,
                             mode='embedded_gaussian'),
                    stages=(False, False, True), position='after_conv2')]),
                'gc': dict(plugins=[dict(
                    cfg=dict(type='ContextBlock', ratio=1. / 4),
                    stages=(True, True, False), position='after_conv3')])}
    for model, change in expected.items():
        twin = _cfg(model, rule).to_dict()
        backbone = copy.deepcopy(plain['model']['backbone'])
        backbone.update(change)
        assert twin['model']['backbone'] == backbone, model
        twin['model'].pop('backbone')
        other = copy.deepcopy(plain)
        other['model'].pop('backbone')
        assert twin == other, model


def test_the_stated_field_is_the_measured_one():
    """`field` of the configs (and of their ContextObjectAccuracy) is the
    receptive field measured from the built plain segmentor, head and
    resize included, over the four phases of its stride-4 map."""
    context_field = load_tool('analysis/evidence_context').context_field
    cfg = _cfg('plain', 'spatial')
    assert cfg.val_evaluator[1].field == cfg.field
    assert context_field(cfg) == cfg.field
    # and with spatial bias every pixel sees the whole image: the units
    # measured reach both borders
    sb = _cfg('sb', 'spatial')
    size = sb.train_dataloader.dataset.demo_cfg.img_size
    assert context_field(sb) > size


@pytest.mark.slow
@pytest.mark.parametrize('model', MODELS)
def test_each_model_trains_a_step_on_the_pipeline(tmp_path, model):
    """A batch of the config's own train pipeline on a tiny generated set
    (mmseg's dataset), two optimiser steps of the model: finite losses, and
    the context block's parameters get gradients."""
    from mmseg.registry import DATASETS, MODELS as SEG_MODELS

    import mmsb.data  # noqa: F401
    cfg = _cfg(model, 'spatial')
    init_default_scope('mmseg')
    ds_cfg = cfg.train_dataloader.dataset.copy()
    root = str(tmp_path / 'ctx')
    generate_if_missing('context', root, **dict(
        ds_cfg.demo_cfg, num_train=2, num_val=1))
    ds_cfg.update(data_root=root)
    dataset = DATASETS.build(ds_cfg)
    batch = pseudo_collate([dataset[0], dataset[1]])
    net = SEG_MODELS.build(cfg.model)
    net.init_weights()
    optim = build_optim_wrapper(net, cfg.optim_wrapper)
    data = net.data_preprocessor(batch, True)
    # two steps: every residual branch starts at zero (zero_init_residual),
    # so the blocks' inner layers get gradients from the second on
    for _ in range(2):
        optim.zero_grad()
        loss, _ = net.parse_losses(net(**data, mode='loss'))
        assert torch.isfinite(loss)
        optim.backward(loss)
        optim.step()
    names = {'sb': 'spatial_bias', 'nl': 'nonlocal', 'gc': 'context_block'}
    if model in names:
        grads = [p.grad for n, p in net.named_parameters()
                 if names[model] in n]
        assert grads and any(g is not None and g.abs().sum() > 0
                             for g in grads), model
