from .backbones import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .backbones import __all__ as _backbones
from .layers import __all__ as _layers

__all__ = _backbones + _layers
