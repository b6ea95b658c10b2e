from .spatial_bias import SpatialBias

__all__ = ['SpatialBias']
