"""The fast forward path of SpatialBias / SBBottleneck against the
straightforward formulation: same outputs, gradients and BN statistics.

Model-level checks run in float64, so that they test the formulas rather than
float32 rounding; inputs keep a few pixels per sample in the last stage,
since train-mode BN over only one or two values amplifies any rounding.
Speed is measured by tools/analysis/benchmark.py, never here.
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmsb.models import SBResNet, SpatialBias
from mmsb.models.backbones.sb_resnet import SBBottleneck
from mmsb.models.layers import spatial_bias as sb_module
from mmsb.models.layers.spatial_bias import set_fast_path

TOL64 = dict(atol=1e-9, rtol=1e-9)


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    # Tiny float64 models: a second thread only adds OpenMP barrier waits
    # (seconds per test when the other core is busy).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def always_fused(monkeypatch):
    """Use the fused BN + concat + ReLU join for any tensor size (by default
    it starts at 2**18 elements, which small test inputs never reach) and
    count its calls."""
    monkeypatch.setattr(sb_module, '_FUSED_JOIN_MIN_NUMEL', 0)
    calls = []
    fused = sb_module._bn_eval_concat_relu

    def counted(*args):
        calls.append(args[0].shape)
        return fused(*args)

    monkeypatch.setattr(sb_module, '_bn_eval_concat_relu', counted)
    return calls


def randomize(model, seed=1):
    """Non-trivial BN statistics and affine parameters everywhere."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * .1)
            m.running_var.copy_(torch.rand(n, generator=g) + .5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + .5)
                m.bias.data.copy_(torch.randn(n, generator=g) * .1)
        elif isinstance(m, nn.GroupNorm):
            m.weight.data.copy_(torch.rand(m.num_channels, generator=g) + .5)
            m.bias.data.copy_(torch.randn(m.num_channels, generator=g) * .1)
    return model


def fast_and_reference(model):
    ref = set_fast_path(copy.deepcopy(model), False)
    return model, ref


def close_in_norm(a, b, rtol):
    """||a - b|| <= rtol ||b||. In float32 a pre-activation within rounding
    of 0 can flip sign and change ReLU's gradient wholesale at that element
    (spread by the convs): a tolerance per element would flag it, although
    the formula is right."""
    assert (a - b).norm() <= rtol * b.norm(), (a - b).norm() / b.norm()


def check_equal(fast, ref, x, train, memory_format=None, tol=TOL64,
                grad_rtol=None):
    """Forward + backward both; compare outputs, input and parameter grads,
    and every buffer (BN running statistics) afterwards. ``grad_rtol``
    compares gradients in norm (see :func:`close_in_norm`)."""

    def same_grad(a, b, name=''):
        if grad_rtol is None:
            torch.testing.assert_close(a, b, **tol, msg=name or None)
        else:
            close_in_norm(a, b, grad_rtol)

    fast.train(train)
    ref.train(train)
    if memory_format is not None:
        fast.to(memory_format=memory_format)
        ref.to(memory_format=memory_format)
        x = x.contiguous(memory_format=memory_format)
    xf = x.clone().requires_grad_()
    xr = x.clone().requires_grad_()
    outs_f, outs_r = fast(xf), ref(xr)
    if isinstance(outs_f, torch.Tensor):
        outs_f, outs_r = (outs_f, ), (outs_r, )
    assert len(outs_f) == len(outs_r)
    for of, orf in zip(outs_f, outs_r):
        torch.testing.assert_close(of, orf, **tol)
    g = torch.Generator().manual_seed(2)
    grads = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in outs_f]
    torch.autograd.backward(outs_f, grads)
    torch.autograd.backward(outs_r, grads)
    same_grad(xf.grad, xr.grad)
    params_r = dict(ref.named_parameters())
    for name, p in fast.named_parameters():
        q = params_r[name]
        if q.grad is None:
            assert p.grad is None, name
        else:
            same_grad(p.grad, q.grad, name)
    buffers_r = dict(ref.named_buffers())
    for name, b in fast.named_buffers():
        torch.testing.assert_close(b, buffers_r[name], **tol, msg=name)
    return outs_f


def small_sbresnet(**kwargs):
    kwargs.setdefault('out_indices', (0, 1, 2, 3))
    model = SBResNet(depth=26, base_channels=16, **kwargs)
    return randomize(model).double()


# ------------------------------------------------------------------ models
@pytest.mark.parametrize('mode', ['eval', 'train', 'norm_eval'])
@pytest.mark.parametrize('shape', [(1, 3, 49, 67), (2, 3, 32, 40)])
def test_model_outputs_grads_and_stats(always_fused, mode, shape):
    fast, ref = fast_and_reference(
        small_sbresnet(norm_eval=(mode == 'norm_eval')))
    x = torch.randn(*shape, dtype=torch.float64)
    check_equal(fast, ref, x, train=mode != 'eval')
    # BN with running statistics (eval, norm_eval) takes the fused join;
    # train-mode BN needs batch statistics and keeps the concatenation.
    assert bool(always_fused) == (mode != 'train')


@pytest.mark.parametrize('position', ['conv1', 'conv2'])
@pytest.mark.parametrize('fusion', ['concat', 'add'])
@pytest.mark.parametrize('train', [False, True])
def test_positions_and_fusions(always_fused, position, fusion, train):
    fast, ref = fast_and_reference(
        small_sbresnet(sb_position=position, sb_cfg=dict(fusion=fusion)))
    x = torch.randn(2, 3, 40, 32, dtype=torch.float64)
    check_equal(fast, ref, x, train=train)
    # 'add' has no widened norm to fuse into.
    assert bool(always_fused) == (fusion == 'concat' and not train)


