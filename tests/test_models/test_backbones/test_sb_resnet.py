import pytest
import torch
import torch.nn as nn
from mmdet.models.backbones import ResNet

from mmsb.models import (SBBottleneck, SBResNet, SBResNetCIFAR, SBResNetV1c,
                         SBResNetV1d, SpatialBias)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def with_head(backbone, channels, classes):
    return n_params(backbone) + channels * classes + classes


def randomize_bn(model):
    """Non-trivial BN statistics, so that equivalence checks mean something."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * .1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * .1)


# ---------------------------------------------------------------- registries
@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_built_through_each_downstream_registry(scope):
    from mmengine.registry import DefaultScope
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        for typ in ('SBResNet', 'mmsb.SBResNet'):
            model = registry.build(
                dict(type=typ, depth=50, out_indices=(1, 3)))
            assert type(model) is SBResNet
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    outs = model(x)
    assert [o.shape[1] for o in outs] == [512, 2048]
    sum(o.sum() for o in outs).backward()
    assert model.layer1[0].spatial_bias.mix.weight.grad is not None


def test_detector_segmentor_classifier_forward_backward():
    from mmdet.registry import MODELS as DET
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as CLS
    from mmseg.registry import MODELS as SEG
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        clf = CLS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='SBResNetCIFAR', depth=38),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead', num_classes=10, in_channels=256)))
    from mmpretrain.structures import DataSample
    x = torch.rand(1, 3, 32, 32)   # batch size 1
    losses = clf(x, [DataSample().set_gt_label(3)], mode='loss')
    losses['loss'].backward()
    with DefaultScope.overwrite_default_scope('mmseg'):
        seg_backbone = SEG.build(
            dict(type='SBResNetV1c', depth=50, contract_dilation=True,
                 strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)))
    outs = seg_backbone(torch.rand(1, 3, 65, 97))
    assert outs[3].shape[-2:] == outs[1].shape[-2:]
    assert seg_backbone.layer3[0].conv2.dilation == (1, 1)
    assert seg_backbone.layer3[1].conv2.dilation == (2, 2)
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = DET.build(
            dict(type='SBResNet', depth=50, frozen_stages=1, norm_eval=True))
    backbone.train()
    assert not backbone.layer1[0].spatial_bias.reduce.weight.requires_grad
    assert not backbone.layer2[0].norm2.training      # norm_eval
    assert backbone.layer2[0].spatial_bias.mix.weight.requires_grad


def test_non_square_detection_input_and_batch_one():
    model = SBResNet(depth=50, out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 200, 333))
    assert [tuple(o.shape[-2:]) for o in outs] == [(50, 84), (25, 42),
                                                   (13, 21), (7, 11)]


# ---------------------------------------------------------- block structure
def test_widening_and_positions():
    m = SBResNet(depth=50)
    blk = m.layer2[1]
    assert isinstance(blk.spatial_bias, SpatialBias)
    assert blk.norm2.num_features == 128 + 3
    assert blk.conv3.in_channels == 128 + 3
    assert m.layer4[0].spatial_bias is None          # Table 6: not s4
    assert m.layer4[0].conv3.in_channels == 512
    c1 = SBResNet(depth=50, sb_position='conv1')
    assert c1.layer1[0].norm1.num_features == 64 + 3
    assert c1.layer1[0].conv2.in_channels == 64 + 3
    assert c1.layer1[0].spatial_bias.in_channels == 64   # block input
    add = SBResNet(depth=50, sb_cfg=dict(fusion='add'))
    assert add.layer1[0].conv3.in_channels == 64


def test_plugins_see_widened_channels_and_combine():
    # SB-GCNet / SB-NLNet (Table 9): mmcv plugins next to spatial bias.
    plugins = [
        dict(cfg=dict(type='ContextBlock', ratio=1. / 16),
             stages=(False, True, True, True), position='after_conv3'),
        dict(cfg=dict(type='NonLocal2d', reduction=2),
             stages=(False, False, True, False), position='after_conv2'),
    ]
    m = SBResNet(depth=50, plugins=plugins).eval()
    blk = m.layer3[0]
    nl = getattr(blk, blk.after_conv2_plugin_names[0])
    assert nl.in_channels == 256 + 3
    with torch.no_grad():
        out = m(torch.rand(1, 3, 96, 64))
    assert out[-1].shape[1] == 2048


def test_with_cp_dcn_gn_syncbn_caffe():
    m = SBResNet(depth=50, with_cp=True, style='caffe')
    ref = SBResNet(depth=50, style='caffe')
    ref.load_state_dict(m.state_dict())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    grads = [torch.autograd.grad(
        model(x)[-1].sum(), (x, model.layer1[0].spatial_bias.mix.weight))
        for model in (m, ref)]
    for got, want in zip(*grads):   # recomputed in backward: the same
        torch.testing.assert_close(got, want)
    gn = SBResNet(depth=50, norm_cfg=dict(type='GN', num_groups=32))
    assert type(gn.layer1[0].spatial_bias.norm).__name__ == 'GroupNorm'
    assert type(gn.layer1[0].norm2).__name__ == 'SplitNorm'
    gn(torch.rand(1, 3, 64, 64))
    sync = SBResNet(depth=50, norm_cfg=dict(type='SyncBN'))
    assert type(sync.layer1[0].norm2).__name__ == 'SyncBatchNorm'
    dcn = SBResNet(
        depth=50,
        dcn=dict(type='DCN', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True))
    assert type(dcn.layer2[0].conv2).__name__ == 'DeformConv2dPack'
    dcn1 = SBResNet(
        depth=50, sb_position='conv1',
        dcn=dict(type='DCN', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True))
    assert type(dcn1.layer2[0].conv2).__name__ == 'DeformConv2dPack'
    assert dcn1.layer2[0].conv2.in_channels == 128 + 3


def test_v1c_v1d_stems():
    assert hasattr(SBResNetV1c(depth=50), 'stem')
    v1d = SBResNetV1d(depth=50)
    assert isinstance(v1d.layer2[0].downsample[0], nn.AvgPool2d)


def test_zero_init_residual_applies_to_sb_blocks():
    m = SBResNet(depth=50)
    m.init_weights()
    for _, block in m.sb_blocks():
        assert torch.all(block.norm3.weight == 0)
        # The widened norm starts as (1, 0) for conv and bias channels alike.
        assert torch.all(block.norm2.weight == 1)
        assert torch.all(block.norm2.bias == 0)
        # The 1-D mixing conv keeps PyTorch's default init, as in the
        # authors' code: uniform in +-1/sqrt(fan_in), std bound/sqrt(3).
        mix = block.spatial_bias.mix.weight
        bound = mix[0].numel()**-.5
        assert float(mix.abs().max()) <= bound
        assert float(mix.std()) == pytest.approx(bound / 3**.5, rel=0.02)


# ------------------------------------------------------ weights users have
def _plain_and_sb(depth=50, **sb_kwargs):
    plain = ResNet(depth=depth, out_indices=(0, 1, 2, 3))
    randomize_bn(plain)
    sb = SBResNet(depth=depth, out_indices=(0, 1, 2, 3), **sb_kwargs)
    return plain, sb


@pytest.mark.parametrize('sb_kwargs', [
    dict(), dict(sb_position='conv1'),
    dict(sb_stages=(True, True, True, True), sb_cfg=dict(num_bias=5))
])
def test_plain_resnet_weights_are_function_preserving(sb_kwargs, tmp_path):
    from mmengine.runner import load_checkpoint
    plain, sb = _plain_and_sb(**sb_kwargs)
    path = tmp_path / 'r50.pth'
    torch.save({'state_dict': plain.state_dict()}, path)
    load_checkpoint(sb, str(path), map_location='cpu')
    plain.eval(), sb.eval()
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        for a, b in zip(plain(x), sb(x)):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_plain_gn_resnet_weights_are_function_preserving(tmp_path):
    from mmengine.runner import load_checkpoint
    gn = dict(type='GN', num_groups=32, requires_grad=True)
    plain = ResNet(depth=50, norm_cfg=gn, out_indices=(0, 1, 2, 3))
    for m in plain.modules():
        if isinstance(m, nn.GroupNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    sb = SBResNet(depth=50, norm_cfg=gn, out_indices=(0, 1, 2, 3))
    torch.save(plain.state_dict(), tmp_path / 'gn.pth')
    load_checkpoint(sb, str(tmp_path / 'gn.pth'), strict=False)
    x = torch.rand(2, 3, 64, 96)
    plain.eval()   # mmdet's ResNet.train() returns None: no chaining
    with torch.no_grad():
        for a, b in zip(plain(x), sb.eval()(x)):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_pretrained_init_cfg_with_torchvision_and_mmpretrain_layouts(
        tmp_path):
    plain, _ = _plain_and_sb()
    sd = plain.state_dict()
    # torchvision layout: bare keys plus an fc head the backbone ignores.
    tv = dict(sd, **{'fc.weight': torch.zeros(1000, 2048),
                     'fc.bias': torch.zeros(1000)})
    torch.save(tv, tmp_path / 'tv.pth')
    # mmpretrain layout: ImageClassifier keys under backbone./head.
    mp = {'backbone.' + k: v for k, v in sd.items()}
    mp['head.fc.weight'] = torch.zeros(1000, 2048)
    torch.save({'state_dict': mp, 'meta': {}}, tmp_path / 'mp.pth')
    x = torch.rand(1, 3, 64, 96)
    plain.eval()
    with torch.no_grad():
        ref = plain(x)
    for name, prefix in (('tv.pth', None), ('mp.pth', 'backbone.')):
        init = dict(type='Pretrained', checkpoint=str(tmp_path / name))
        if prefix:
            init['prefix'] = prefix
        sb = SBResNet(depth=50, out_indices=(0, 1, 2, 3), init_cfg=init)
        sb.init_weights()
        with torch.no_grad():
            for a, b in zip(ref, sb.eval()(x)):
                torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_missing_keys_are_reported_by_name(tmp_path):
    from mmengine.logging import MMLogger
    from mmengine.runner import load_checkpoint
    plain, sb = _plain_and_sb()
    torch.save(plain.state_dict(), tmp_path / 'r50.pth')
    logger = MMLogger.get_instance('mmsb_test_missing')
    records = []
    import logging
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    logger.addHandler(handler)
    try:
        load_checkpoint(sb, str(tmp_path / 'r50.pth'), logger=logger)
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(records)
    assert 'missing keys' in text
    assert 'layer1.0.spatial_bias.mix.weight' in text


@pytest.mark.parametrize('norm_eval', [False, True])
def test_plain_load_by_value_and_the_branch_trains(norm_eval):
    """After a plain-ResNet load the widened norm holds (1, 0) affine and
    (0, 1) running statistics for the bias channels, and the plain values
    for the rest; the output equals the plain ResNet's. Training revives the
    branch: the next conv's bias-channel columns start at 0, so step 1 gives
    the branch no gradient but moves those columns (their input, ReLU of the
    normalised bias maps, is not 0); step 2 then moves the branch. A norm
    weight filled with 0 would keep that input at ReLU(0) = 0: dead for
    good."""
    plain = ResNet(depth=50, base_channels=16, out_indices=(0, 1, 2, 3))
    randomize_bn(plain)
    sb = SBResNet(depth=50, base_channels=16, out_indices=(0, 1, 2, 3),
                  norm_eval=norm_eval)
    missing = sb.load_state_dict(plain.state_dict(), strict=False)[0]
    assert missing and all('.spatial_bias.' in k for k in missing)
    plain_sd = plain.state_dict()
    blocks = list(sb.sb_blocks())
    assert len(blocks) == 13                             # stages 1-3
    for name, block in blocks:
        norm_name, _ = block.widened_layers()
        norm = getattr(block, norm_name)
        n = norm.num_features - block.sb_channels
        for key, fill in (('weight', 1.), ('bias', 0.), ('running_mean', 0.),
                          ('running_var', 1.)):
            t = getattr(norm, key)
            assert torch.equal(t[:n], plain_sd[f'{name}.{norm_name}.{key}'])
            assert torch.equal(t[n:], torch.full_like(t[n:], fill)), \
                f'{name}.{norm_name}.{key}'

    x = torch.rand(2, 3, 64, 96)
    plain.eval()
    with torch.no_grad():
        for a, b in zip(plain(x), sb.eval()(x)):
            torch.testing.assert_close(b, a)

    sb.train()
    # Plain SGD: without momentum or decay only a gradient moves a tensor.
    opt = torch.optim.SGD(sb.parameters(), lr=0.1)

    def step():
        opt.zero_grad()
        sum(o.pow(2).mean() for o in sb(x)).backward()
        opt.step()

    def branches():
        return [torch.cat([p.detach().flatten() for p in
                           b.spatial_bias.parameters()]) for _, b in blocks]

    before = branches()
    step()
    for (name, block), was, now in zip(blocks, before, branches()):
        conv = getattr(block, block.widened_layers()[1])
        cols = conv.weight[:, -block.sb_channels:]
        assert torch.equal(now, was), name      # no gradient through 0 cols
        assert (cols != 0).any(0).all(), f'{name}: a bias channel is dead'
    step()
    for (name, _), was, now in zip(blocks, before, branches()):
        assert not torch.equal(now, was), f'{name}: the branch did not move'


def test_irreconcilable_shapes_are_an_error(tmp_path):
    from mmengine.runner import load_checkpoint
    plain = ResNet(depth=50, base_channels=32)   # a thinner network
    torch.save(plain.state_dict(), tmp_path / 'thin.pth')
    sb = SBResNet(depth=50)
    with pytest.raises(ValueError, match=r'cannot be reconciled.*conv1\.'):
        load_checkpoint(sb, str(tmp_path / 'thin.pth'))
    other = SBResNet(depth=50, sb_cfg=dict(pooled_size=6))
    torch.save(other.state_dict(), tmp_path / 'p6.pth')
    with pytest.raises(ValueError, match='spatial_bias.mix.weight'):
        load_checkpoint(sb, str(tmp_path / 'p6.pth'))


# ------------------------------------------------- fidelity to the paper
def test_parameter_counts_reproduce_tables_1_to_9():
    def imnet(**kw):
        return round(with_head(SBResNet(depth=50, **kw), 2048, 1000) / 1e6, 2)

    def cifar(depth, **kw):
        return round(
            with_head(SBResNetCIFAR(depth=depth, **kw), 256, 100) / 1e6, 2)

    assert imnet() == 25.99                                     # Tables 6, 8, 9
    assert imnet(sb_stages=(False, True, True, False)) == 25.89       # Table 6
    assert imnet(sb_stages=(True, False, True, False)) == 25.86       # Table 6
    for k, p in zip((1, 2, 3, 4, 5), (25.87, 25.88, 25.89, 25.90, 25.91)):
        assert imnet(sb_stages=(False, True, True, False),
                     sb_cfg=dict(num_bias=k)) == p                # Table 7
    none, s1 = (False, ) * 3, (True, False, False)
    s12, s123 = (True, True, False), (True, True, True)
    table1 = {38: (0.43, 0.45, 0.46, 0.48), 65: (0.71, 0.74, 0.77, 0.80),
              110: (1.17, 1.22, 1.28, 1.34)}
    for depth, expected in table1.items():
        got = tuple(cifar(depth, sb_stages=s) for s in (none, s1, s12, s123))
        assert got == expected, depth                             # Table 1
    assert cifar(65, sb_position='conv1') == 0.78                 # Table 2
    assert cifar(65, sb_position='conv1', sb_stages=s123) == 0.83
    for p, expected in ((6, 0.77), (10, 1.13), (14, 2.33), (16, 3.47)):
        assert cifar(65, sb_cfg=dict(pooled_size=p)) == expected  # Table 3
    assert cifar(65, sb_cfg=dict(num_bias=1)) == 0.76             # Table 4
    for k in range(2, 7):
        assert cifar(65, sb_cfg=dict(num_bias=k)) == 0.77
    assert cifar(65, sb_cfg=dict(fusion='add')) == 0.76           # Table 5
    assert cifar(65, sb_cfg=dict(pool_type='max')) == 0.77
    assert cifar(65, sb_cfg=dict(mixing='none')) == 0.71


def test_gflops_at_224_within_003_of_resnet50():
    from mmengine.analysis import get_model_complexity_info
    flops = {}
    for name, m in (('r50', ResNet(depth=50)), ('sb', SBResNet(depth=50))):
        m.eval()
        info = get_model_complexity_info(
            m, input_shape=(3, 224, 224), show_table=False, show_arch=False)
        flops[name] = info['flops'] / 1e9
    assert round(flops['r50'], 2) == 4.11                       # Table 9
    assert 0 < flops['sb'] - flops['r50'] <= 0.03


# --------------------------------------------------------------- errors
@pytest.mark.parametrize('kwargs,exc,words', [
    (dict(depth=34), KeyError, r'invalid depth 34; allowed: \[26, 50'),
    (dict(depth=50, sb_stages=(True, True, True)), ValueError,
     'sb_stages has 3 entries but num_stages is 4'),
    (dict(depth=50, sb_cfg=dict(pooled_size=0)), ValueError, 'pooled_size'),
    (dict(depth=50, sb_cfg=dict(kernel_size=0)), ValueError, 'kernel_size'),
    (dict(depth=50, sb_cfg=dict(pool_type='lp')), KeyError, 'pool_type'),
    (dict(depth=50, sb_cfg=dict(fusion='mul')), KeyError, 'fusion'),
    (dict(depth=50, sb_cfg=dict(size=10)), KeyError,
     r"unknown sb_cfg option\(s\) \['size'\]"),
    (dict(depth=50, sb_cfg=dict(reduced_channels=5)), KeyError,
     r"unknown sb_cfg option\(s\) \['reduced_channels'\]"),
    (dict(depth=50, sb_position='conv3'), KeyError, 'sb_position'),
    (dict(depth=50, sb_stages=(False, ) * 4, sb_position='conv3'), KeyError,
     "unknown sb_position 'conv3'"),
    (dict(depth=50, sb_stages=(False, ) * 4, sb_cfg=dict(pooled_size=0)),
     ValueError, 'pooled_size'),
])
def test_errors_name_the_argument(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        SBResNet(**kwargs)


def test_cifar_depth_errors():
    with pytest.raises(KeyError, match='9n\\+2'):
        SBResNetCIFAR(depth=50)
    assert len(SBResNetCIFAR(depth=110).layer1) == 12


def test_block_without_sb_is_plain_bottleneck():
    blk = SBBottleneck(64, 16, sb_cfg=None)
    assert blk.spatial_bias is None and blk.conv3.in_channels == 16
    with pytest.raises(KeyError, match="unknown sb_position 'conv3'"):
        SBBottleneck(64, 16, sb_cfg=dict(), sb_position='conv3')


def test_foreign_checkpoint_is_refused_only_at_the_root():
    sb = SBResNet(depth=26, base_channels=16)
    sd = {'backbone.' + k: v for k, v in sb.state_dict().items()}
    with pytest.raises(ValueError, match="set prefix='backbone.'"):
        sb.load_state_dict(sd)
    # As a child (prefix 'backbone.') the same file loads.
    parent = nn.Module()
    parent.backbone = SBResNet(depth=26, base_channels=16)
    parent.load_state_dict(sd)
    for k, v in sb.state_dict().items():
        assert torch.equal(parent.backbone.state_dict()[k], v), k


def test_load_hooks_survive_deepcopy():
    # mmengine's EMA deep-copies the model; the copy widens a plain ResNet.
    import copy
    plain = ResNet(depth=50, base_channels=16, out_indices=(0, 1, 2, 3))
    randomize_bn(plain)
    sb = copy.deepcopy(
        SBResNet(depth=50, base_channels=16, out_indices=(0, 1, 2, 3)))
    sb.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(1, 3, 64, 64)
    plain.eval()
    with torch.no_grad():
        for a, b in zip(plain(x), sb.eval()(x)):
            torch.testing.assert_close(b, a)
