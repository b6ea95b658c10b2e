"""mmsb.analysis: the paired statistics against values computed by hand,
and receptive fields measured from built models."""
import math

import pytest
import torch
from torch import nn

from mmsb.analysis import paired_stats, receptive_field


def test_paired_stats_five_seeds_cannot_reach_significance():
    # d = 1..5: mean 3, sd sqrt(2.5); t(0.975, 4) = 2.776445 (tables)
    r = paired_stats([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert r['diff']['mean'] == pytest.approx(3)
    assert r['diff']['lo'] == pytest.approx(3 - half, abs=1e-5)
    assert r['diff']['hi'] == pytest.approx(3 + half, abs=1e-5)
    # all five positive: exact two-sided p = 2 / 2**5
    assert r['diff']['p'] == pytest.approx(0.0625)
    assert (r['diff']['wins'], r['diff']['losses']) == (5, 0)
    # the interval excludes 0 but the rank test cannot: no verdict
    assert r['diff']['verdict'] == 'not established'


def test_paired_stats_eight_seeds_one_loss():
    d = [1, 2, 3, 4, 5, 6, 7, -0.5]
    base = [50.0] * 8
    r = paired_stats(base, [50 + v for v in d])
    # mean 27.5 / 8; sum of squared deviations 45.71875, var 6.53125;
    # t(0.975, 7) = 2.364624 (tables)
    half = 2.364624 * math.sqrt(45.71875 / 7) / math.sqrt(8)
    assert r['diff']['mean'] == pytest.approx(3.4375)
    assert r['diff']['lo'] == pytest.approx(3.4375 - half, abs=1e-5)
    # W- = rank 1 (the -0.5); subsets of ranks 1..8 with sum <= 1: 2 of
    # 256; two-sided p = 4 / 256
    assert r['diff']['p'] == pytest.approx(4 / 256)
    assert (r['diff']['wins'], r['diff']['losses'], r['diff']['n']) == \
        (7, 1, 8)
    assert r['diff']['verdict'] == 'better'
    worse = paired_stats([50 + v for v in d], base)
    assert worse['diff']['verdict'] == 'worse'
    assert worse['diff']['p'] == pytest.approx(4 / 256)


def test_paired_stats_spread_and_outliers():
    x = [10, 10.5, 11, 11, 11.5, 12, 30]
    r = paired_stats(x, x)
    s = r['base']
    # median 11; |x - 11| = 1, .5, 0, 0, .5, 1, 19: MAD 0.5, 30 is > 1.5 off
    assert (s['median'], s['mad'], s['outliers']) == (11, 0.5, [6])
    # linear quartiles of 7 values: positions 1.5 and 4.5
    assert (s['q1'], s['q3']) == (10.75, 11.75)
    assert s['mean'] == pytest.approx(96 / 7)
    # no difference at all: p = 1, no verdict
    assert r['diff']['p'] == 1.0
    assert r['diff']['verdict'] == 'not established'


def test_paired_stats_refuses_unpaired_lists():
    with pytest.raises(ValueError, match='equal-length'):
        paired_stats([1, 2, 3], [1, 2])


def test_receptive_field_of_plain_layers():
    # 3 -> stride-2 conv: 3 + 2 = 5 (jump 2) -> 5 + 2 * 2 = 9 -> max pool
    # 2 (stride 2): 9 + 1 * 2 = 11
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(),
        nn.Conv2d(2, 2, 3, stride=2), nn.Conv2d(2, 2, 3), nn.MaxPool2d(2))
    assert receptive_field(net, input_size=41, in_channels=1) == [11]
    assert receptive_field(nn.Conv2d(1, 1, 3, dilation=2), 21, 1) == [5]


class _Stages(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)


def test_receptive_field_of_the_pathfinder_resnet():
    """The CIFAR ResNet-20 of the Pathfinder configs: 3x3 stem, then per
    stage two bottlenecks with one 3x3 each (the first of stages 2-3 at
    stride 2): 3 + 2 + 2 = 7, + 2 + 4 = 13, + 4 + 8 = 25 px. With spatial bias in stages 1-2 every unit
    from stage 1 on sees the whole input."""
    from mmsb.models import SBResNetCIFAR
    torch.manual_seed(0)
    plain = SBResNetCIFAR(depth=20, sb_stages=(False, False, False),
                          out_indices=(0, 1, 2))
    assert receptive_field(plain, input_size=65) == [7, 13, 25]
    sb = SBResNetCIFAR(depth=20, out_indices=(0, 1, 2))
    assert receptive_field(sb, input_size=65) == [65, 65, 65]
