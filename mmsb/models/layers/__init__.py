from .spatial_bias import SpatialBias
from .split_norm import SplitNorm

__all__ = ['SpatialBias', 'SplitNorm']
