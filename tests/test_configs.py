# Copyright (c) mmsb contributors. All rights reserved.
"""The paper's experiment configs (configs/*, Go & Ryu section 4).

Every config parses, builds its model through the downstream's real registry
(no pretrained weights are loaded, nothing is trained) and still carries the
hyper-parameters the paper states, so a config that drifts from the paper
fails here. model-index.yml must import every metafile, and the metafiles
must list every config.
"""
import glob
import importlib
import os.path as osp

import pytest
import yaml
from mmengine.config import Config
from mmengine.registry import init_default_scope
from test_configs_beyond_paper import BEYOND_PAPER as _beyond_paper

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# configs/demo (generated data) and configs/evidence (Fashion-MNIST, beyond
# the paper) have tests of their own.
NOT_PAPER = ('demo', 'evidence')
# Configs beyond the paper (no paper numbers to pin, no weights trained yet);
# test_configs_beyond_paper.py checks them against their plain twins.
BEYOND_PAPER = tuple(sorted(_beyond_paper))

S123 = (True, True, True, False)  # ImageNet/COCO/ADE20K: stages 1-3 (Tab. 6)
S12 = (True, True, False)  # CIFAR: stages 1-2 (Table 1)

# Section 4.5: 12 epochs, SGD lr 0.02 / 0.9 / 1e-4, 1333x800, 2 GPUs x 8.
DET = dict(
    task='det', backbone='SBResNet', sb_stages=S123, pooled_size=10,
    optimizer='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4, batch_size=8,
    max_epochs=12, scheduler='MultiStepLR', milestones=[8, 11],
    scale=(1333, 800), base_batch_size=16)
# Section 4.6: 2 GPUs x 14, 40k iterations, AdamW 2e-4 / 1e-4, poly, 512x512.
SEG = dict(
    task='seg', optimizer='AdamW', lr=2e-4, weight_decay=1e-4, batch_size=14,
    max_iters=40000, scheduler='PolyLR', scale=(512, 512))
# Section 4.2, second recipe: 224 px, SGD lr 0.1, x0.1 at 30/60/80, batch 256.
IN1K_SGD = dict(
    task='cls', optimizer='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4,
    batch_size=32, world=8, max_epochs=90, scheduler='MultiStepLR',
    milestones=[30, 60, 80], gamma=0.1, scale=224, base_batch_size=256)
# Section 4.2, first recipe: 160 px, LAMB lr 8e-3, cosine, batch 512, 100 ep.
IN1K_LAMB = dict(
    task='cls', optimizer='Lamb', lr=8e-3, batch_size=64, world=8,
    max_epochs=100, scheduler='CosineAnnealingLR', scale=160,
    base_batch_size=512)
# Section 4.1: 32 px, batch 64, lr 0.25, x0.1 every 75 epochs, 300 epochs.
CIFAR = dict(
    task='cls', optimizer='SGD', lr=0.25, momentum=0.9, batch_size=64,
    world=1, max_epochs=300, scheduler='MultiStepLR',
    milestones=[75, 150, 225], gamma=0.1, scale=32, base_batch_size=64,
    num_classes=100, head_in_channels=256)

# Param.: the paper's parameter counts in millions (Tables 1, 6, 8, 9).
EXPECTED = {
    'faster_rcnn/faster-rcnn_sb-r50_fpn_2xb8-1x_coco.py': DET,
    'cascade_rcnn/cascade-rcnn_sb-r50_fpn_2xb8-1x_coco.py': DET,
    'sem_fpn/fpn_sb-r50_2xb14-40k_ade20k-512x512.py': dict(
        SEG, backbone='SBResNetV1c', sb_stages=S123, pooled_size=10),
    'sem_fpn/fpn_r50_2xb14-40k_ade20k-512x512.py': dict(
        SEG, backbone='ResNetV1c', sb_stages=None),
    'sb_resnet/sb-resnet50_8xb32-90e_in1k.py': dict(
        IN1K_SGD, backbone='SBResNet', sb_stages=S123, pooled_size=10,
        params_m=25.99),
    'sb_resnet/resnet50_8xb32-90e_in1k.py': dict(
        IN1K_SGD, backbone='ResNet', sb_stages=None, params_m=25.56),
    'sb_resnet/sb-resnet50_8xb64-lamb-100e_in1k-160px.py': dict(
        IN1K_LAMB, backbone='SBResNet', sb_stages=S123, pooled_size=10,
        params_m=25.99),
    'sb_resnet/resnet50_8xb64-lamb-100e_in1k-160px.py': dict(
        IN1K_LAMB, backbone='ResNet', sb_stages=None, params_m=25.56),
    'sb_resnet/sb-resnet38_1xb64-300e_cifar100.py': dict(
        CIFAR, backbone='SBResNetCIFAR', depth=38, sb_stages=S12,
        pooled_size=6, params_m=0.46),
    'sb_resnet/sb-resnet65_1xb64-300e_cifar100.py': dict(
        CIFAR, backbone='SBResNetCIFAR', depth=65, sb_stages=S12,
        pooled_size=6, params_m=0.77),
    'sb_resnet/sb-resnet110_1xb64-300e_cifar100.py': dict(
        CIFAR, backbone='SBResNetCIFAR', depth=110, sb_stages=S12,
        pooled_size=6, params_m=1.28),
    'sb_resnet/resnet38_1xb64-300e_cifar100.py': dict(
        CIFAR, backbone='SBResNetCIFAR', depth=38, sb_stages=None,
        params_m=0.43),
    'sb_resnet/resnet65_1xb64-300e_cifar100.py': dict(
        CIFAR, backbone='SBResNetCIFAR', depth=65, sb_stages=None,
        params_m=0.71),
    'sb_resnet/resnet110_1xb64-300e_cifar100.py': dict(
        CIFAR, backbone='SBResNetCIFAR', depth=110, sb_stages=None,
        params_m=1.17),
}


