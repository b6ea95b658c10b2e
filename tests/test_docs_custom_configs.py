# Copyright (c) mmsb contributors. All rights reserved.
"""docs/custom_configs.md, example by example.

The examples are read from the markdown (``<!-- example: NAME -->`` before a
fenced block), written to files and built through the real registries, so
the page cannot drift from the code. Quoted log lines (``<!-- log: NAME
-->``) and errors (``<!-- error: NAME -->``) must be what the code prints.

Nothing is downloaded: the checkpoints the examples name by URL
(``torchvision://resnet50``, ``open-mmlab://resnet50_v1c``, mmpretrain's
ResNet-50) are put, with random weights of the right layout, where
``torch.hub`` caches them, under a temporary ``TORCH_HOME``.
"""
import contextlib
import glob
import importlib
import io
import json
import logging
import os
import os.path as osp
import re
import sys
import textwrap
from urllib.parse import urlparse

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.logging import MMLogger
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner.checkpoint import (get_external_models,
                                        get_torchvision_models)
from utils import CONFIGS, explain, free_port, overrides, run, tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOC = osp.join(ROOT, 'docs', 'custom_configs.md')
MMPRETRAIN_R50 = ('https://download.openmmlab.com/mmclassification/v0/'
                  'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth')

# Every marked block of the page, by kind; a new one needs a test here.
EXAMPLES = {
    'swap-detector', 'swap-dilated-segmentor', 'swap-classifier',
    'scoped-type', 'init-mmpretrain-resnet', 'init-converted',
    'init-sb-classifier', 'frozen-stages', 'syncbn-to-bn', 'auto-scale-lr'
}
LOGS = {
    'swap-detector', 'init-mmpretrain-resnet', 'init-converted',
    'init-sb-classifier', 'syncbn-one-process', 'auto-scale-lr'
}
ERRORS = {'registry', 'shape', 'no-prefix', 'wrong-prefix', 'syncbn-gloo'}

_BLOCK = re.compile(
    r'<!-- (example|log|error): ([\w-]+) -->\n'
    r'( *)```(\w+)\n(.*?)\n *```', re.S)


def _blocks():
    found = {'example': {}, 'log': {}, 'error': {}}
    with open(DOC, encoding='utf-8') as f:
        text = f.read()
    for kind, name, _, _, body in _BLOCK.findall(text):
        assert name not in found[kind], f'{kind} {name} twice'
        found[kind][name] = textwrap.dedent(body)
    return text, found


TEXT, BLOCKS = _blocks()


def example(name):
    return BLOCKS['example'][name]


def quoted(kind, name):
    """Lines of a quoted log/error block; a trailing '...' marks a line the
    page shortens (its start must match)."""
    return BLOCKS[kind][name].splitlines()


def not_printed(kind, name, output):
    missing = []
    for line in quoted(kind, name):
        head = line[:-3].rstrip(' ,;') if line.endswith('...') else line
        if head not in output:
            missing.append(line)
    return missing


def assert_quoted(kind, name, output):
    missing = not_printed(kind, name, output)
    assert not missing, f'{kind} {name}: not printed: {missing}'


def test_every_marked_block_is_tested():
    assert set(BLOCKS['example']) == EXAMPLES
    assert set(BLOCKS['log']) == LOGS
    assert set(BLOCKS['error']) == ERRORS
    # every config on the page is a marked example
    configs = re.findall(r'```python\n(.*?)```', TEXT, re.S)
    assert len(configs) == len(EXAMPLES)
    assert all('_base_' in c for c in configs)


# --------------------------------------------------------------------------
# checkpoints where torch.hub finds them, and building the examples


def _randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if t.dim() > 1:
                t.copy_(torch.randn(t.shape, generator=g) *
                        (2 / t[0].numel())**.5)
            elif name.endswith(('running_var', '.weight')):
                t.copy_(torch.rand(t.shape, generator=g) + .5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * .1)
    return model