@pytest.mark.parametrize('train', [False, True])
def test_group_norm_falls_back(always_fused, train):
    # GN(32) of the block cannot take planes + 3 channels (SplitNorm), and
    # GN has no running statistics: the straightforward join runs.
    model = small_sbresnet(norm_cfg=dict(type='GN', num_groups=4))
    assert type(model.layer1[0].norm2).__name__ == 'SplitNorm'
    fast, ref = fast_and_reference(model)
    x = torch.randn(2, 3, 40, 32, dtype=torch.float64)
    check_equal(fast, ref, x, train=train)
    assert not always_fused


@pytest.mark.parametrize('train', [False, True])
def test_with_cp(always_fused, train):
    fast, ref = fast_and_reference(small_sbresnet(with_cp=True))
    x = torch.randn(2, 3, 64, 48, dtype=torch.float64)
    check_equal(fast, ref, x, train=train)


@pytest.mark.parametrize('train', [False, True])
def test_channels_last(always_fused, train):
    fast, ref = fast_and_reference(small_sbresnet())
    x = torch.randn(2, 3, 40, 32, dtype=torch.float64)
    outs = check_equal(fast, ref, x, train=train,
                       memory_format=torch.channels_last)
    assert outs[0].shape == (2, 64, 10, 8)


def test_plugins_and_frozen_stages(always_fused):
    plugins = [dict(cfg=dict(type='ContextBlock', ratio=1. / 4),
                    stages=(False, True, True, True),
                    position='after_conv2')]
    fast, ref = fast_and_reference(
        small_sbresnet(plugins=plugins, frozen_stages=1, norm_eval=True))
    x = torch.randn(2, 3, 64, 48, dtype=torch.float64)
    check_equal(fast, ref, x, train=True)
    assert always_fused


def test_float32_block_and_default_threshold():
    # The shipping configuration: float32 and the default size threshold, on
    # a stage-1 block whose conv2 output (64 x 64 x 64) is large enough for
    # the fused join; batch 1 and 2.
    block = SBBottleneck(
        256, 64, spatial_bias=dict(num_bias=3, kernel_size=3, pooled_size=10))
    fast, ref = fast_and_reference(randomize(block))
    calls = []
    fused = sb_module._bn_eval_concat_relu
    sb_module._bn_eval_concat_relu = lambda *a: calls.append(1) or fused(*a)
    try:
        for b in (1, 2):
            x = torch.randn(b, 256, 64, 64)
            check_equal(fast, ref, x, train=False,
                        tol=dict(atol=1e-5, rtol=1e-4), grad_rtol=1e-5)
            check_equal(fast, ref, x, train=True,
                        tol=dict(atol=1e-4, rtol=1e-4), grad_rtol=1e-4)
    finally:
        sb_module._bn_eval_concat_relu = fused
    assert len(calls) == 2                # eval only, once per batch size
    small = torch.randn(1, 256, 16, 16)   # below the threshold: concat
    with torch.no_grad():
        fast.eval()(small)
    assert len(calls) == 2


def test_set_fast_path_switches_everything():
    model = small_sbresnet()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert set_fast_path(model, False) is model
    switches = [m.fast_path for m in model.modules()
                if isinstance(m, (SpatialBias, SBBottleneck))]
    assert switches and not any(switches)
    set_fast_path(model, True)
    assert all(m.fast_path for m in model.modules()
               if isinstance(m, (SpatialBias, SBBottleneck)))
    assert model.state_dict().keys() == state.keys()


# -------------------------------------------------------------- operator
@pytest.mark.parametrize('size', [(56, 56), (25, 33), (7, 5), (1, 1),
                                  (10, 10), (200, 304)])
def test_matmul_resize_is_bilinear(size):
    maps = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    ours = SpatialBias._resize_matmul(maps, size, torch.float64)
    ref = F.interpolate(maps, size=size, mode='bilinear',
                        align_corners=False)
    torch.testing.assert_close(ours, ref, **TOL64)


@pytest.mark.parametrize('kwargs', [
    dict(), dict(num_bias=1), dict(num_bias=4, kernel_size=2),
    dict(pooled_size=6), dict(pool_type='max'), dict(mixing='none')])
def test_operator_maps_and_fuse(kwargs):
    sb = randomize(SpatialBias(8, **kwargs)).double()
    fast, ref = fast_and_reference(sb)
    x = torch.randn(1, 8, 23, 31, dtype=torch.float64)
    for train in (False, True):
        check_equal(fast, ref, x, train=train)
        conv_out = torch.randn(1, 8, 12, 16, dtype=torch.float64)
        torch.testing.assert_close(
            fast.fuse(conv_out, fast(x)), ref.fuse(conv_out, ref(x)),
            **TOL64)


@pytest.mark.parametrize('affine', [True, False])
def test_fuse_norm_act_grads(always_fused, affine):
    sb = SpatialBias(8).double().eval()
    norm = randomize(nn.BatchNorm2d(11, affine=affine)).double().eval()
    conv = torch.randn(2, 8, 9, 13, dtype=torch.float64, requires_grad=True)
    maps = torch.randn(2, 3, 10, 10, dtype=torch.float64, requires_grad=True)
    out = sb.fuse_norm_act(conv, maps, norm, nn.ReLU(inplace=True))
    assert always_fused
    ref = F.relu(norm(torch.cat([conv, F.interpolate(
        maps, size=(9, 13), mode='bilinear', align_corners=False)], 1)))
    torch.testing.assert_close(out, ref, **TOL64)
    params = [conv, maps] + list(norm.parameters())
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, params, g)
    want = torch.autograd.grad(ref, params, g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL64)
