# Copyright (c) mmsb contributors. All rights reserved.
"""Configs beyond the paper: Mask R-CNN 1x, UperNet 160k, Faster R-CNN AMP.

Each inherits its toolbox's own R-50 recipe (its plain twin) through
``mmdet::``/``mmseg::`` and changes only the backbone; the whole rest of the
config must equal the stock one. Each builds through the real registry and
trains one iteration with its own optim wrapper on small generated inputs
(no pretrained weights, nothing downloaded; SyncBN reverted to BN as
mmengine's Runner does in a single process).
"""
import importlib
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
S123 = (True, True, True, False)
SB_CFG = dict(num_bias=3, kernel_size=3, pooled_size=10)

# config -> (plain twin, backbone type, task)
BEYOND_PAPER = {
    'mask_rcnn/mask-rcnn_sb-r50_fpn_1x_coco.py':
    ('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'SBResNet', 'det'),
    'upernet/upernet_sb-r50_4xb4-160k_ade20k-512x512.py':
    ('mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', 'SBResNetV1c',
     'seg'),
    'faster_rcnn/faster-rcnn_sb-r50_fpn_amp-1x_coco.py':
    ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_amp-1x_coco.py', 'SBResNet',
     'det'),
}
SB_KEYS = ('type', 'sb_stages', 'sb_cfg')


def _unscoped(obj):
    """The config without the ``_scope_`` keys that mmengine adds to what
    a config inherits from another package."""
    if isinstance(obj, dict):
        return {k: _unscoped(v) for k, v in obj.items() if k != '_scope_'}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unscoped(v) for v in obj)
    return obj


def _load(name):
    return Config.fromfile(osp.join(ROOT, 'configs', name))


@pytest.mark.parametrize('name', sorted(BEYOND_PAPER))
def test_inherits_the_stock_recipe_changing_only_the_backbone(name):
    stock_name, backbone_type, _ = BEYOND_PAPER[name]
    with open(osp.join(ROOT, 'configs', name), encoding='utf-8') as f:
        text = f.read()
    assert re.search(rf"^_base_ = '{re.escape(stock_name)}'$", text, re.M)
    cfg = _load(name)
    assert cfg.custom_imports == dict(
        imports=['mmsb'], allow_failed_imports=False)
    assert 'model_wrapper_cfg' not in cfg  # tools/train.py sets it on CPU
    ours = _unscoped(cfg.to_dict())
    stock = _unscoped(get_config(stock_name).to_dict())
    ours.pop('custom_imports')
    backbone = ours['model'].pop('backbone')
    stock_backbone = stock['model'].pop('backbone')
    assert ours == stock
    assert backbone['type'] == backbone_type
    assert backbone['sb_stages'] == S123 and backbone['sb_cfg'] == SB_CFG
    assert {k: v for k, v in backbone.items() if k not in SB_KEYS} == \
        {k: v for k, v in stock_backbone.items() if k != 'type'}
    # the plain twin's name says the same batch and schedule
    assert osp.basename(stock_name).replace('_r50', '_sb-r50') == \
        osp.basename(name)


def _det_batch(num_classes, with_mask):
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(
        batch_size=2, image_shapes=(3, 96, 128), num_items=[3, 2],
        num_classes=num_classes, with_mask=with_mask)


def _seg_batch(num_classes, size=(64, 64)):
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, *size), generator=g,
                                    dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, *size), generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _sb_params(backbone, layer):
    return {
        n: p.detach().clone()
        for n, p in backbone.named_parameters()
        if n.startswith(f'{layer}.') and '.spatial_bias.' in n
    }


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(BEYOND_PAPER))
def test_builds_and_trains_one_iteration(name):
    _, backbone_type, task = BEYOND_PAPER[name]
    cfg = _load(name)
    init_default_scope(cfg.default_scope)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    cfg.model.backbone.init_cfg = None  # nothing is downloaded in tests
    # Without pretrained weights mmdet zero-inits each block's last norm,
    # which would block the gradient of every residual branch (spatial bias
    # included) in the first step; pretrained runs start with live branches.
    cfg.model.backbone.zero_init_residual = False
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    if task == 'seg':
        cfg.model.data_preprocessor.size = (64, 64)  # demo-sized, not 512
    model = revert_sync_batchnorm(registry.MODELS.build(cfg.model))
    model.init_weights()
    assert type(model.backbone).__name__ == backbone_type
    model.train()

    if torch.cuda.is_available():
        model = model.cuda()
    elif cfg.optim_wrapper.type == 'AmpOptimWrapper':
        # mmengine's AmpOptimWrapper refuses a host without GPU/NPU/MLU/MUSA
        # (and mmcv's CPU nms takes no bf16, so CPU autocast is no stand-in
        # for a detector): on the CPU the iteration runs in fp32.
        with pytest.raises(AssertionError, match='only available'):
            build_optim_wrapper(model, cfg.optim_wrapper)
        cfg.optim_wrapper.type = 'OptimWrapper'
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(optim_wrapper).__name__ == cfg.optim_wrapper.type

    if task == 'det':
        num_classes = cfg.model.roi_head.bbox_head.num_classes
        data = _det_batch(num_classes, 'mask_head' in cfg.model.roi_head)
    else:
        data = _seg_batch(cfg.model.decode_head.num_classes)
    backbone = model.backbone
    frozen = _sb_params(backbone, 'layer1')
    trained = _sb_params(backbone, 'layer2')
    assert frozen and trained
    grads = []
    params = dict(backbone.named_parameters())
    for n in trained:
        params[n].register_hook(
            lambda g, n=n: grads.append((n, g.float().abs().sum().item())))
    log_vars = model.train_step(data, optim_wrapper)

    assert torch.isfinite(log_vars['loss']), log_vars
    if task == 'det':
        assert 'loss_rpn_cls' in log_vars and 'loss_bbox' in log_vars
        assert ('loss_mask' in log_vars) == ('mask_head' in cfg.model.roi_head)
    else:
        assert {'decode.loss_ce', 'aux.loss_ce'} <= set(log_vars)
    after = dict(backbone.named_parameters())
    # the spatial bias branch of a trained stage gets gradients and moves ...
    assert sorted(n for n, _ in grads) == sorted(trained)
    assert all(g > 0 for _, g in grads), grads
    assert all(not torch.equal(v, after[n].detach().cpu())
               for n, v in trained.items())
    # ... that of a frozen stage (mmdet's frozen_stages=1) does not
    frozen_stages = cfg.model.backbone.get('frozen_stages', -1)
    for n, v in frozen.items():
        assert torch.equal(v, after[n].detach().cpu()) == (frozen_stages >= 1)