def _build_stock(scope, model_cfg):
    with DefaultScope.overwrite_default_scope(scope):
        registry = importlib.import_module(f'{scope}.registry').MODELS
        return registry.build(model_cfg)


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    """TORCH_HOME whose hub cache holds the checkpoints the page names."""
    import torchvision
    from mmseg.models.backbones import ResNetV1c
    home = tmp_path_factory.mktemp('torch_home')
    cache = home / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)

    def put(url, obj):
        torch.save(obj, cache / osp.basename(urlparse(url).path))

    put(get_torchvision_models()['resnet50'],
        _randomize(torchvision.models.resnet50(), 1).state_dict())
    put(get_external_models()['resnet50_v1c'],
        _randomize(ResNetV1c(depth=50), 2).state_dict())
    classifier = _build_stock(
        'mmpretrain', get_config('mmpretrain::resnet/resnet50_8xb32_in1k.py',
                                 pretrained=False).model)
    put(MMPRETRAIN_R50, dict(meta=dict(), state_dict=_randomize(
        classifier, 3).state_dict()))
    return home


@pytest.fixture
def env(hub, tmp_path, monkeypatch):
    """A working dir for relative checkpoint paths and the hub cache."""
    monkeypatch.setenv('TORCH_HOME', str(hub))
    monkeypatch.chdir(tmp_path)
    return tmp_path


class _Lines(logging.Handler):

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def build(name, tmp_path, text=None, init=True):
    """(model, config, log) of an example; ``init`` runs init_weights as
    the Runner does, with the log mmengine writes meanwhile."""
    path = tmp_path / f'{name}.py'
    path.write_text(text if text is not None else example(name))
    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.default_scope)
    model = _build_stock(cfg.default_scope, cfg.model)
    handler = _Lines()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    printed = io.StringIO()  # mmengine prints some lines without a logger
    try:
        with contextlib.redirect_stdout(printed):
            if init:
                model.init_weights()
    finally:
        logger.removeHandler(handler)
    return model, cfg, '\n'.join(handler.lines + [printed.getvalue()])


def assert_only_spatial_bias_missing(log):
    """'Every other tensor was loaded': mmengine's list of missing keys
    names spatial bias tensors only, 7 per SB block (13 in an R-50)."""
    [line] = [ln for ln in log.splitlines()
              if ln.startswith('missing keys in source state_dict: ')]
    names = line.split(': ', 1)[1].split(', ')
    assert all('.spatial_bias.' in n for n in names), names
    assert len(names) == 7 * 13


def _same_outputs(a, b, size=64):
    a, b = revert_sync_batchnorm(a), revert_sync_batchnorm(b)
    a.eval()  # mmdet's ResNet.train returns None, not the module
    b.eval()
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        for fa, fb in zip(a(x), b(x), strict=True):
            # Random weights grow the activations to thousands by stage 4,
            # and fp32 rounding with them: AVX2 and AVX-512 conv kernels
            # sum in different orders (seen: 2.2e-3 at a scale of 3497, 6e-7
            # of it, on an AVX2 machine). So the absolute tolerance follows
            # the tensor's own scale; a lost tensor differs by about all of it.
            scale = max(fb.abs().max().item(), 1.)
            torch.testing.assert_close(fa, fb, rtol=1e-4, atol=1e-5 * scale)


# --------------------------------------------------------------------------
# Swap the backbone


def test_swap_detector_loads_torchvision_function_preservingly(env):
    model, cfg, log = build('swap-detector', env)
    assert type(model.backbone).__name__ == 'SBResNet'
    assert_quoted('log', 'swap-detector', log)
    assert_only_spatial_bias_missing(log)
    stock_cfg = get_config('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py')
    stock = _build_stock('mmdet', stock_cfg.model.backbone)
    stock.init_weights()
    _same_outputs(model.backbone, stock)


def _conv2_dilations(backbone):
    return [(name, blk.conv2.dilation, blk.conv2.padding)
            for name in backbone.res_layers
            for blk in getattr(backbone, name)]


