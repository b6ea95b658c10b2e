# Copyright (c) mmsb contributors. All rights reserved.
import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer


class SplitNorm(nn.Module):
    """Norm of ``[conv channels, bias channels]`` for group norms.

    A block's GN (e.g. 32 groups) cannot normalise ``planes + num_bias``
    channels. This applies the block's norm to the conv channels, exactly as
    in the plain block, and a single-group GN to the bias channels.

    Args:
        norm_cfg (dict): The block's norm config.
        channels (int): Conv channels (first part of the input).
        extra (int): Bias channels appended after them.
    """

    def __init__(self, norm_cfg: dict, channels: int, extra: int):
        super().__init__()
        self.channels = channels
        self.main = build_norm_layer(norm_cfg, channels)[1]
        self.extra = nn.GroupNorm(1, extra)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.channels
        return torch.cat([self.main(x[:, :c]), self.extra(x[:, c:])], dim=1)
