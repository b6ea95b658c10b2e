# Copyright (c) mmsb contributors. All rights reserved.
"""Numbers that documentation and reports should compute, not guess.

- :func:`receptive_field` measures, rather than derives from a table of
  kernel sizes, how many input pixels one output unit of each feature map
  depends on. A spatial-bias branch (global pooling and mixing) makes every
  unit after it depend on the whole input, and the measure says so.
- :func:`paired_stats` compares two models over a handful of paired seeds
  without leaning on normality alone (t interval and exact Wilcoxon, sign
  count, median/IQR, outlying seeds); ``tools/analysis/evidence.py``
  renders its verdicts.
"""
import copy
from typing import List

import torch
from torch import nn

__all__ = ['paired_stats', 'receptive_field']


@torch.no_grad()
def _make_positive(model: nn.Module):
    """Every weight positive and every bias and BN shift zero, BN an
    identity, every max pooling an average over the same window: with a
    positive input every activation is then positive, no ReLU hides a path
    and no max passes its gradient to one input only, so a zero gradient
    means no path."""
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.MaxPool2d):
            if m.dilation not in (1, (1, 1)):
                raise ValueError(f'receptive_field: {name} is a dilated max '
                                 f'pooling, which has no average twin')
            parent = model.get_submodule(name.rpartition('.')[0])
            setattr(parent, name.rpartition('.')[2], nn.AvgPool2d(
                m.kernel_size, m.stride, m.padding, m.ceil_mode))
        elif getattr(m, 'pool_type', None) == 'max':  # SpatialBias
            m.pool_type = 'avg'
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()  # weight 1, bias 0, mean 0, var 1
        elif isinstance(m, nn.GroupNorm):
            raise ValueError('receptive_field: GroupNorm mixes positions '
                             'only within a sample; use a BN model')
    for name, p in model.named_parameters():
        if name.endswith('bias'):
            p.zero_()
        elif p.dim() > 1:  # conv / linear weights
            p.fill_(1.0 / (p[0].numel()))


def receptive_field(model: nn.Module, input_size: int = 129,
                    in_channels: int = 3, units: int = 1) -> List[int]:
    """Receptive field, in input pixels, of the centre unit of each output
    of ``model`` (a backbone returning a tensor or a tuple of tensors).

    Measured on a copy of the model whose weights are made positive (see
    :func:`_make_positive`): the side of the bounding box of the input
    pixels with a non-zero gradient of the centre unit (summed over
    channels). This is the theoretical receptive field; effective
    receptive fields are smaller. A value equal to ``input_size`` means the
    unit sees the whole input (e.g. after a spatial-bias block): make
    ``input_size`` larger than any local receptive field of interest.

    With ``units > 1`` the fields of a ``units`` x ``units`` square of
    units starting at the centre are measured, and the result is the side
    of the smallest square centred on its unit that holds the field of
    every one of them: ``2 * reach + 1``, ``reach`` the farthest any of them
    sees in any direction. Where strides and upsampling make the field
    depend on the position (a stride-4 map resized to the input), this is
    the bound "a unit sees nothing farther than (R - 1) / 2 pixels away"
    needs; ``units`` at least the largest stride covers every phase. It
    needs outputs at the input's size (a segmentor's logits).

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(),
        ...                     nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3))
        >>> receptive_field(net, input_size=33, in_channels=1)
        [9]
    """
    net = copy.deepcopy(model).eval()
    _make_positive(net)
    x = torch.ones(1, in_channels, input_size, input_size, requires_grad=True)
    with torch.enable_grad():
        outs = net(x)
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        sizes = []
        for out in outs:
            h, w = out.shape[-2:]
            if units == 1:
                rows, cols = _seen(out, x, h // 2, w // 2)
                sizes.append(int(max(rows.max() - rows.min(),
                                     cols.max() - cols.min())) + 1)
                continue
            if (h, w) != (input_size, input_size):
                raise ValueError(
                    f'receptive_field: units={units} needs outputs at the '
                    f'input\'s size (a dense head), where unit (i, j) sits '
                    f'on pixel (i, j); got {h}x{w} for {input_size}x'
                    f'{input_size}')
            reach = 0
            for i in range(h // 2, min(h, h // 2 + units)):
                for j in range(w // 2, min(w, w // 2 + units)):
                    rows, cols = _seen(out, x, i, j)
                    reach = max(reach, i - int(rows.min()),
                                int(rows.max()) - i, j - int(cols.min()),
                                int(cols.max()) - j)
            sizes.append(2 * reach + 1)
    return sizes


def _seen(out, x, i, j):
    """Rows and columns of the input pixels unit (i, j) of ``out`` sees."""
    grad, = torch.autograd.grad(out[0, :, i, j].sum(), x, retain_graph=True)
    seen = grad[0].abs().sum(0) > 0
    return seen.any(1).nonzero(), seen.any(0).nonzero()


def _spread(values) -> dict:
    """Mean, sample std, median, quartiles and the indices of values more
    than 3 MADs from the median (MAD: the median absolute deviation)."""
    import numpy as np
    x = np.asarray(values, dtype=float)
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    q1, q3 = (float(v) for v in np.percentile(x, [25, 75]))
    return dict(
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if len(x) > 1 else float('nan'),
        median=med, q1=q1, q3=q3, mad=mad,
        outliers=[i for i, v in enumerate(x)
                  if mad > 0 and abs(v - med) > 3 * mad])


def paired_stats(base, method, alpha: float = 0.05) -> dict:
    """Paired comparison of ``method`` against ``base`` over seeds (the
    same seed at the same position), for a handful of seeds.

    Returns a dict with ``base`` and ``method`` (mean, std, median, q1, q3,
    mad and ``outliers``: indices more than 3 MADs from the median), and
    ``diff`` for ``method - base``: ``mean``, the two-sided 95% t interval
    ``lo``/``hi`` (n - 1 degrees of freedom), the exact Wilcoxon
    signed-rank ``p`` (two-sided; zero differences dropped), ``wins`` (seeds
    where ``method`` is higher), ``losses``, ``n``, and the ``verdict``:
    'better' or 'worse' only when the t interval excludes 0 *and* the
    Wilcoxon p is below ``alpha``, else 'not established' (a rank test
    needs no normality, and with n pairs its p cannot fall below
    2 / 2**n: 0.0625 at 5 pairs, 0.0078 at 8).
    """
    import numpy as np
    from scipy import stats
    base = np.asarray(base, dtype=float)
    method = np.asarray(method, dtype=float)
    if base.shape != method.shape or base.ndim != 1 or len(base) < 1:
        raise ValueError(f'paired_stats: expected two equal-length lists of '
                         f'values, got {len(base)} and {len(method)}')
    d = method - base
    n = len(d)
    mean = float(d.mean())
    if n > 1:
        half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n))
        lo, hi = mean - half, mean + half
    else:
        lo = hi = float('nan')
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        p = 1.0
    else:
        try:
            res = stats.wilcoxon(nonzero, method='exact')
        except TypeError:  # scipy < 1.9 names it mode
            res = stats.wilcoxon(nonzero, mode='exact')
        p = float(res.pvalue)
    if n > 1 and p < alpha and (lo > 0 or hi < 0):
        verdict = 'better' if lo > 0 else 'worse'
    else:
        verdict = 'not established'
    return dict(
        base=_spread(base), method=_spread(method),
        diff=dict(mean=mean, lo=lo, hi=hi, p=p, n=n,
                  wins=int((d > 0).sum()), losses=int((d < 0).sum()),
                  verdict=verdict, values=[float(v) for v in d]))
