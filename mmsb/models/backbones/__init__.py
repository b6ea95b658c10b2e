from .sb_resnet import (SBBottleneck, SBResNet, SBResNetCIFAR, SBResNetV1c,
                        SBResNetV1d)

__all__ = [
    'SBBottleneck', 'SBResNet', 'SBResNetV1c', 'SBResNetV1d', 'SBResNetCIFAR'
]
