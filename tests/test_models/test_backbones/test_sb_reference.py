"""SBBottleneck against an independent reference written from the paper.

:func:`reference_block` uses ``torch.nn.functional`` and tensor ops only and
reads the block's tensors by name; it never calls mmsb. Section 3 and Eq. 1
fix the outline; where the paper leaves a detail open, the reference follows
the authors' code (``SB_module.py``, ``resnet.py``) as mmsb's docstrings
document it:

- the branch reads the input of the convolution it biases ("X denotes an
  input feature map", Eq. 1): the block input for ``sb_position='conv1'``,
  conv2's input (after bn1 and ReLU) for ``'conv2'``;
- 1x1 conv to C' channels -> BN -> ReLU -> average pooling to P x P (Fig. 3);
- Q holds the P*P positions (row-major) as channels of a sequence along C';
  the 1 x N conv slides along C' without padding and gives K = C' - N + 1
  maps, every output position mixing every input position;
- bilinear upsampling with align_corners=False to the exact size of the
  convolution output, then Eq. 1: ``ReLU(BN([Conv(X), SB]))``;
- ``fusion='add'`` (Table 5 "Add"): conv channel c receives map c mod K.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmsb.models import SBBottleneck

K, N, P = 3, 3, 10                 # the paper's maps, kernel and pooled side
INPLANES, PLANES = 32, 8           # PLANES % K != 0: 'add' wraps unevenly


def _bn(t, p, name, train, eps=1e-5):
    """Batch norm from its definition: batch statistics in training
    (biased variance), running statistics in evaluation."""
    if train:
        mean, var = t.mean((0, 2, 3)), t.var((0, 2, 3), unbiased=False)
    else:
        mean, var = p[f'{name}.running_mean'], p[f'{name}.running_var']

    def col(v):
        return v.view(1, -1, 1, 1)

    return ((t - col(mean)) / torch.sqrt(col(var) + eps) *
            col(p[f'{name}.weight']) + col(p[f'{name}.bias']))


def _spatial_bias(x, p, size, train):
    """The K bias maps of Fig. 3, upsampled to ``size``."""
    y = F.relu(_bn(F.conv2d(x, p['spatial_bias.reduce.weight']), p,
                   'spatial_bias.bn', train))
    y = F.adaptive_avg_pool2d(y, P)                     # (B, C', P, P)
    q = y.flatten(2).transpose(1, 2)                    # Q: (B, P*P, C')
    windows = q.unfold(2, N, 1)                         # (B, P*P, K, N)
    w, b = p['spatial_bias.mix.weight'], p['spatial_bias.mix.bias']
    # map k at position j: b_j + sum_i sum_n W[j, i, n] * Q[i, k + n]
    maps = torch.einsum('jin,bikn->bkj', w, windows) + b
    maps = maps.reshape(x.shape[0], K, P, P)
    return F.interpolate(maps, size=size, mode='bilinear',
                         align_corners=False)


def reference_block(x, p, position, fusion, stride, train):
    """mmdet's pytorch-style bottleneck (stride on conv2) with Eq. 1 at
    ``position``; ``p`` maps the block's tensor names to tensors."""

    def join(conv_out, sb_input):                      # [Conv(X), SB]
        sb = _spatial_bias(sb_input, p, conv_out.shape[-2:], train)
        if fusion == 'concat':
            return torch.cat([conv_out, sb], 1)
        return conv_out + sb[:, torch.arange(conv_out.shape[1]) % K]

    out = F.conv2d(x, p['conv1.weight'])
    if position == 'conv1':
        out = join(out, x)
    h = F.relu(_bn(out, p, 'bn1', train))
    out = F.conv2d(h, p['conv2.weight'], stride=stride, padding=1)
    if position == 'conv2':
        out = join(out, h)
    out = F.relu(_bn(out, p, 'bn2', train))
    out = _bn(F.conv2d(out, p['conv3.weight']), p, 'bn3', train)
    identity = x if stride == 1 else _bn(
        F.conv2d(x, p['downsample.0.weight'], stride=stride), p,
        'downsample.1', train)
    return F.relu(out + identity)


def random_block(position, fusion, stride):
    """Random weights, BN affine and running statistics (far from the
    identity, so that every BN shows in the output)."""
    downsample = None
    if stride > 1:
        downsample = nn.Sequential(
            nn.Conv2d(INPLANES, PLANES * 4, 1, stride=stride, bias=False),
            nn.BatchNorm2d(PLANES * 4))
    block = SBBottleneck(
        INPLANES, PLANES, stride=stride, downsample=downsample,
        sb_position=position,
        sb_cfg=dict(num_bias=K, kernel_size=N, pooled_size=P, fusion=fusion))
    with torch.no_grad():
        for name, t in block.state_dict().items():
            if not t.is_floating_point():
                continue
            if t.dim() > 1:                              # He by fan-in
                t.copy_(torch.randn(t.shape) * (2 / t[0].numel())**.5)
            elif name.endswith(('running_var', 'weight')):
                t.uniform_(0.5, 1.5)
            else:                                        # bias, running_mean
                t.copy_(torch.randn(t.shape) * 0.5)
    return block


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('fusion', ['concat', 'add'])
@pytest.mark.parametrize('position', ['conv2', 'conv1'])
@pytest.mark.parametrize('shape', [(2, 23, 37), (1, 7, 5)])
def test_block_matches_reference(shape, position, fusion, stride, train):
    """Outputs and gradients (input and every parameter) of SBBottleneck
    equal :func:`reference_block` at fp32 tolerance, on non-square maps that
    are a non-integer multiple of P (23 x 37, 12 x 19 after the stride) or
    smaller than P (7 x 5, 4 x 3), with batch size 2 or 1."""
    batch, height, width = shape
    block = random_block(position, fusion, stride).train(train)
    names, params = zip(*block.named_parameters())
    tensors = dict(block.named_parameters(), **dict(block.named_buffers()))
    x = torch.randn(batch, INPLANES, height, width, requires_grad=True)

    ref = reference_block(x, tensors, position, fusion, stride, train)
    weight = torch.randn_like(ref)                 # a loss that sees all
    ref_grads = torch.autograd.grad((ref * weight).sum(), (x, ) + params)
    out = block(x)
    grads = torch.autograd.grad((out * weight).sum(), (x, ) + params)

    for name, got, want in zip(('output', 'input') + names, (out, ) + grads,
                               (ref, ) + ref_grads):
        assert_fp32_close(got, want, name)


def assert_fp32_close(got, want, name, ulps=64):
    """Equal within ``ulps`` fp32 epsilons of the tensor's largest
    magnitude. The two sides sum convolutions and BN reductions in other
    orders; on these cases they differ by at most 3 (outputs) and 14
    (gradients) epsilons, a wrong implementation by orders more."""
    tol = ulps * torch.finfo(torch.float32).eps * float(want.abs().max())
    torch.testing.assert_close(got, want, rtol=0, atol=tol,
                               msg=lambda m: f'{name}: {m}')
