"""The GPU path: SB-ResNet on CUDA against the CPU, autocast, channels_last,
torch.compile, a demo detector trained with --amp, and tools/dist_train.sh
with NCCL. Every test is marked ``gpu`` and skips where CUDA is absent
(``pytest -m gpu`` runs only these; ``make test`` runs them on a GPU host).
"""
import glob
import os.path as osp
import sys

import pytest
import torch
from utils import CONFIGS, REPO, explain, free_port, overrides, run, tool

from mmsb.models import SBResNet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason='CUDA is not available'),
]


@pytest.fixture
def exact_fp32():
    """No TF32: cuDNN and cuBLAS compute in full fp32, as the CPU does."""
    old = (torch.backends.cudnn.allow_tf32,
           torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    (torch.backends.cudnn.allow_tf32,
     torch.backends.cuda.matmul.allow_tf32) = old


def _model(train):
    torch.manual_seed(0)
    # No zero-init residual: with norm3 = 0 every bottleneck would add
    # nothing to its identity path, and no output or gradient compared here
    # would depend on the spatial bias branch.
    model = SBResNet(depth=26, base_channels=16, out_indices=(0, 1, 2, 3),
                     sb_stages=(True, True, True, True),
                     zero_init_residual=False)
    model.init_weights()
    return model.train(train)


def _rel(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


def _run(model, x):
    outs = model(x)
    loss = sum(o.float().pow(2).mean() for o in outs)
    loss.backward()
    grads = {n: p.grad.detach().float().cpu()
             for n, p in model.named_parameters() if p.grad is not None}
    return [o.detach().float().cpu() for o in outs], grads


@pytest.mark.parametrize('train', [False, True])
def test_cuda_equals_cpu_fp32(exact_fp32, train):
    """Forward and backward on CUDA equal the CPU's (fp32, no TF32), for a
    batch of one non-square image and a batch of two."""
    for shape in [(1, 3, 70, 90), (2, 3, 64, 64)]:
        x = torch.randn(*shape)
        cpu_out, cpu_grads = _run(_model(train), x)
        gpu_out, gpu_grads = _run(_model(train).cuda(), x.cuda())
        for a, b in zip(gpu_out, cpu_out):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        assert gpu_grads.keys() == cpu_grads.keys()
        worst = max(_rel(gpu_grads[k], cpu_grads[k]) for k in cpu_grads)
        assert worst < 1e-3, worst


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_close_to_fp32(exact_fp32, dtype):
    """Autocast against fp32, in units of the format's epsilon (2**-10 for
    fp16, 2**-7 for bf16). Each SB block, fed its fp32 input, stays within
    4 eps of its output's magnitude, and its gradients (input and every
    parameter) within 4 sqrt(eps) in relative norm: where a pre-activation
    rounds across 0, ReLU passes or stops a whole gradient entry, a fraction
    ~eps of the entries, an error ~sqrt(eps) in norm. The network's outputs
    (26 layers compounding) stay within 32 eps in relative norm, and its
    gradients are finite. Measured with CPU autocast (torch 2.13) on this
    model: 1.3 eps, 3 sqrt(eps) and 19 eps."""
    eps = torch.finfo(dtype).eps
    model = _model(True).cuda()
    x = torch.randn(2, 3, 96, 128, device='cuda')
    inputs = {}
    hooks = [block.register_forward_pre_hook(
        lambda m, args, name=name: inputs.__setitem__(name, args[0].detach()))
        for name, block in model.sb_blocks()]
    ref_outs = model(x)
    for h in hooks:
        h.remove()
    with torch.autocast('cuda', dtype=dtype):
        outs = model(x)
    for o, r in zip(outs, ref_outs):
        assert o.dtype == dtype
        assert _rel(o.detach(), r.detach()) < 32 * eps
    sum(o.float().pow(2).mean() for o in outs).backward()
    for n, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), n

    for name, block in model.sb_blocks():
        xb = inputs[name].clone().requires_grad_()
        leaves = (xb, ) + tuple(block.parameters())
        ref = block(xb)
        ref_grads = torch.autograd.grad(ref.pow(2).mean(), leaves)
        with torch.autocast('cuda', dtype=dtype):
            out = block(xb)
        grads = torch.autograd.grad(out.float().pow(2).mean(), leaves)
        err = float((out.detach().float() - ref.detach()).abs().max() /
                    ref.detach().abs().max())
        assert err <= 4 * eps, f'{name}: {err / eps:.1f} eps'
        for g, r in zip(grads, ref_grads):
            assert _rel(g, r) < 4 * eps**.5, f'{name}: {_rel(g, r)}'


def test_channels_last(exact_fp32):
    x = torch.randn(2, 3, 75, 99, device='cuda')
    ref = _model(False).cuda()(x)
    model = _model(False).cuda().to(memory_format=torch.channels_last)
    outs = model(x.contiguous(memory_format=torch.channels_last))
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, atol=1e-4, rtol=1e-4)


def test_torch_compile_backbone(exact_fp32):
    model = _model(False).cuda()
    x = torch.randn(2, 3, 80, 112, device='cuda')
    with torch.no_grad():
        ref = model(x)
        outs = torch.compile(model)(x)
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, atol=1e-3, rtol=1e-3)


@pytest.mark.slow
def test_demo_detector_trains_on_cuda_with_amp(tmp_path):
    work = tmp_path / 'work'
    proc = run(tool('train.py') + [
        CONFIGS['det'], '--work-dir', str(work), '--amp', '--cfg-options',
        *overrides('det', tmp_path, max_iters=3, ckpt_interval=3)
    ], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, explain(proc)
    [log] = glob.glob(str(work / '*' / '*.log'))
    with open(log) as f:
        text = f.read()
    assert 'AmpOptimWrapper' in text
    assert (work / 'iter_3.pth').is_file()
    ckpt = torch.load(work / 'iter_3.pth', map_location='cpu',
                      weights_only=False)
    assert 'loss_scaler' in ckpt['optimizer']  # AmpOptimWrapper's scaler
    assert 'CUDA available: True' in text


@pytest.mark.slow
def test_dist_train_one_nccl_rank(tmp_path):
    work = tmp_path / 'work'
    proc = run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'),
                CONFIGS['cls'], '1', '--work-dir', str(work),
                '--cfg-options', *overrides('cls', tmp_path)],
               cwd=tmp_path, timeout=600,
               extra_env=dict(PYTHON=sys.executable, PORT=str(free_port())))
    assert proc.returncode == 0, explain(proc)
    [log] = glob.glob(str(work / '*' / '*.log'))
    with open(log) as f:
        text = f.read()
    assert 'Distributed training: True' in text
    assert "backend='nccl'" in text
    assert (work / 'iter_2.pth').is_file()
