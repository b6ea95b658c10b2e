"""mmsb.converters on files built the way timm's CheckpointSaver writes them
for the authors' train.py: epoch, arch, state_dict, optimizer, version, args
(argparse.Namespace), amp_scaler, state_dict_ema, metric. The tool
(tools/model_converters/sbnet_to_mmsb.py) is tested in
tests/test_tools/test_model_converters.py."""
import argparse
import pickle
import re

import pytest
import torch
import torch.nn as nn
from mmdet.models.backbones import ResNet
from utils import (HAS_ALLOWLIST, authors_layout, classifier, old_layout,
                   randomize, saver_checkpoint)

from mmsb.converters import (checkpoint_summary, convert_official_sb_resnet,
                             infer_backbone_cfg, load_training_checkpoint,
                             unwrap_state_dict)
from mmsb.models import SBResNet, SBResNetCIFAR


# ------------------------------------------------- the CheckpointSaver file
def test_library_api_on_a_cifar_run(tmp_path):
    # The authors' CIFAR bottleneck ResNet: 3x3 stem, 16/32/64 planes, the
    # branch of SB_module.py (C'=5, N=3, P=10) in the stages chosen.
    model = randomize(SBResNetCIFAR(depth=20, sb_cfg=dict(pooled_size=10)), 3)
    fc = nn.Linear(256, 100)
    ema = authors_layout(
        randomize(SBResNetCIFAR(depth=20, sb_cfg=dict(pooled_size=10)),
                  4).state_dict(), fc)
    path = tmp_path / 'last.pth.tar'
    saved = saver_checkpoint(path, model, fc, ema, arch='resnet_cifar')
    allowlist = getattr(torch.serialization, 'get_safe_globals', list)
    before = set(allowlist())

    ckpt = load_training_checkpoint(str(path))
    assert set(allowlist()) == before     # the allowlist did not leak
    if HAS_ALLOWLIST:
        assert isinstance(ckpt['args'], argparse.Namespace)
        assert ckpt['args'].model == 'resnet_cifar'
    assert ckpt['optimizer']['state'][0]['momentum_buffer'].shape == \
        model.conv1.weight.shape
    assert checkpoint_summary(ckpt) == dict(epoch=7, arch='resnet_cifar',
                                            metric=71.25)
    sd = unwrap_state_dict(ckpt)                  # default: state_dict
    assert all(torch.equal(sd[k], v) for k, v in saved['state_dict'].items())
    ema_sd = unwrap_state_dict(ckpt, 'state_dict_ema')
    assert all(torch.equal(ema_sd[k], v) for k, v in ema.items())

    converted, cfg = convert_official_sb_resnet(sd)
    assert cfg == dict(type='SBResNetCIFAR', depth=20,
                       sb_stages=(True, True, False),
                       sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10))
    clf = classifier(cfg, 100, 256)
    clf.load_state_dict(converted, strict=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clf.eval()(x, mode='tensor'),
                                   fc(model(x)[-1].mean((2, 3))))

    # DataParallel prefixes and bare state dicts (timm's clean_checkpoint).
    bare = {'module.' + k: v for k, v in saved['state_dict'].items()}
    assert list(unwrap_state_dict(bare)) == list(saved['state_dict'])
    with pytest.raises(KeyError, match="bare state dict.*'state_dict_ema'"):
        unwrap_state_dict(bare, 'state_dict_ema')
    no_ema = dict(ckpt)
    del no_ema['state_dict_ema']
    keys = ['amp_scaler', 'arch'] + ['args'] * HAS_ALLOWLIST + [
        'epoch', 'metric', 'optimizer', 'state_dict', 'version']
    with pytest.raises(KeyError, match=re.escape(
            f"no 'state_dict_ema' (the run was trained without --model-ema); "
            f'its keys: {keys}')):
        unwrap_state_dict(no_ema, 'state_dict_ema')
    with pytest.raises(ValueError, match="which='ema'; expected one of"):
        unwrap_state_dict(ckpt, 'ema')


# -------------------------------------------------------------- safe loading
@pytest.mark.skipif(not HAS_ALLOWLIST, reason='this torch has no allowlist')
def test_torch_without_scoped_allowlist(tmp_path, monkeypatch):
    """torch 2.4 has only the process-wide list: it is restored."""
    src = tmp_path / 'last.pth.tar'
    saver_checkpoint(src, SBResNetCIFAR(depth=11, sb_cfg=dict(pooled_size=10)),
                     nn.Linear(256, 10))
    ser = torch.serialization
    monkeypatch.delattr(ser, 'safe_globals', raising=False)
    before = set(ser.get_safe_globals())
    assert isinstance(load_training_checkpoint(str(src))['args'],
                      argparse.Namespace)
    assert set(ser.get_safe_globals()) == before