def test_swap_dilated_segmentor_keeps_contract_dilation(env):
    model, cfg, log = build('swap-dilated-segmentor', env)
    backbone = model.backbone
    assert type(backbone).__name__ == 'SBResNetV1c'
    assert cfg.model.backbone.contract_dilation is True
    assert 'load model from: open-mmlab://resnet50_v1c' in log
    stock_cfg = get_config('mmseg::deeplabv3/'
                           'deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py')
    stock = _build_stock('mmseg', stock_cfg.model.backbone)
    stock.init_cfg = dict(type='Pretrained',
                          checkpoint='open-mmlab://resnet50_v1c')
    stock.init_weights()
    assert _conv2_dilations(backbone) == _conv2_dilations(stock)
    # the first block of stage 3 (dilation 2) and 4 (dilation 4) contracts
    assert backbone.layer3[0].conv2.dilation == (1, 1)
    assert backbone.layer4[0].conv2.dilation == (2, 2)
    assert backbone.layer4[1].conv2.dilation == (4, 4)
    _same_outputs(backbone, stock)


def test_swap_classifier(env):
    model, cfg, _ = build('swap-classifier', env)
    assert type(model.backbone).__name__ == 'SBResNet'
    assert model.backbone.out_indices == (3, )
    with torch.no_grad():
        logits = model.eval()(torch.rand(1, 3, 64, 64), mode='tensor')
    assert logits.shape == (1, 1000)


REGISTRY_SCRIPT = '''
import sys
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS
init_default_scope('mmdet')
no_import, scoped = sys.argv[1:3]
try:
    MODELS.build(Config.fromfile(no_import).model)
except KeyError as e:
    print('KeyError:', e)
assert 'mmsb' not in sys.modules
model = MODELS.build(Config.fromfile(scoped).model)
print('built', type(model.backbone).__name__, 'mmsb' in sys.modules)
'''


