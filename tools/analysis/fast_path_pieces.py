# Copyright (c) mmsb contributors. All rights reserved.
"""One-off measurement for issue 9: does any piece of SpatialBias's fast
path pay for itself end to end?

Builds SB-ResNet-50 classifiers (the benchmark's models) in which exactly one
piece of the fast formulation is on, plus one with all pieces and one with
none (the straightforward formulation), and ResNet-50. All are timed
interleaved in one process, shuffled per round:

* ``gemm``    the 1x1 compression as a GEMM (CPU inference, batch >= 16)
* ``mix``     the 1-D mixing as one matmul
* ``resize``  the bilinear resize as two matmuls (unfused join)
* ``fused``   eval-BN + concat + ReLU fused (with its matmul resize)
* ``inplace`` the in-place residual add

Settings: inference batch 1 and 16 at 224, batch 1 at 800x1216, and a
training step (batch 8, ``norm_eval=True`` as the COCO configs, so the fused
Function runs). Prints throughput ratios to the straightforward model and to
ResNet-50. Run it several times; a piece stays only if it gains >= 3% in
every run (issue 9).
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import benchmark as bm  # noqa: E402

from mmsb.models import SpatialBias  # noqa: E402
from mmsb.models.backbones.sb_resnet import SBBottleneck  # noqa: E402
from mmsb.models.layers import spatial_bias as sbmod  # noqa: E402

PIECES = ('gemm', 'mix', 'resize', 'fused', 'inplace')


def patch(model, on):
    """Straightforward formulation plus the pieces in ``on``."""
    sbmod.set_fast_path(model, False)
    for m in model.modules():
        if isinstance(m, SBBottleneck):
            m.fast_path = 'inplace' in on
        if isinstance(m, SpatialBias):
            m.forward = _forward(m, on)
            m.fuse_norm_act = _fuse_norm_act(m, on)
    return model


def _forward(sb, on):
    p = sb.pooled_size

    def forward(x):
        if ('gemm' in on and x.shape[0] >= 16 and not torch.is_grad_enabled()
                and x.is_contiguous()):
            b, _, h, w = x.shape
            y = torch.matmul(sb.reduce.weight.flatten(1),
                             x.flatten(2)).view(b, -1, h, w)
        else:
            y = sb.reduce(x)
        y = sb._pool(sb.act(sb.norm(y)))
        if 'mix' in on:
            return sb._mix_matmul(y)
        seq = sb.mix(y.flatten(2).transpose(1, 2))
        return seq.transpose(1, 2).reshape(seq.shape[0], sb.num_bias, p, p)

    return forward


def _fuse_norm_act(sb, on):

    def fuse_norm_act(conv_out, bias, norm, act):
        if ('fused' in on and sbmod._uses_running_stats(norm)
                and conv_out.is_contiguous()
                and conv_out.numel() >= sbmod._FUSED_JOIN_MIN_NUMEL):
            up = sb._resize_matmul(bias, conv_out.shape[-2:], conv_out.dtype)
            args = (conv_out, up, norm.weight, norm.bias, norm.running_mean,
                    norm.running_var, norm.eps)
            if torch.is_grad_enabled():
                return sbmod._BNEvalConcatReLU.apply(*args)
            return sbmod._bn_eval_concat_relu(*args)
        if 'resize' in on:
            up = sb._resize_matmul(bias, conv_out.shape[-2:], conv_out.dtype)
        else:
            up = sb.upsample(bias, conv_out.shape[-2:], conv_out.dtype)
        return act(norm(torch.cat([conv_out, up], 1)))

    return fuse_norm_act


def variants():
    out = {'r50': None, 'straight': (), 'all': PIECES}
    out.update({p: (p, ) for p in PIECES})
    return out


def build(key, on, norm_eval):
    model = bm.build_classifier('r50' if on is None else 'sb-r50')
    model.backbone.norm_eval = norm_eval
    return model if on is None else patch(model, on)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--settings', nargs='+',
                    default=['b1', 'b16', 'det', 'train'])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    runner = bm.Runner(argparse.Namespace(
        device='cpu', dtype='fp32', channels_last=False))
    plans = dict(
        b1=('infer', 1, (224, 224), 2, 15),
        b16=('infer', 16, (224, 224), 1, 5),
        det=('infer', 1, (800, 1216), 1, 5),
        train=('train', 8, (224, 224), 1, 3))
    for name in args.settings:
        mode, n, hw, warmup, repeats = plans[name]
        steps = {}
        for key, on in variants().items():
            model = build(key, on, norm_eval=(mode == 'train'))
            x = runner.image(n, hw)
            if mode == 'infer':
                steps[key] = bm.make_infer_step(runner, model.eval(), x)
            else:
                labels = torch.randint(0, 1000, (n, ))
                steps[key] = bm.make_train_step(runner, model.train(), x,
                                                labels)
        times = bm.interleaved(runner, steps, warmup, repeats, args.seed)
        res = bm.summarise(times, n, 'straight', False)
        r50 = res['r50']['median_wall_s']
        print(f'== {name}: {mode} batch {n} {hw[0]}x{hw[1]}, '
              f'{repeats} rounds, {args.threads} threads')
        print(f'{"variant":<10}{"s/step":>9}{"x straight":>12}'
              f'{"paired":>9}{"x R50":>8}')
        for key, r in res.items():
            print(f'{key:<10}{r["median_wall_s"]:>9.3f}'
                  f'{r["ratio_wall"]:>12.3f}{r["paired_ratio_wall"]:>9.3f}'
                  f'{r50 / r["median_wall_s"]:>8.3f}', flush=True)


if __name__ == '__main__':
    main()