def test_args_need_an_allowlist(tmp_path, monkeypatch):
    """Without an allowlist (torch < 2.4, or as here made so) a file with
    the run's Namespace is refused, naming what to do; never unpickled
    unrestricted."""
    src = tmp_path / 'last.pth.tar'
    saver_checkpoint(src, SBResNetCIFAR(depth=11, sb_cfg=dict(pooled_size=10)),
                     nn.Linear(256, 10), with_args=True)
    ser = torch.serialization
    monkeypatch.delattr(ser, 'safe_globals', raising=False)
    monkeypatch.delattr(ser, 'add_safe_globals', raising=False)
    with pytest.raises(pickle.UnpicklingError,
                       match=r'argparse\.Namespace.*torch >= 2\.4.*never '
                       r'loads it with weights_only=False'):
        load_training_checkpoint(str(src))


# ------------------------------------------------------ strict architecture
@pytest.fixture(scope='module')
def sb50():
    return authors_layout(SBResNet(depth=50).state_dict())


def _copy_block(sd, src, dst):
    return {k.replace(src + '.', dst + '.'): v
            for k, v in sd.items() if k.startswith(src + '.')}


def test_inference_accepts_exactly_the_authors_networks(sb50):
    assert infer_backbone_cfg(sb50) == dict(
        type='SBResNet', depth=50, sb_stages=(True, True, True, False),
        sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10))
    for depth in (101, 152):
        cfg = infer_backbone_cfg(
            authors_layout(
                SBResNet(depth=depth, sb_stages=(False, True, True,
                                                 False)).state_dict()))
        assert (cfg['type'], cfg['depth'], cfg['sb_stages']) == (
            'SBResNet', depth, (False, True, True, False))
    plain_cifar = SBResNetCIFAR(depth=38, sb_stages=(False, ) * 3)
    assert infer_backbone_cfg(plain_cifar.state_dict()) == dict(
        type='SBResNetCIFAR', depth=38, sb_stages=(False, False, False))


def test_block_counts_of_no_sb_resnet_are_an_error(sb50):
    basic = ResNet(depth=18).state_dict()                    # (2, 2, 2, 2)
    with pytest.raises(ValueError, match=r'basic blocks \(no conv3\) with '
                       r'block counts \(2, 2, 2, 2\)'):
        infer_backbone_cfg(basic)
    demo = authors_layout(SBResNet(depth=26).state_dict())   # mmsb's own
    with pytest.raises(ValueError, match=r'block counts \(2, 2, 2, 2\) '
                       r'belong to no SB-ResNet; expected bottleneck'):
        infer_backbone_cfg(demo)
    short = {k: v for k, v in sb50.items() if not k.startswith('layer3.5.')}
    with pytest.raises(ValueError, match=r'\(3, 4, 5, 3\) belong to no'):
        convert_official_sb_resnet(short)
    deep = dict(sb50)                                        # authors' 200
    for b in range(4, 24):
        deep.update(_copy_block(sb50, 'layer2.3', f'layer2.{b}'))
    for b in range(6, 36):
        deep.update(_copy_block(sb50, 'layer3.5', f'layer3.{b}'))
    with pytest.raises(ValueError, match=r'\(3, 24, 36, 3\) \(depth 200\).*'
                       r'SBResNet .* has no such depth'):
        infer_backbone_cfg(deep)
    cifar = authors_layout(SBResNetCIFAR(depth=11).state_dict())
    uneven = dict(cifar, **_copy_block(cifar, 'layer2.0', 'layer2.1'))
    with pytest.raises(ValueError, match=r'\(1, 2, 1\) belong to no'):
        infer_backbone_cfg(uneven)
    partial = {k: v for k, v in sb50.items()
               if not k.startswith('layer2.1.SB')}
    with pytest.raises(ValueError, match=r'layer2: spatial bias in blocks '
                       r'\[0, 2, 3\] of 4'):
        infer_backbone_cfg(partial)
    thin = dict(sb50, **{'layer1.0.conv3.weight': torch.zeros(256, 64, 1, 1)})
    with pytest.raises(ValueError, match=r'wrong shape.*layer1\.0\.conv3\.'
                       r'weight: \(256, 64, 1, 1\) \(model \(256, 67, 1, 1\)'):
        convert_official_sb_resnet(thin)


def test_converter_rejects_foreign_keys():
    with pytest.raises(ValueError, match='blocks.0.attn.qkv.weight'):
        convert_official_sb_resnet({'blocks.0.attn.qkv.weight':
                                    torch.zeros(1)})


def test_old_layout_is_unsupported(sb50):
    old = old_layout(sb50)
    assert 'layer1.0.nlc_convolution.weight' in old
    for fn in (infer_backbone_cfg, convert_official_sb_resnet):
        with pytest.raises(ValueError, match=r"unsupported layout: .* such "
                           r"as 'layer1\.0\.\w+_gc_reduction\.weight'"):
            fn(old)
