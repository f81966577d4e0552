"""TorchCAM 0.5's ``torchcam.methods`` on fastcam's methods: the same classes and calls."""
from .activation import *  # noqa: F401,F403
from .core import OutputTarget  # noqa: F401
from .gradient import *  # noqa: F401,F403
from .activation import __all__ as _activation
from .gradient import __all__ as _gradient

__all__ = [*_activation, *_gradient, "OutputTarget"]