def _paper_configs():
    found = []
    for path in glob.glob(osp.join(ROOT, 'configs', '*', '*.py')):
        rel = osp.relpath(path, osp.join(ROOT, 'configs'))
        rel = rel.replace(osp.sep, '/')
        if rel.split('/')[0] not in NOT_PAPER and rel not in BEYOND_PAPER:
            found.append(rel)
    return sorted(found)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _transforms(pipeline, type_name):
    return [t for t in pipeline if t.get('type') == type_name]


def _build(cfg):
    """The model through the config's own scope, without pretrained weights."""
    init_default_scope(cfg.default_scope)
    registry = importlib.import_module(f'{cfg.default_scope}.registry').MODELS
    cfg.model.backbone.init_cfg = None
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    return registry.build(cfg.model)


def _stages_with_sb(backbone):
    stages = []
    for name in backbone.res_layers:
        blocks = list(getattr(backbone, name))
        stages.append(
            any(getattr(b, 'spatial_bias', None) is not None for b in blocks))
    return tuple(stages)


def test_every_config_is_checked():
    found = set(_paper_configs())
    assert found == set(EXPECTED), (
        f'configs without expectations here: {sorted(found - set(EXPECTED))};'
        f' expectations without a config: {sorted(set(EXPECTED) - found)}')


def _check_schedule(cfg, exp):
    optim = cfg.optim_wrapper.optimizer
    assert optim.type == exp['optimizer']
    assert optim.lr == pytest.approx(exp['lr'])
    if 'momentum' in exp:
        assert optim.momentum == pytest.approx(exp['momentum'])
    if 'weight_decay' in exp:
        assert optim.weight_decay == pytest.approx(exp['weight_decay'])
    assert cfg.train_dataloader.batch_size == exp['batch_size']

    schedulers = _as_list(cfg.param_scheduler)
    main = [s for s in schedulers if s.type == exp['scheduler']]
    assert len(main) == 1, [s.type for s in schedulers]
    main = main[0]
    if 'max_epochs' in exp:
        assert cfg.train_cfg.max_epochs == exp['max_epochs']
        assert cfg.train_cfg.get('by_epoch', True)
    else:
        assert cfg.train_cfg.type == 'IterBasedTrainLoop'
        assert cfg.train_cfg.max_iters == exp['max_iters']
    if 'milestones' in exp:
        assert list(main.milestones) == exp['milestones']
        assert main.get('gamma', 0.1) == pytest.approx(exp.get('gamma', 0.1))
    if exp['scheduler'] == 'CosineAnnealingLR':
        assert main.end == exp['max_epochs']
    if exp['scheduler'] == 'PolyLR':
        # decays over the whole run, to (near) zero
        assert main.end == exp['max_iters'] and main.by_epoch is False
        assert main.eta_min < 0.01 * exp['lr']
    if 'base_batch_size' in exp:
        assert cfg.auto_scale_lr.base_batch_size == exp['base_batch_size']
        assert not cfg.auto_scale_lr.get('enable', False)
        per_step = exp['batch_size'] * exp.get('world', 2)
        assert per_step == exp['base_batch_size']


def _check_data(cfg, exp):
    train = cfg.train_dataloader.dataset
    while 'pipeline' not in train and 'dataset' in train:
        train = train.dataset  # wrappers such as RepeatDataset
    pipeline = train.pipeline
    if exp['task'] == 'det':
        assert cfg.train_dataloader.dataset.type == 'CocoDataset'
        for pipe in (pipeline, cfg.test_dataloader.dataset.pipeline):
            (resize, ) = _transforms(pipe, 'Resize')
            assert tuple(resize.scale) == exp['scale'] and resize.keep_ratio
    elif exp['task'] == 'seg':
        assert train.type == 'ADE20KDataset'
        (crop, ) = _transforms(pipeline, 'RandomCrop')
        assert tuple(crop.crop_size) == exp['scale']
        assert tuple(cfg.model.data_preprocessor.size) == exp['scale']
    elif exp['scale'] == 32:
        assert train.type == 'CIFAR100'
        (crop, ) = _transforms(pipeline, 'RandomCrop')
        assert crop.crop_size == 32
        assert tuple(cfg.val_evaluator.topk) == (1, 5)
    else:
        assert train.type == 'ImageNet'
        (crop, ) = _transforms(pipeline, 'RandomResizedCrop')
        assert crop.scale == exp['scale']


