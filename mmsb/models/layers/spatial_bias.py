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

from mmsb.registry import MODELS

POOL_TYPES = ('avg', 'max')
FUSIONS = ('concat', 'add')
MIXINGS = ('conv1d', 'none')


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

    C' follows from the other options: ``num_bias + kernel_size - 1`` with
    ``mixing='conv1d'`` (5 for the paper's defaults), ``num_bias`` with
    ``mixing='none'``. The module keeps it as ``reduced_channels``.

    Unlike the authors' reference code, any H x W works (non-square, odd,
    smaller than P), as does batch size 1.

    Args:
        in_channels (int): Channels C of the input feature map.
        num_bias (int): Number of bias maps K joined to the convolution output.
            Paper default 3; Tables 4 and 7 ablate 1-6. Default: 3.
        kernel_size (int): Kernel N of the 1-D convolution across the C'
            compressed channels (must be > 1 to mix channels, section 3).
            Default: 3.
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

    # The options besides ``in_channels``: the keys of ``sb_cfg``.
    cfg_keys = ('num_bias', 'kernel_size', 'pooled_size', 'pool_type',
                'fusion', 'mixing', 'norm_cfg', 'init_cfg')

    def __init__(self,
                 in_channels: int,
                 num_bias: int = 3,
                 kernel_size: int = 3,
                 pooled_size: int = 10,
                 pool_type: str = 'avg',
                 fusion: str = 'concat',
                 mixing: str = 'conv1d',
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        _check_int('in_channels', in_channels, 1)
        self.check_cfg(
            dict(num_bias=num_bias, kernel_size=kernel_size,
                 pooled_size=pooled_size, pool_type=pool_type, fusion=fusion,
                 mixing=mixing))
        if mixing == 'conv1d':
            reduced_channels = num_bias + kernel_size - 1
        else:
            reduced_channels = num_bias

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

    @classmethod
    def check_cfg(cls, cfg: dict, owner: str = 'SpatialBias'):
        """Refuse options that ``SpatialBias(in_channels, **cfg)`` refuses.

        Checks the names (KeyError naming ``owner``, the unknown options and
        the allowed ones) and the values given; builds nothing, so a backbone
        can check its ``sb_cfg`` before any work starts.

        Args:
            cfg (dict): Options of :class:`SpatialBias` but ``in_channels``,
                all or some.
            owner (str): Who is named in the unknown-option error.
        """
        unknown = sorted(set(cfg) - set(cls.cfg_keys))
        if unknown:
            raise KeyError(f'{owner}: unknown sb_cfg option(s) {unknown}; '
                           f'allowed: {list(cls.cfg_keys)}')
        for name in ('num_bias', 'pooled_size'):
            if name in cfg:
                _check_int(name, cfg[name], 1)
        for name, allowed in (('pool_type', POOL_TYPES), ('fusion', FUSIONS),
                              ('mixing', MIXINGS)):
            if name in cfg:
                _check_choice(name, cfg[name], allowed)
        if 'kernel_size' in cfg and cfg.get('mixing') != 'none':
            _check_int('kernel_size', cfg['kernel_size'], 1)

    @property
    def norm(self) -> nn.Module:
        return getattr(self, self.norm_name)

    def init_weights(self):
        """As the authors' code (``resnet.py``, ``SB_module.py``): their
        ResNet re-initialises every ``Conv2d`` He-normal (fan_out) and every
        norm to (1, 0); the 1-D mixing conv is a ``Conv1d`` and keeps
        PyTorch's default initialisation, here too."""
        if self.init_cfg is not None:
            return super().init_weights()
        kaiming_init(self.reduce, mode='fan_out', nonlinearity='relu')
        constant_init(self.norm, 1, bias=0)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bias maps (B, K, P, P) of a feature map ``x`` (B, C, H, W)."""
        p = self.pooled_size
        y = self.act(self.norm(self.reduce(x)))
        y = self._pool(y)                              # (B, C', P, P)
        if self.mix is None:
            return y
        seq = y.flatten(2).transpose(1, 2)             # (B, P*P, C')
        seq = self.mix(seq)                            # (B, P*P, K)
        return seq.transpose(1, 2).reshape(seq.shape[0], self.num_bias, p, p)

    def upsample(self, bias: torch.Tensor, size: Tuple[int, int],
                 dtype: torch.dtype) -> torch.Tensor:
        """Bilinear (align_corners=False) resize to the exact ``size``."""
        return F.interpolate(
            bias.to(dtype), size=size, mode='bilinear', align_corners=False)

    def fuse(self, conv_out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Join bias maps to a convolution output (before its norm, Eq. 1)."""
        up = self.upsample(bias, conv_out.shape[-2:], conv_out.dtype)
        if self.fusion == 'concat':
            return torch.cat([conv_out, up], dim=1)
        channels = conv_out.shape[1]
        reps = -(-channels // self.num_bias)
        return conv_out + up.repeat(1, reps, 1, 1)[:, :channels]

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, num_bias={self.num_bias}, '
                f'reduced_channels={self.reduced_channels}, '
                f'kernel_size={self.kernel_size}, '
                f'pooled_size={self.pooled_size}, pool_type={self.pool_type!r}, '
                f'fusion={self.fusion!r}, mixing={self.mixing!r}')


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'SpatialBias: {name} must be an int >= {minimum}, '
                         f'got {value!r}')


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise KeyError(f'SpatialBias: unknown {name} {value!r}; allowed: '
                       f'{", ".join(map(repr, allowed))}')
