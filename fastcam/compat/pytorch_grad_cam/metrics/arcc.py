"""``pytorch_grad_cam.metrics.arcc``: ARCC, the geometric mean of Complexity, Coherency and
ROAD.

Not implemented by fastcam yet: ``batch_pearson_coherency``, ``Complexity``, ``Coherency``,
``ARCC`` are pytorch-grad-cam's own, handed out with a warning (``.._delegate``); without
grad-cam, accessing one raises ImportError.
"""
from .._delegate import delegated

__all__ = ["batch_pearson_coherency", "Complexity", "Coherency", "ARCC"]
__getattr__ = delegated(__name__, __all__)