def _check_init(cfg, exp):
    backbone = cfg.model.backbone
    if exp['task'] == 'det':
        # mmdet's R-50 options; SBResNet's own norm_eval default is False.
        assert backbone.depth == 50 and backbone.frozen_stages == 1
        assert backbone.norm_eval is True and backbone.style == 'pytorch'
        assert backbone.norm_cfg.requires_grad is True
        assert backbone.init_cfg == dict(
            type='Pretrained', checkpoint='torchvision://resnet50')
    elif exp['task'] == 'seg':
        assert cfg.model.pretrained == 'open-mmlab://resnet50_v1c'
        assert backbone.depth == 50 and backbone.contract_dilation is True
    else:
        assert backbone.get('init_cfg') is None  # trained from scratch
        assert cfg.model.get('pretrained') is None
        # As the authors' ResNet: no zero-initialised last BN per block.
        assert backbone.zero_init_residual is False


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_config_matches_paper_and_builds(name):
    exp = EXPECTED[name]
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    assert cfg.custom_imports == dict(
        imports=['mmsb'], allow_failed_imports=False)
    # Our tools pick the CPU DDP wrapper themselves; configs stay stock.
    assert 'model_wrapper_cfg' not in cfg
    assert ('sb-' in osp.basename(name)) == (exp['sb_stages'] is not None)
    _check_schedule(cfg, exp)
    _check_data(cfg, exp)
    _check_init(cfg, exp)

    model = _build(cfg)
    backbone = model.backbone
    assert type(backbone).__name__ == exp['backbone']
    if exp.get('depth'):
        assert backbone.depth == exp['depth']
    if exp['sb_stages'] is None:
        assert not any(_stages_with_sb(backbone))
    else:
        assert _stages_with_sb(backbone) == exp['sb_stages']
        for _, block in backbone.sb_blocks():
            sb = block.spatial_bias
            assert sb.pooled_size == exp['pooled_size']
            assert (sb.num_bias, sb.kernel_size) == (3, 3)
            assert (sb.fusion, sb.mixing, sb.pool_type) == (
                'concat', 'conv1d', 'avg')
            assert block.sb_position == 'conv2'
    if 'num_classes' in exp:
        assert model.head.num_classes == exp['num_classes']
        assert model.head.fc.in_features == exp['head_in_channels']
        assert type(model.neck).__name__ == 'GlobalAveragePooling'
    if exp['task'] not in ('det', 'seg'):
        model.init_weights()
        last_bns = [m.norm3 for m in backbone.modules() if hasattr(m, 'norm3')]
        assert last_bns and all(bool((bn.weight == 1).all()) for bn in last_bns)
    if 'params_m' in exp:
        params = sum(p.numel() for p in model.parameters())
        assert round(params / 1e6, 2) == pytest.approx(exp['params_m'])


def _metafiles():
    return sorted(
        osp.relpath(p, ROOT).replace(osp.sep, '/')
        for p in glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yml')))


def test_model_index_imports_every_metafile():
    with open(osp.join(ROOT, 'model-index.yml'), encoding='utf-8') as f:
        index = yaml.safe_load(f)
    assert sorted(index['Import']) == _metafiles()


def test_metafiles_list_every_config():
    listed = {}
    for meta in _metafiles():
        with open(osp.join(ROOT, meta), encoding='utf-8') as f:
            data = yaml.safe_load(f)
        collections = {c['Name'] for c in data.get('Collections', [])}
        for model in data['Models']:
            config = model['Config']
            assert osp.isfile(osp.join(ROOT, config)), config
            assert model['Name'] == osp.splitext(osp.basename(config))[0]
            assert model['In Collection'] in collections
            meta_data = model['Metadata']
            assert 'Training Data' in meta_data and 'Batch Size' in meta_data
            assert 'Epochs' in meta_data or 'Iterations' in meta_data
            # numbers are the paper's; we release no weights
            if config[len('configs/'):] in BEYOND_PAPER:
                assert meta_data['Results Source'] == \
                    'none, no weights trained yet'
                assert 'Results' not in model
            else:
                assert 'paper-reported' in meta_data['Results Source']
            assert 'Weights' not in model
            assert model['Name'] not in listed, model['Name']
            listed[model['Name']] = config
    own = {f'configs/{name}' for name in (*EXPECTED, *BEYOND_PAPER)}
    assert own <= set(listed.values()), sorted(own - set(listed.values()))


def test_model_index_loads_as_mim_reads_it():
    load = pytest.importorskip('modelindex.load_model_index').load
    index = load(osp.join(ROOT, 'model-index.yml'))
    names = {model.name for model in index.models}
    assert {osp.splitext(osp.basename(n))[0]
            for n in (*EXPECTED, *BEYOND_PAPER)} <= names
