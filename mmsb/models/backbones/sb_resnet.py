# Copyright (c) mmsb contributors. All rights reserved.
"""SB-ResNet: ResNet bottlenecks with a spatial bias branch (paper section 3,
Fig. 3; stage choice Table 6, insertion position Table 2).

Built on mmdet's ``ResNet``/``Bottleneck`` (as mmdet's ResNeSt is), so every
ResNet option of the OpenMMLab toolboxes keeps its meaning.
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.models.backbones.resnet import Bottleneck, ResNet
from mmengine.logging import print_log

from mmsb.registry import MODELS
from ..layers import SpatialBias, SplitNorm

SB_POSITIONS = ('conv1', 'conv2')


def _sb_norm_cfg(norm_cfg: dict) -> dict:
    """Norm of the 5-channel compression: the block's BN kind, else GN(1).

    Group norms of the block (e.g. 32 groups) cannot split 5 channels; a
    single group keeps them batch-independent like the block's norm.
    """
    if 'BN' in norm_cfg.get('type', 'BN'):
        return dict(norm_cfg)
    return dict(type='GN', num_groups=1, requires_grad=True)


class SBBottleneck(Bottleneck):
    """mmdet ``Bottleneck`` with a spatial bias branch (Eq. 1).

    With ``sb_position='conv2'`` (paper default) the bias is computed from the
    input of conv2 and concatenated to conv2's output, so ``norm2`` and
    ``conv3`` take ``planes + num_bias`` channels. With ``'conv1'`` (Table 2
    "Conv1") it is computed from the block input and joined after conv1,
    widening ``norm1`` and ``conv2``. ``sb_cfg=None`` gives exactly the
    plain Bottleneck.

    Args:
        sb_cfg (dict, optional): Options of :class:`SpatialBias` (all but
            ``in_channels``). Default: None.
        sb_position (str): 'conv2' or 'conv1'. Default: 'conv2'.
        **kwargs: Arguments of mmdet's ``Bottleneck``.
    """

    def __init__(self,
                 inplanes: int,
                 planes: int,
                 sb_cfg: Optional[dict] = None,
                 sb_position: str = 'conv2',
                 **kwargs):
        if sb_position not in SB_POSITIONS:
            raise KeyError(f'SBBottleneck: unknown sb_position '
                           f'{sb_position!r}; allowed: {SB_POSITIONS}')
        dcn = kwargs.get('dcn')
        # mmdet pops 'fallback_on_stride' from dcn: decide conv2's cfg first.
        conv2_cfg = kwargs.get('conv_cfg')
        if dcn is not None and not dcn.get('fallback_on_stride', False):
            conv2_cfg = {k: v for k, v in dcn.items()
                         if k != 'fallback_on_stride'}
        super().__init__(inplanes, planes, **kwargs)
        self.sb_position = sb_position
        if sb_cfg is None:
            self.spatial_bias = None
            self.sb_channels = 0
            return
        sb_cfg = dict(sb_cfg)
        sb_cfg.setdefault('norm_cfg', _sb_norm_cfg(self.norm_cfg))
        sb_in = inplanes if sb_position == 'conv1' else planes
        self.spatial_bias = SpatialBias(sb_in, **sb_cfg)
        self.sb_channels = delta = self.spatial_bias.out_channels_delta
        if delta == 0:  # fusion='add': no layer changes width
            return
        wide = planes + delta
        if sb_position == 'conv2':
            self._rebuild_norm(2, planes, delta)
            self.conv3 = build_conv_layer(
                self.conv_cfg, wide, planes * self.expansion, kernel_size=1,
                bias=False)
        else:
            self._rebuild_norm(1, planes, delta)
            self.conv2 = build_conv_layer(
                conv2_cfg, wide, planes, kernel_size=3,
                stride=self.conv2_stride, padding=self.dilation,
                dilation=self.dilation, bias=False)
        if self.with_plugins:
            names = getattr(self, f'after_{sb_position}_plugin_names')
            for name in names:
                delattr(self, name)
            cfgs = getattr(self, f'after_{sb_position}_plugins')
            setattr(self, f'after_{sb_position}_plugin_names',
                    self.make_block_plugins(wide, cfgs))

    def _rebuild_norm(self, index: int, planes: int, delta: int):
        cfg = self.norm_cfg
        if cfg.get('type') == 'GN' and (planes + delta) % cfg['num_groups']:
            name = build_norm_layer(cfg, planes, postfix=index)[0]
            norm = SplitNorm(cfg, planes, delta)
        else:
            name, norm = build_norm_layer(cfg, planes + delta, postfix=index)
        setattr(self, f'norm{index}_name', name)
        self.add_module(name, norm)

    def forward(self, x):
        """conv1 -> [SB] -> norm1 -> relu -> conv2 -> [SB] -> norm2 -> relu
        -> conv3 -> norm3 -> + identity -> relu (plugins where configured)."""
        sb = self.spatial_bias
        at_conv1 = sb is not None and self.sb_position == 'conv1'
        at_conv2 = sb is not None and self.sb_position == 'conv2'

        def _inner_forward(x):
            identity = x
            out = self.conv1(x)
            if at_conv1:
                out = sb.fuse(out, sb(x))      # [conv1(x), SB(x)], Eq. 1
            out = self.relu(self.norm1(out))
            if self.with_plugins:
                out = self.forward_plugin(out, self.after_conv1_plugin_names)

            bias = sb(out) if at_conv2 else None
            out = self.conv2(out)
            if at_conv2:
                out = sb.fuse(out, bias)       # [conv2(out), SB(out)], Eq. 1
            out = self.relu(self.norm2(out))
            if self.with_plugins:
                out = self.forward_plugin(out, self.after_conv2_plugin_names)

            out = self.norm3(self.conv3(out))
            if self.with_plugins:
                out = self.forward_plugin(out, self.after_conv3_plugin_names)
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
            return out

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        else:
            out = _inner_forward(x)
        return self.relu(out)

    def widened_layers(self):
        """(norm name, next conv name) widened by the concatenation, or None."""
        if self.spatial_bias is None or self.sb_channels == 0:
            return None
        if self.sb_position == 'conv2':
            return self.norm2_name, 'conv3'
        return self.norm1_name, 'conv2'


def sb_blocks(model: nn.Module):
    """(name, block) of every :class:`SBBottleneck` in ``model`` (a backbone
    or a whole detector, segmentor or classifier) that carries spatial
    bias."""
    for name, module in model.named_modules():
        if isinstance(module, SBBottleneck) and \
                module.spatial_bias is not None:
            yield name, module


@MODELS.register_module()
class SBResNet(ResNet):
    """SB-ResNet backbone: mmdet's ResNet with spatial bias bottlenecks.

    Every argument of mmdet's ``ResNet`` keeps its meaning (``out_indices``,
    ``frozen_stages``, ``norm_eval``, ``norm_cfg``, ``style``, ``with_cp``,
    ``deep_stem``, ``avg_down``, ``strides``, ``dilations``, ``dcn``,
    ``stage_with_dcn``, ``plugins``, ``init_cfg`` ...). Plugins placed
    ``after_conv2`` (or ``after_conv1`` with ``sb_position='conv1'``) see the
    widened ``planes + num_bias`` channels.

    Plain ResNet checkpoints (torchvision or mmpretrain layout, e.g.
    ``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')``)
    load function-preserving: the widened norm gets identity statistics and
    the next conv zero weights for the bias channels, so before training the
    outputs equal the plain ResNet's. Any other shape mismatch is an error.

    Args:
        depth (int): 50, 101 or 152 (26 for small CPU demos).
        sb_stages (Sequence[bool]): Stages with spatial bias, one entry per
            stage. Default: stages 1-3, not 4 (Table 6, best: s1, s2, s3).
        sb_cfg (dict, optional): Options of :class:`SpatialBias` (num_bias,
            kernel_size, pooled_size, pool_type, fusion, mixing, norm_cfg,
            init_cfg), checked by :meth:`SpatialBias.check_cfg` before any
            layer is built. Default: the paper's (3 maps, N=3, P=10, so
            C'=5). ``init_cfg`` replaces the branch's initialisation
            (the authors': PyTorch's default for the 1-D mixing conv), e.g.
            ``dict(type='Kaiming', layer='Conv1d', mode='fan_out',
            nonlinearity='relu', bias=0)``, mmsb 0.1's.
        sb_position (str): 'conv2' (paper) or 'conv1' (Table 2).
            Default: 'conv2'.
        contract_dilation (bool): Halve the dilation of the first block of a
            dilated stage, as mmseg's ResNetV1c configs do. Default: False.
        norm_eval (bool): Keep BN in eval mode while training. Default: False
            (mmdet configs set True explicitly).
        **kwargs: The remaining arguments of mmdet's ``ResNet``.

    Example:
        >>> import torch
        >>> from mmsb.models import SBResNet
        >>> model = SBResNet(depth=50, out_indices=(0, 1, 2, 3)).eval()
        >>> outs = model(torch.rand(1, 3, 64, 96))
        >>> [tuple(o.shape) for o in outs]
        [(1, 256, 16, 24), (1, 512, 8, 12), (1, 1024, 4, 6), (1, 2048, 2, 3)]
    """

    arch_settings = {
        26: (SBBottleneck, (2, 2, 2, 2)),  # small, for CPU demos
        50: (SBBottleneck, (3, 4, 6, 3)),
        101: (SBBottleneck, (3, 4, 23, 3)),
        152: (SBBottleneck, (3, 8, 36, 3)),
    }
    default_sb_stages = (True, True, True, False)
    default_sb_cfg = dict(num_bias=3, kernel_size=3, pooled_size=10)

    def __init__(self,
                 depth: int,
                 sb_stages: Optional[Sequence[bool]] = None,
                 sb_cfg: Optional[dict] = None,
                 sb_position: str = 'conv2',
                 contract_dilation: bool = False,
                 num_stages: int = 4,
                 norm_eval: bool = False,
                 zero_init_residual: bool = True,
                 pretrained: Optional[str] = None,
                 init_cfg=None,
                 **kwargs):
        depth = self._check_depth(depth)
        if sb_stages is None:
            sb_stages = self.default_sb_stages[:num_stages]
        if isinstance(sb_stages, (str, bytes)) or not isinstance(
                sb_stages, Sequence):
            raise ValueError(f'{type(self).__name__}: sb_stages must be a '
                             f'sequence of {num_stages} bools, got '
                             f'{sb_stages!r}')
        if len(sb_stages) != num_stages:
            raise ValueError(
                f'{type(self).__name__}: sb_stages has {len(sb_stages)} '
                f'entries but num_stages is {num_stages}')
        merged = dict(self.default_sb_cfg)
        merged.update(sb_cfg or {})
        SpatialBias.check_cfg(merged, owner=type(self).__name__)
        # mmsb 0.1 drew one SpatialBias(8)'s initial values from the global
        # RNG here; drawing them still keeps every seeded build and run as it
        # was, the stored ones in docs/evidence/runs included.
        SpatialBias(8, **merged)

        # Read by make_res_layer, which ResNet.__init__ calls per stage.
        self.sb_stages = tuple(bool(s) for s in sb_stages)
        self.sb_cfg = merged
        self.sb_position = sb_position
        self.contract_dilation = contract_dilation
        self._zero_init_blocks = (
            zero_init_residual and pretrained is None and init_cfg is None)
        super().__init__(
            depth=depth,
            num_stages=num_stages,
            norm_eval=norm_eval,
            zero_init_residual=zero_init_residual,
            pretrained=pretrained,
            init_cfg=init_cfg,
            **kwargs)
        # Run in this order before the tensors load (mmpretrain's ViT does
        # the same for its position embedding).
        self._register_load_state_dict_pre_hook(
            self._refuse_foreign_checkpoint)
        self._register_load_state_dict_pre_hook(self._widen_plain_resnet)
        self._register_load_state_dict_pre_hook(self._refuse_mismatches)

    def _check_depth(self, depth):
        if depth not in self.arch_settings:
            raise KeyError(
                f'{type(self).__name__}: invalid depth {depth!r}; allowed: '
                f'{sorted(self.arch_settings)} (spatial bias sits in '
                f'bottleneck blocks)')
        return depth

    def make_res_layer(self, **kwargs):
        stage = int(round(math.log2(kwargs['planes'] / self.base_channels)))
        # Every block gets sb_position, so that it is checked even where no
        # stage has spatial bias.
        kwargs['sb_position'] = self.sb_position
        if self.sb_stages[stage]:
            kwargs['sb_cfg'] = self.sb_cfg
        if kwargs.get('init_cfg') is None and self._zero_init_blocks:
            # ResNet only zero-inits mmdet's own Bottleneck class.
            kwargs['init_cfg'] = dict(
                type='Constant', val=0, override=dict(name='norm3'))
        layer = super().make_res_layer(**kwargs)
        dilation = kwargs.get('dilation', 1)
        if self.contract_dilation and dilation > 1:
            first = layer[0]
            first.dilation = dilation // 2
            first.conv2.dilation = (dilation // 2, ) * 2
            first.conv2.padding = (dilation // 2, ) * 2
        return layer

    def train(self, mode: bool = True):
        # mmdet's ResNet.train returns None; nn.Module promises self.
        super().train(mode)
        return self

    def sb_blocks(self):
        """(name, block) of every bottleneck that carries spatial bias."""
        return sb_blocks(self)

    def _refuse_foreign_checkpoint(self, state_dict, prefix, *args,
                                   **kwargs):
        """Load-state-dict pre-hook: refuse a checkpoint that holds none of
        the backbone's tensors.

        Only where the backbone is the root module (``init_cfg=Pretrained``,
        or ``load_checkpoint(backbone, ...)``): there mmengine would only log
        the keys and leave the backbone as it was.
        """
        if prefix or not state_dict:
            return
        own = list(self.state_dict(keep_vars=True))
        if any(k in state_dict for k in own):
            return
        found = list(state_dict)
        raise ValueError(
            f'{type(self).__name__}: the checkpoint holds none of the '
            f"backbone's {len(own)} tensors (it has e.g. "
            f'{", ".join(found[:3])}; the backbone expects e.g. '
            f'{", ".join(own[:3])}). For the backbone of a '
            f'detector, segmentor or classifier checkpoint, set '
            f"prefix='backbone.' in init_cfg.")

    def _widen_plain_resnet(self, state_dict, prefix, *args, **kwargs):
        """Load-state-dict pre-hook: widen a plain ResNet's tensors for the
        bias channels, function-preservingly.

        The widened norm gets identity statistics (weight and running_var
        1, bias and running_mean 0) and the next conv zero weights for the
        bias channels; under a :class:`SplitNorm` the plain norm becomes its
        ``main`` part. Works on the loader's copy of the dict, before the
        children load (torch and mmengine call a parent's pre-hooks first).
        """
        own = self.state_dict(keep_vars=True)
        padded = []
        for name, block in self.sb_blocks():
            widened = block.widened_layers()
            if widened is None:
                continue
            norm_name, conv_name = widened
            delta = block.sb_channels
            for key, fill in (('weight', 1.0), ('bias', 0.0),
                              ('running_mean', 0.0), ('running_var', 1.0)):
                full = f'{name}.{norm_name}.{key}'
                split = f'{name}.{norm_name}.main.{key}'
                if split in own and prefix + full in state_dict:
                    # SplitNorm (GN): the plain norm is its conv-channel part.
                    state_dict[prefix + split] = state_dict.pop(prefix + full)
                    padded.append(prefix + split)
                    continue
                ckpt = state_dict.get(prefix + full)
                if ckpt is not None and full in own and \
                        ckpt.dim() == 1 and \
                        ckpt.shape[0] + delta == own[full].shape[0]:
                    pad = ckpt.new_full((delta, ), fill)
                    state_dict[prefix + full] = _cat0(ckpt, pad)
                    padded.append(prefix + full)
            conv_prefix = f'{name}.{conv_name}.'
            for full, target in own.items():
                if not full.startswith(conv_prefix):
                    continue
                ckpt = state_dict.get(prefix + full)
                if ckpt is None or ckpt.dim() < 2 or \
                        ckpt.shape[1] + delta != target.shape[1] or \
                        ckpt.shape[0] != target.shape[0]:
                    continue
                pad = ckpt.new_zeros(
                    (ckpt.shape[0], delta) + tuple(ckpt.shape[2:]))
                state_dict[prefix + full] = _cat1(ckpt, pad)
                padded.append(prefix + full)
        if padded:
            print_log(
                f'{type(self).__name__}: widened {len(padded)} plain-ResNet '
                f'tensors for the spatial bias channels (identity norm, zero '
                f'conv weights), e.g. {padded[0]}', logger='current')

    def _refuse_mismatches(self, state_dict, prefix, *args, **kwargs):
        """Load-state-dict pre-hook: refuse tensors whose shape is not the
        model's (after widening), naming up to five of them."""
        bad = []
        for full, target in self.state_dict(keep_vars=True).items():
            ckpt = state_dict.get(prefix + full)
            if ckpt is not None and hasattr(ckpt, 'shape') and \
                    tuple(ckpt.shape) != tuple(target.shape):
                bad.append(f'{prefix + full}: checkpoint {tuple(ckpt.shape)}'
                           f' vs model {tuple(target.shape)}')
        if bad:
            raise ValueError(
                f'{type(self).__name__}: {len(bad)} checkpoint tensor(s) '
                f'cannot be reconciled with the model (wrong depth/width or '
                f'sb_cfg?): ' + '; '.join(bad[:5]) +
                (' ...' if len(bad) > 5 else ''))


def _cat0(a, b):
    return torch.cat([a, b.to(a.dtype)], 0)


def _cat1(a, b):
    return torch.cat([a, b.to(a.dtype)], 1)


@MODELS.register_module()
class SBResNetV1c(SBResNet):
    """SB-ResNetV1c: deep 3x3 stem (mmseg's ResNetV1c) with spatial bias."""

    def __init__(self, **kwargs):
        super().__init__(deep_stem=True, avg_down=False, **kwargs)


@MODELS.register_module()
class SBResNetV1d(SBResNet):
    """SB-ResNetV1d: deep stem and avg-pool downsampling with spatial bias."""

    def __init__(self, **kwargs):
        super().__init__(deep_stem=True, avg_down=True, **kwargs)


@MODELS.register_module()
class SBResNetCIFAR(SBResNet):
    """CIFAR bottleneck SB-ResNet of Table 1 (depth 9n+2: 38, 65, 110).

    Three stages of 16/32/64 planes with (depth - 2) / 9 bottlenecks each,
    a 3x3 stride-1 stem and no max pooling; P=6 and spatial bias in s1, s2
    by default (Tables 1, 3).

    Example:
        >>> import torch
        >>> from mmsb.models import SBResNetCIFAR
        >>> model = SBResNetCIFAR(depth=65).eval()
        >>> model(torch.rand(1, 3, 32, 32))[-1].shape
        torch.Size([1, 256, 8, 8])
    """

    default_sb_stages = (True, True, False)
    default_sb_cfg = dict(num_bias=3, kernel_size=3, pooled_size=6)

    def __init__(self,
                 depth: int,
                 num_stages: int = 3,
                 base_channels: int = 16,
                 strides=(1, 2, 2),
                 dilations=(1, 1, 1),
                 out_indices=(2, ),
                 **kwargs):
        if kwargs.get('deep_stem'):
            raise ValueError('SBResNetCIFAR: deep_stem is not supported; the '
                             'CIFAR stem is one 3x3 convolution')
        super().__init__(
            depth, num_stages=num_stages, base_channels=base_channels,
            strides=strides, dilations=dilations, out_indices=out_indices,
            **kwargs)

    def _check_depth(self, depth):
        if not isinstance(depth, int) or depth < 11 or (depth - 2) % 9:
            raise KeyError(
                f'SBResNetCIFAR: invalid depth {depth!r}; expected 9n+2 with '
                f'n >= 1 bottlenecks per stage, e.g. 38, 65, 110')
        n = (depth - 2) // 9
        self.arch_settings = {depth: (SBBottleneck, (n, n, n))}
        return depth

    def _make_stem_layer(self, in_channels, stem_channels):
        self.conv1 = build_conv_layer(
            self.conv_cfg, in_channels, stem_channels, kernel_size=3,
            stride=1, padding=1, bias=False)
        self.norm1_name, norm1 = build_norm_layer(
            self.norm_cfg, stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
