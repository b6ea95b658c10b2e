import inspect
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmsb.models import SpatialBias
from mmsb.registry import MODELS


def authors_formulation(sb: SpatialBias, x: torch.Tensor, size: int):
    """The reference computation for square inputs and batch > 1.

    Written from the paper's description of the authors' code: flatten each
    compressed map to a row, `squeeze` the singleton axis, 1-D conv across
    the C' axis, reshape back, upsample by scale_factor=size/P.
    """
    y = F.relu(sb.bn(sb.reduce(x)))
    y = F.adaptive_avg_pool2d(y, sb.pooled_size)
    b, c = y.shape[:2]
    seq = y.reshape(b, c, 1, -1).squeeze().permute(0, 2, 1)
    out = sb.mix(seq).unsqueeze(2)
    out = out.permute(0, 3, 2, 1).reshape(b, sb.num_bias, sb.pooled_size,
                                          sb.pooled_size)
    return nn.Upsample(
        scale_factor=size / sb.pooled_size, mode='bilinear',
        align_corners=False)(out)


def test_matches_authors_formulation_where_it_works():
    sb = SpatialBias(16).eval()
    with torch.no_grad():   # BN statistics that show in the output
        sb.bn.running_mean.normal_(0, 0.5)
        sb.bn.running_var.uniform_(0.5, 1.5)
        sb.bn.weight.uniform_(0.5, 1.5)
        sb.bn.bias.normal_(0, 0.5)
    x = torch.randn(2, 16, 40, 40)
    ours = sb.upsample(sb(x), (40, 40), x.dtype)
    ref = authors_formulation(sb, x, 40)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize('shape', [(1, 8, 800 // 8, 1216 // 8), (1, 8, 7, 5),
                                   (3, 8, 37, 61), (2, 8, 1, 1)])
def test_any_shape_and_batch_one(shape):
    sb = SpatialBias(8)
    x = torch.randn(*shape, requires_grad=True)
    bias = sb(x)
    assert bias.shape == (shape[0], 3, 10, 10)
    conv_out = torch.randn(shape[0], 8, (shape[2] + 1) // 2,
                           (shape[3] + 1) // 2)
    out = sb.fuse(conv_out, bias)
    assert out.shape == (shape[0], 11) + conv_out.shape[2:]
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert sb.mix.weight.grad.abs().sum() > 0


def test_every_output_position_sees_every_input_position():
    # The 1-D conv's channels are the P*P positions: a change at one pooled
    # cell moves every output cell (global mixing, section 3).
    sb = SpatialBias(4, pooled_size=6).eval()
    x = torch.rand(1, 4, 12, 12)
    base = sb(x)
    x2 = x.clone()
    x2[..., :2, :2] += 5.0   # only pooled cell (0, 0)
    changed = (sb(x2) - base).abs().sum(1)[0] > 0
    assert changed.all()


def test_options_and_paper_ablations():
    assert SpatialBias(8).reduced_channels == 5            # C'=5, N=3, K=3
    assert SpatialBias(8, num_bias=1).reduced_channels == 3
    sb = SpatialBias(8, num_bias=6, pooled_size=16, pool_type='max')
    assert sb(torch.rand(2, 8, 20, 20)).shape == (2, 6, 16, 16)
    add = SpatialBias(8, fusion='add')
    out = add.fuse(torch.zeros(2, 8, 5, 5), add(torch.rand(2, 8, 9, 9)))
    assert out.shape == (2, 8, 5, 5) and add.out_channels_delta == 0
    pool_only = SpatialBias(8, mixing='none')
    assert pool_only.mix is None and pool_only.reduced_channels == 3
    assert pool_only(torch.rand(1, 8, 9, 9)).shape == (1, 3, 10, 10)


def test_registry_builds_it():
    sb = MODELS.build(dict(type='SpatialBias', in_channels=8))
    assert isinstance(sb, SpatialBias)


@pytest.mark.parametrize('kwargs,exc,words', [
    (dict(pooled_size=0), ValueError, 'pooled_size'),
    (dict(num_bias=0), ValueError, 'num_bias'),
    (dict(kernel_size=0), ValueError, 'kernel_size'),
    (dict(pool_type='median'), KeyError, "'avg', 'max'"),
    (dict(fusion='mul'), KeyError, "'concat', 'add'"),
    (dict(mixing='attention'), KeyError, 'mixing'),
])
def test_bad_arguments_are_named(kwargs, exc, words):
    with pytest.raises(exc, match=words.replace('(', r'\(')):
        SpatialBias(8, **kwargs)
    with pytest.raises(exc, match=words.replace('(', r'\(')):
        SpatialBias.check_cfg(kwargs)       # the same refusal, nothing built


def test_check_cfg_names_and_partial_configs():
    # The option names are __init__'s, less in_channels, in its order.
    params = list(inspect.signature(SpatialBias).parameters)
    assert list(SpatialBias.cfg_keys) == params[1:]
    SpatialBias.check_cfg({})
    SpatialBias.check_cfg(dict(mixing='none', kernel_size=0))  # unused N
    with pytest.raises(KeyError) as info:
        SpatialBias.check_cfg(dict(size=1, reduced_channels=5), owner='X')
    assert info.value.args[0] == (
        "X: unknown sb_cfg option(s) ['reduced_channels', 'size']; allowed: "
        "['num_bias', 'kernel_size', 'pooled_size', 'pool_type', 'fusion', "
        "'mixing', 'norm_cfg', 'init_cfg']")


def test_reduced_channels_is_derived_not_an_argument():
    assert SpatialBias(8, num_bias=4, kernel_size=5).reduced_channels == 8
    assert SpatialBias(8, num_bias=4, mixing='none').reduced_channels == 4
    with pytest.raises(TypeError, match='reduced_channels'):
        SpatialBias(8, reduced_channels=5)


def test_channels_last_and_autocast():
    sb = SpatialBias(8).eval()
    x = torch.randn(2, 8, 19, 23)
    ref = sb.fuse(torch.zeros(2, 8, 19, 23), sb(x))
    xcl = x.to(memory_format=torch.channels_last)
    out = sb.fuse(
        torch.zeros(2, 8, 19, 23).to(memory_format=torch.channels_last),
        sb(xcl))
    torch.testing.assert_close(out, ref)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        conv = nn.Conv2d(8, 8, 3, padding=1).eval()
        c = conv(x)
        fused = sb.fuse(c, sb(x))
    assert fused.dtype == c.dtype == torch.bfloat16
    # A few bf16 epsilons (2**-7) of the maps' magnitude: the rounding of
    # inputs, weights and output (observed: under 1 epsilon).
    eps = torch.finfo(torch.bfloat16).eps
    torch.testing.assert_close(fused[:, 8:].float(), ref[:, 8:], rtol=0,
                               atol=4 * eps * float(ref[:, 8:].abs().max()))


def test_trace_matches_eager_on_non_divisible_sizes():
    sb = SpatialBias(8).eval()
    x = torch.randn(1, 8, 23, 31)
    with torch.no_grad():
        traced = torch.jit.trace(sb, x)
        torch.testing.assert_close(traced(x), sb(x))


def test_onnx_export_matches_eager(tmp_path):
    ort = pytest.importorskip('onnxruntime')
    from mmsb.models import SBResNet
    model = SBResNet(depth=26, base_channels=16, out_indices=(0, 3)).eval()
    x = torch.rand(1, 3, 70, 90)              # 18x23 maps: not multiples of P
    path = str(tmp_path / 'sb.onnx')
    # The TorchScript exporter: newer torch defaults to dynamo=True, older
    # torch has no such argument (and only this exporter).
    exporter = {}
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        exporter['dynamo'] = False
    torch.onnx.export(model, (x, ), path, opset_version=17,
                      input_names=['img'], **exporter)
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    outs = sess.run(None, {'img': x.numpy()})
    with torch.no_grad():
        ref = model(x)
    for o, r in zip(outs, ref):
        torch.testing.assert_close(torch.from_numpy(o), r, atol=1e-4,
                                   rtol=1e-4)


def test_mixing_conv_keeps_pytorch_default_init():
    # The authors' ResNet re-initialises Conv2d (He, fan_out) and norms only;
    # their 1-D mixing conv keeps PyTorch's kaiming_uniform(a=sqrt(5)), whose
    # bound is 1/sqrt(fan_in). He-normal (fan_out) would exceed it.
    sb = SpatialBias(64, pooled_size=10)
    sb.init_weights()
    bound = 1 / math.sqrt(100 * 3)
    assert sb.mix.weight.abs().max() <= bound
    assert sb.mix.bias.abs().max() <= bound
    assert float(sb.mix.weight.std()) == pytest.approx(
        bound / math.sqrt(3), rel=0.02)            # std of U(-b, b)
    fan_out = sb.reduce.weight.shape[0]          # 1x1 conv: C' * 1 * 1
    assert float(sb.reduce.weight.std()) == pytest.approx(
        math.sqrt(2 / fan_out), rel=0.1)


def test_mixing_init_can_be_chosen_through_sb_cfg():
    from mmsb.models import SBResNet
    kaiming = dict(type='Kaiming', layer='Conv1d', mode='fan_out',
                   nonlinearity='relu', bias=0)
    model = SBResNet(depth=26, base_channels=16, sb_cfg=dict(
        pooled_size=10, init_cfg=kaiming))
    model.init_weights()
    for _, block in model.sb_blocks():
        mix = block.spatial_bias.mix
        assert float(mix.bias.abs().max()) == 0
        assert float(mix.weight.std()) == pytest.approx(
            math.sqrt(2 / (100 * 3)), rel=0.1)
        # the 1x1 compression keeps the ResNet's He init, the norm (1, 0)
        bn = block.spatial_bias.norm
        assert bool((bn.weight == 1).all()) and bool((bn.bias == 0).all())
    with pytest.raises(KeyError, match='init_cfg'):
        SBResNet(depth=26, sb_cfg=dict(size=3))