@pytest.mark.slow
def test_registry_error_and_scoped_type(tmp_path):
    """In a fresh process: without custom_imports the model registry does
    not know SBResNet; a scoped type name imports mmsb by itself."""
    no_import = tmp_path / 'no_import.py'
    lines = example('swap-detector').splitlines()
    assert lines[1].startswith('custom_imports')
    no_import.write_text('\n'.join(lines[:1] + lines[2:]))
    scoped = tmp_path / 'scoped.py'
    scoped.write_text(example('scoped-type'))
    proc = run([sys.executable, '-c', REGISTRY_SCRIPT, str(no_import),
                str(scoped)], cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert_quoted('error', 'registry', proc.stdout)
    assert 'built SBResNet True' in proc.stdout


# --------------------------------------------------------------------------
# Start from weights


def test_init_from_mmpretrain_resnet(env):
    model, _, log = build('init-mmpretrain-resnet', env)
    assert_quoted('log', 'init-mmpretrain-resnet', log)
    assert 'unexpected key' not in log  # the head is cut off by the prefix
    assert_only_spatial_bias_missing(log)
    ckpt = torch.load(osp.join(os.environ['TORCH_HOME'], 'hub',
                               'checkpoints', osp.basename(MMPRETRAIN_R50)))
    sd = ckpt['state_dict']
    backbone = model.backbone.state_dict()
    assert torch.equal(backbone['conv1.weight'], sd['backbone.conv1.weight'])
    assert torch.equal(backbone['layer3.5.conv3.weight'][:, :256],
                       sd['backbone.layer3.5.conv3.weight'])
    assert not backbone['layer3.5.conv3.weight'][:, 256:].any()


def _authors_checkpoint(path, sb_cfg=None):
    """What the authors' train.py saves for an SB-ResNet-50: their key
    names, a classifier fc."""
    from mmsb.models import SBResNet
    backbone = _randomize(SBResNet(depth=50, sb_cfg=sb_cfg), 4)
    sd = {}
    for k, v in backbone.state_dict().items():
        k = k.replace('.spatial_bias.reduce.', '.SB.feature_reduction.0.')
        k = k.replace('.spatial_bias.bn.', '.SB.feature_reduction.1.')
        k = k.replace('.spatial_bias.mix.', '.SB.sb_conv.')
        sd[k] = v
    sd['fc.weight'], sd['fc.bias'] = torch.zeros(1000, 2048), torch.zeros(
        1000)
    torch.save(dict(epoch=1, arch='sb_resnet50', state_dict=sd), path)
    return backbone


def _convert(src, dst):
    proc = run([sys.executable, osp.join(ROOT, 'tools', 'model_converters',
                                         'sbnet_to_mmsb.py'), str(src),
                str(dst), '--backbone-only'], cwd=osp.dirname(str(dst)))
    assert proc.returncode == 0, explain(proc)


@pytest.mark.slow
def test_init_from_converted_checkpoint(env):
    (env / 'checkpoints').mkdir()
    source = _authors_checkpoint(env / 'model_best.pth.tar')
    _convert(env / 'model_best.pth.tar',
             env / 'checkpoints' / 'sb-r50_backbone.pth')
    model, _, log = build('init-converted', env)
    assert_quoted('log', 'init-converted', log)
    assert 'do not match' not in log and 'widened' not in log
    for k, v in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k

    # the same file, converted from an SB-ResNet with 6x6 pooling
    _authors_checkpoint(env / 'p6.pth.tar', sb_cfg=dict(pooled_size=6))
    _convert(env / 'p6.pth.tar', env / 'checkpoints' / 'p6.pth')
    text = example('init-converted').replace('sb-r50_backbone.pth', 'p6.pth')
    with pytest.raises(ValueError) as err:
        build('init-converted', env, text=text)
    assert_quoted('error', 'shape', f'ValueError: {err.value}')


@pytest.fixture
def sb_classifier_checkpoint(env):
    """A Runner checkpoint of configs/sb_resnet's SB-ResNet-50 classifier,
    where the example looks for it."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'sb_resnet',
                 'sb-resnet50_8xb32-90e_in1k.py'))
    classifier = _randomize(_build_stock('mmpretrain', cfg.model), 5)
    path = env / 'work_dirs' / 'sb-resnet50_8xb32-90e_in1k' / 'epoch_90.pth'
    path.parent.mkdir(parents=True)
    torch.save(dict(meta=dict(epoch=90), state_dict=classifier.state_dict()),
               path)
    return classifier.backbone


def test_init_from_sb_classifier(env, sb_classifier_checkpoint):
    model, _, log = build('init-sb-classifier', env)
    assert_quoted('log', 'init-sb-classifier', log)
    assert 'do not match' not in log and 'widened' not in log
    for k, v in sb_classifier_checkpoint.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k


def test_wrong_prefix_is_refused(env, sb_classifier_checkpoint):
    text = example('init-sb-classifier').replace(
        "prefix='backbone.'", "prefix='model.'")
    with pytest.raises(AssertionError) as err:
        build('init-sb-classifier', env, text=text)
    assert_quoted('error', 'wrong-prefix', f'AssertionError: {err.value}')


def test_checkpoint_without_prefix_is_refused(env, sb_classifier_checkpoint):
    text = example('init-sb-classifier').replace(
        ",\n            prefix='backbone.'", '')
    assert 'prefix' not in text
    try:
        model, _, log = build('init-sb-classifier', env, text=text)
    except ValueError as e:
        missing = not_printed('error', 'no-prefix', f'ValueError: {e}')
        if missing:
            pytest.fail(f'refused, but not as the page says: {missing}')
        return
    pytest.fail('the checkpoint loaded nothing, silently')


# --------------------------------------------------------------------------
# frozen_stages and norm_eval


def test_frozen_stages_freeze_the_spatial_bias_branch(env):
    model, cfg, _ = build('frozen-stages', env, init=False)
    backbone = model.backbone
    assert backbone.frozen_stages == 2 and backbone.norm_eval
    model.train()
    for name, p in backbone.named_parameters():
        frozen = name.startswith(('conv1.', 'bn1.', 'layer1.', 'layer2.'))
        assert p.requires_grad != frozen, name
    sb_in = {
        name: any('.spatial_bias.' in n
                  for n, _ in getattr(backbone, name).named_parameters())
        for name in backbone.res_layers
    }
    assert sb_in == dict(layer1=True, layer2=True, layer3=True, layer4=False)
    for name, m in backbone.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            assert not m.training, name  # norm_eval, SB branches included
    assert backbone.layer3[0].spatial_bias.mix.weight.requires_grad
    assert not backbone.layer2[0].spatial_bias.mix.weight.requires_grad


@pytest.mark.slow
def test_ddp_with_a_frozen_stage_needs_no_unused_parameters(tmp_path):
    """Two gloo processes train the demo SB detector with frozen_stages=1
    and find_unused_parameters=False: DDP raises its "Expected to have
    finished reduction" error on the iteration after one with unused
    parameters, so three iterations must pass."""
    work = tmp_path / 'work'
    proc = run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'),
                CONFIGS['det'], '2', '--work-dir', str(work),
                '--cfg-options', *overrides(
                    'det', tmp_path, max_iters=3, ckpt_interval=3),
                'model.backbone.frozen_stages=1',
                'find_unused_parameters=False'],
               cwd=tmp_path, timeout=400,
               extra_env=dict(PYTHON=sys.executable, PORT=str(free_port())))
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout + proc.stderr
    assert 'Expected to have finished reduction' not in out
    assert 'were not used in producing loss' not in out
    [log] = glob.glob(str(work / '*' / '*.log'))
    with open(log) as f:
        text = f.read()
    assert 'Distributed training: True' in text
    assert "'frozen_stages': 1" in text or 'frozen_stages=1' in text
    assert (work / 'iter_3.pth').is_file()


# --------------------------------------------------------------------------
# SyncBN, auto_scale_lr


def test_syncbn_to_bn_leaves_no_syncbn(env):
    model, cfg, _ = build('syncbn-to-bn', env, init=False)
    norms = [type(m).__name__ for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and set(norms) == {'BatchNorm2d'}
    sb = model.backbone.layer1[0].spatial_bias
    assert type(sb.bn).__name__ == 'BatchNorm2d'


SYNCBN_GLOO = '''
import torch, torch.distributed as dist
import mmsb
from mmsb.models import SBResNetV1c
dist.init_process_group('gloo', rank=0, world_size=1)
model = SBResNetV1c(depth=50, norm_cfg=dict(type='SyncBN')).train()
try:
    model(torch.rand(2, 3, 64, 64))
except ValueError as e:
    print('ValueError:', e)
'''


@pytest.mark.slow
def test_syncbn_refuses_cpu_processes(tmp_path):
    proc = run([sys.executable, '-c', SYNCBN_GLOO], cwd=tmp_path,
               extra_env=dict(MASTER_ADDR='127.0.0.1',
                              MASTER_PORT=str(free_port())))
    assert proc.returncode == 0, explain(proc)
    assert_quoted('error', 'syncbn-gloo', proc.stdout)


def test_auto_scale_lr_example(env):
    model, cfg, _ = build('auto-scale-lr', env, init=False)
    assert type(model.backbone).__name__ == 'SBResNetV1c'
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=16)
    assert cfg.train_dataloader.batch_size * 4 == 16  # the recipe's 4 GPUs


@pytest.mark.slow
def test_one_process_reverts_syncbn_and_scales_lr(tmp_path):
    """tools/train.py on the demo segmentor with SyncBN everywhere and
    auto_scale_lr (recipe batch 8, run with 2 images)."""
    work = tmp_path / 'work'
    proc = run(tool('train.py') + [
        CONFIGS['seg'], '--work-dir', str(work), '--auto-scale-lr',
        '--cfg-options', *overrides('seg', tmp_path, max_iters=1,
                                    ckpt_interval=1),
        'model.backbone.norm_cfg.type=SyncBN',
        'model.decode_head.norm_cfg.type=SyncBN',
        'auto_scale_lr.base_batch_size=8'
    ], cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    [log] = glob.glob(str(work / '*' / '*.log'))
    with open(log) as f:
        text = f.read()
    assert "'type': 'SyncBN'" in text or "type='SyncBN'" in text
    assert_quoted('log', 'syncbn-one-process', text)
    assert_quoted('log', 'auto-scale-lr', text)
    [scalars] = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    with open(scalars) as f:
        first = json.loads(f.readline())
    # the config's AdamW lr 0.004, x 2/8, at the warm-up's start factor 0.01
    assert first['lr'] == pytest.approx(0.004 * 0.25 * 0.01)
