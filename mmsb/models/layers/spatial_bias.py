# Copyright (c) mmsb contributors. All rights reserved.
"""The spatial bias operator of Go & Ryu, "Spatial Bias for Attention-free
Non-local Neural Networks" (arXiv 2302.12505), section 3 and Fig. 3."""
from functools import lru_cache
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, kaiming_init
from torch.nn.modules.batchnorm import _BatchNorm

from mmsb.registry import MODELS

POOL_TYPES = ('avg', 'max')
FUSIONS = ('concat', 'add')
MIXINGS = ('conv1d', 'none')

# Below this many elements of the conv output, the fused BN + ReLU join of
# SpatialBias.fuse_norm_act saves less (one concatenation copy) than its
# extra small ops cost; measured on CPU, where at batch 1 and 224x224 no
# stage reaches it and at batch 16 or 800x1216 every stage does.
_FUSED_JOIN_MIN_NUMEL = 1 << 18


@lru_cache(maxsize=256)
def _adaptive_avg_bins(size: int, out: int) -> np.ndarray:
    """(out, size) matrix whose rows average the bins of adaptive pooling.

    Same bins as ``F.adaptive_avg_pool2d`` (start=floor(i*size/out),
    end=ceil((i+1)*size/out)), so it also upsamples maps smaller than ``out``.
    Used when tracing: ONNX has no adaptive pooling for sizes that are not
    multiples of the output. Cached as numpy so that every trace records the
    same constant.
    """
    mat = np.zeros((out, size), dtype=np.float64)
    for i in range(out):
        start = (i * size) // out
        end = -((-(i + 1) * size) // out)
        mat[i, start:end] = 1.0 / (end - start)
    return mat


def _adaptive_avg_matrix(size: int, out: int, device: torch.device,
                         dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(
        _adaptive_avg_bins(size, out), dtype=dtype, device=device)


@lru_cache(maxsize=256)
def _bilinear_weights(size: int, out: int) -> np.ndarray:
    """(out, size) matrix of 1-D linear interpolation, align_corners=False.

    Row i holds the two weights ``F.interpolate(mode='bilinear')`` gives
    output pixel i (source coordinate ``(i + 0.5) * size / out - 0.5``,
    clamped at 0), so ``mh @ maps @ mw.T`` is the bilinear resize done as two
    small matmuls. Every row sums to one.
    """
    mat = np.zeros((out, size), dtype=np.float64)
    scale = size / out
    for i in range(out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(src), size - 1)
        i1 = i0 + 1 if i0 < size - 1 else i0
        frac = src - i0
        mat[i, i0] += 1.0 - frac
        mat[i, i1] += frac
    return mat


@lru_cache(maxsize=256)
def _bilinear_matrix(size: int, out: int, device: torch.device,
                     dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(
        _bilinear_weights(size, out), dtype=dtype, device=device)


def _uses_running_stats(norm: nn.Module) -> bool:
    """True for a BN that normalises with its running statistics now."""
    return (isinstance(norm, _BatchNorm) and not norm.training
            and norm.running_mean is not None)


def _exporting() -> bool:
    return (torch.jit.is_tracing() or torch.jit.is_scripting()
            or torch.compiler.is_compiling()
            or torch.onnx.is_in_onnx_export())


@MODELS.register_module()
class SpatialBias(BaseModule):
    """Spatial bias: a few globally mixed "bias" maps for a convolution.

    X (B, C, H, W) -> 1x1 conv to C' channels + norm + ReLU -> adaptive pooling
    to P x P -> each of the C' maps flattened, giving a (B, P^2, C') sequence ->
    1-D convolution with P^2 input and P^2 output channels and kernel N that
    slides along the C' axis without padding, so every output position sees
    every input position -> K = C' - N + 1 bias maps of P x P. ``forward``
    returns these P x P maps; :meth:`fuse` upsamples them bilinearly
    (align_corners=False) to the exact size of a convolution output and joins
    them to it, giving Eq. 1: ``ReLU(BN([Conv(X), SB]))`` once the caller's
    norm and activation are applied.

    Unlike the authors' reference code, any H x W works (non-square, odd,
    smaller than P), as does batch size 1.

    Args:
        in_channels (int): Channels C of the input feature map.
        num_bias (int): Number of bias maps K joined to the convolution output.
            Paper default 3; Tables 4 and 7 ablate 1-6. Default: 3.
        kernel_size (int): Kernel N of the 1-D convolution across the C'
            compressed channels (must be > 1 to mix channels, section 3).
            Default: 3.
        reduced_channels (int, optional): C', the channels of the 1x1
            compression. Must equal ``num_bias + kernel_size - 1`` for
            ``mixing='conv1d'`` and ``num_bias`` for ``mixing='none'``; left
            None it is derived (5 for the paper's defaults). Default: None.
        pooled_size (int): P, the side of the pooled map. 10 for
            ImageNet/COCO/ADE20K, 6 for CIFAR (Table 3 ablates 6-16).
            Default: 10.
        pool_type (str): ``'avg'`` (paper) or ``'max'`` (Table 5 "Maxpool").
            Default: 'avg'.
        fusion (str): ``'concat'`` appends the K maps as channels (Eq. 1);
            ``'add'`` adds them to the convolution output instead, channel c
            receiving map c mod K (Table 5 "Add"). Default: 'concat'.
        mixing (str): ``'conv1d'`` (paper) or ``'none'``: the pooled maps are
            used as they are, with no global mixing (Table 5 "Pool only").
            Default: 'conv1d'.
        norm_cfg (dict): Norm after the 1x1 compression. Default: BN.
        init_cfg (dict, optional): mmengine init config. Default: None.

    Example:
        >>> import torch
        >>> from mmsb.models import SpatialBias
        >>> sb = SpatialBias(in_channels=64).eval()
        >>> x = torch.rand(1, 64, 37, 50)
        >>> sb(x).shape
        torch.Size([1, 3, 10, 10])
        >>> conv_out = torch.rand(1, 64, 19, 25)
        >>> sb.fuse(conv_out, sb(x)).shape
        torch.Size([1, 67, 19, 25])
    """

    #: Run the fast formulation (matmul mixing; :meth:`fuse_norm_act` without
    #: a separate concatenation on large tensors). Outputs and
    #: gradients equal the straightforward formulation within float
    #: tolerance; False (per instance, or :func:`set_fast_path`) runs the
    #: paper's steps one by one. Tracing, ONNX export and torch.compile
    #: always do.
    fast_path = True

    def __init__(self,
                 in_channels: int,
                 num_bias: int = 3,
                 kernel_size: int = 3,
                 reduced_channels: Optional[int] = None,
                 pooled_size: int = 10,
                 pool_type: str = 'avg',
                 fusion: str = 'concat',
                 mixing: str = 'conv1d',
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        _check_int('in_channels', in_channels, 1)
        _check_int('num_bias', num_bias, 1)
        _check_int('pooled_size', pooled_size, 1)
        _check_choice('pool_type', pool_type, POOL_TYPES)
        _check_choice('fusion', fusion, FUSIONS)
        _check_choice('mixing', mixing, MIXINGS)
        if mixing == 'conv1d':
            _check_int('kernel_size', kernel_size, 1)
            derived = num_bias + kernel_size - 1
        else:
            derived = num_bias
        if reduced_channels is None:
            reduced_channels = derived
        _check_int('reduced_channels', reduced_channels, 1)
        if mixing == 'conv1d' and kernel_size > reduced_channels:
            raise ValueError(
                f'SpatialBias: kernel_size={kernel_size} is larger than '
                f'reduced_channels={reduced_channels}; the 1-D convolution '
                f'slides over the C\' axis without padding, so kernel_size '
                f'must be <= reduced_channels')
        if reduced_channels != derived:
            raise ValueError(
                f'SpatialBias: reduced_channels={reduced_channels} does not '
                f'give num_bias={num_bias} bias maps with mixing={mixing!r} '
                f'and kernel_size={kernel_size}; expected reduced_channels='
                f'{derived} (num_bias + kernel_size - 1 for conv1d, num_bias '
                f'for none)')

        self.in_channels = in_channels
        self.num_bias = num_bias
        self.kernel_size = kernel_size
        self.reduced_channels = reduced_channels
        self.pooled_size = pooled_size
        self.pool_type = pool_type
        self.fusion = fusion
        self.mixing = mixing

        self.reduce = nn.Conv2d(
            in_channels, reduced_channels, kernel_size=1, bias=False)
        self.norm_name, norm = build_norm_layer(
            norm_cfg, reduced_channels, postfix='')
        self.add_module(self.norm_name, norm)
        self.act = nn.ReLU(inplace=True)
        if mixing == 'conv1d':
            positions = pooled_size * pooled_size
            self.mix = nn.Conv1d(positions, positions, kernel_size)
        else:
            self.mix = None

    @property
    def norm(self) -> nn.Module:
        return getattr(self, self.norm_name)

    def init_weights(self):
        if self.init_cfg is not None:
            return super().init_weights()
        # As the authors' code: He-normal (fan_out) convs, unit norm.
        kaiming_init(self.reduce, mode='fan_out', nonlinearity='relu')
        constant_init(self.norm, 1, bias=0)
        if self.mix is not None:
            kaiming_init(self.mix, mode='fan_out', nonlinearity='relu')

    @property
    def out_channels_delta(self) -> int:
        """Channels the fusion adds to the convolution output."""
        return self.num_bias if self.fusion == 'concat' else 0

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pooled_size
        if self.pool_type == 'max':
            return F.adaptive_max_pool2d(x, p)
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            h, w = int(x.shape[-2]), int(x.shape[-1])
            mh = _adaptive_avg_matrix(h, p, x.device, x.dtype)
            mw = _adaptive_avg_matrix(w, p, x.device, x.dtype)
            return torch.matmul(torch.matmul(mh, x), mw.t())
        return F.adaptive_avg_pool2d(x, p)

    def _fast(self) -> bool:
        # Tracing, ONNX export and torch.compile see the straightforward
        # graph: plain ops that exporters know and that inductor fuses
        # itself (no cached numpy matrices, no out= calls).
        return self.fast_path and not _exporting()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bias maps (B, K, P, P) of a feature map ``x`` (B, C, H, W)."""
        p = self.pooled_size
        y = self.act(self.norm(self._reduce(x)))
        y = self._pool(y)                              # (B, C', P, P)
        if self.mix is None:
            return y
        if self._fast():
            return self._mix_matmul(y)
        seq = y.flatten(2).transpose(1, 2)             # (B, P*P, C')
        seq = self.mix(seq)                            # (B, P*P, K)
        return seq.transpose(1, 2).reshape(seq.shape[0], self.num_bias, p, p)

    def _reduce(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 compression; a GEMM for CPU inference from batch 16 on.

        From batch 16 PyTorch hands 1x1 convs on CPU to oneDNN, whose
        conv with C'=5 outputs runs 2-5x slower than the same product as a
        (C', C) x (C, H*W) GEMM per sample. With autograd the conv's own
        backward is the faster one, so training keeps the conv.
        """
        if (self._fast() and x.is_cpu and x.shape[0] >= 16
                and not torch.is_grad_enabled() and x.is_contiguous()):
            b, _, h, w = x.shape
            weight = self.reduce.weight.flatten(1)         # (C', C)
            return torch.matmul(weight, x.flatten(2)).view(b, -1, h, w)
        return self.reduce(x)

    def _mix_matmul(self, y: torch.Tensor) -> torch.Tensor:
        """The 1-D convolution of :meth:`forward` as one matrix product.

        Output map k sees compressed maps k..k+N-1 at every position; those
        windows, flattened (position, tap) like the conv weight, multiply the
        weight as a (P*P, P*P*N) matrix. One GEMM instead of conv1d's
        im2col path and two transposes.
        """
        b, p, k = y.shape[0], self.pooled_size, self.num_bias
        windows = y.flatten(2).unfold(1, self.kernel_size, 1)  # (B,K,P*P,N)
        windows = windows.reshape(b * k, -1)
        out = F.linear(windows, self.mix.weight.flatten(1), self.mix.bias)
        return out.view(b, k, p, p)

    def upsample(self, bias: torch.Tensor, size: Tuple[int, int],
                 dtype: torch.dtype) -> torch.Tensor:
        """Bilinear (align_corners=False) resize to the exact ``size``."""
        return F.interpolate(
            bias.to(dtype), size=size, mode='bilinear', align_corners=False)

    @staticmethod
    def _resize_matmul(bias: torch.Tensor, size: Tuple[int, int],
                       dtype: torch.dtype) -> torch.Tensor:
        """``F.interpolate(mode='bilinear')`` as ``mh @ bias @ mw.T``.

        The resize is separable and linear: two small GEMMs, several times
        faster than the interpolation kernel on large outputs (on small ones
        the kernel's single launch wins, so :meth:`upsample` keeps it).
        """
        bias = bias.to(dtype)
        h, w = int(size[0]), int(size[1])
        ph, pw = bias.shape[-2:]
        if (h, w) == (ph, pw):
            return bias
        mh = _bilinear_matrix(ph, h, bias.device, dtype)    # (H, P)
        mw = _bilinear_matrix(pw, w, bias.device, dtype)    # (W, P)
        return torch.matmul(mh, torch.matmul(bias, mw.t())).to(dtype)

    def fuse(self, conv_out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Join bias maps to a convolution output (before its norm, Eq. 1)."""
        up = self.upsample(bias, conv_out.shape[-2:], conv_out.dtype)
        if self.fusion == 'concat':
            return torch.cat([conv_out, up], dim=1)
        channels = conv_out.shape[1]
        reps = -(-channels // self.num_bias)
        return conv_out + up.repeat(1, reps, 1, 1)[:, :channels]

    def fuse_norm_act(self, conv_out: torch.Tensor, bias: torch.Tensor,
                      norm: nn.Module, act: nn.Module) -> torch.Tensor:
        """``act(norm(self.fuse(conv_out, bias)))``: Eq. 1 with the caller's
        (widened) norm and activation, e.g. a bottleneck's ``norm2``, ReLU.

        Fast path, for ``fusion='concat'`` into a BN that normalises with
        running statistics (eval mode, or ``norm_eval``) and a ReLU: BN is
        per channel, so ``BN([conv, SB]) = [BN_a(conv), BN_b(SB)]`` and each
        part is normalised straight into its slice of the joined tensor: no
        concatenation copy, one large tensor fewer. Any other case (BN with
        batch statistics, GN, ``fusion='add'``, channels_last, small
        tensors) runs the straightforward formulation.
        """
        if not (self._fast() and self.fusion == 'concat'
                and _uses_running_stats(norm) and isinstance(act, nn.ReLU)
                and conv_out.dim() == 4 and conv_out.is_contiguous()
                and conv_out.numel() >= _FUSED_JOIN_MIN_NUMEL):
            return act(norm(self.fuse(conv_out, bias)))
        up = self._resize_matmul(bias, conv_out.shape[-2:], conv_out.dtype)
        args = (conv_out, up, norm.weight, norm.bias, norm.running_mean,
                norm.running_var, norm.eps)
        if torch.is_grad_enabled() and any(
                t is not None and t.requires_grad for t in args[:4]):
            return _BNEvalConcatReLU.apply(*args)
        return _bn_eval_concat_relu(*args)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, num_bias={self.num_bias}, '
                f'reduced_channels={self.reduced_channels}, '
                f'kernel_size={self.kernel_size}, '
                f'pooled_size={self.pooled_size}, pool_type={self.pool_type!r}, '
                f'fusion={self.fusion!r}, mixing={self.mixing!r}')


def _bn_eval_concat_relu(conv_out, up, weight, bias, mean, var, eps):
    """``relu(BN(cat([conv_out, up], 1)))`` for a BN with running stats.

    BN is per channel: ATen's ``native_batch_norm`` normalises the conv
    channels, then the bias channels, straight into their slices of the
    joined tensor, so the concatenation is never built separately. On CPU
    it goes sample by sample, where each slice is contiguous (a strided
    output makes the CPU kernel write to a temporary and copy).
    """
    b, c, h, w = conv_out.shape
    out = conv_out.new_empty((b, c + up.shape[1], h, w))
    unused = conv_out.new_empty(0)
    up = up.to(conv_out.dtype)
    samples = ([slice(None)] if b == 1 or not conv_out.is_cpu else
               [slice(i, i + 1) for i in range(b)])
    for part, x in ((slice(0, c), conv_out), (slice(c, None), up)):
        stats = (_part(weight, part), _part(bias, part), mean[part],
                 var[part], False, 0., eps)
        for i in samples:
            torch.native_batch_norm(x[i], *stats,
                                    out=(out[i, part], unused, unused))
    return out.relu_()


def _part(param: Optional[torch.Tensor], part: slice):
    return None if param is None else param[part]


class _BNEvalConcatReLU(torch.autograd.Function):
    """:func:`_bn_eval_concat_relu` with the gradients of its unfused chain:
    ReLU's, then BN's own (``native_batch_norm_backward``, eval statistics)
    for the conv channels and for the bias channels."""

    @staticmethod
    def forward(ctx, conv_out, up, weight, bias, mean, var, eps):
        up = up.to(conv_out.dtype)
        out = _bn_eval_concat_relu(conv_out, up, weight, bias, mean, var,
                                   eps)
        ctx.eps = eps
        ctx.save_for_backward(conv_out, up, weight, mean, var, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        conv_out, up, weight, mean, var, out = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        need_x, need_up, need_w, need_b = ctx.needs_input_grad[:4]
        need_w = need_w and weight is not None
        parts = (slice(0, conv_out.shape[1]), slice(conv_out.shape[1], None))
        grads = [
            torch.ops.aten.native_batch_norm_backward(
                grad[:, part], x, _part(weight, part), mean[part], var[part],
                None, None, False, ctx.eps, [need, need_w, need_b])
            for part, x, need in zip(parts, (conv_out, up), (need_x, need_up))
        ]
        (grad_x, grad_wx, grad_bx), (grad_up, grad_wu, grad_bu) = grads
        grad_w = torch.cat([grad_wx, grad_wu]) if need_w else None
        grad_b = torch.cat([grad_bx, grad_bu]) if need_b else None
        return grad_x, grad_up, grad_w, grad_b, None, None, None


def set_fast_path(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch ``module`` and its children between the fast and the
    straightforward formulation.

    Acts on every submodule whose class declares a ``fast_path`` switch
    (:class:`SpatialBias`, ``SBBottleneck``). Parameters, state dicts and
    outputs (within float tolerance) are the same either way.

    Returns:
        nn.Module: ``module`` itself.
    """
    for m in module.modules():
        if isinstance(getattr(type(m), 'fast_path', None), bool):
            m.fast_path = bool(enabled)
    return module


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'SpatialBias: {name} must be an int >= {minimum}, '
                         f'got {value!r}')


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise KeyError(f'SpatialBias: unknown {name} {value!r}; allowed: '
                       f'{", ".join(map(repr, allowed))}')
