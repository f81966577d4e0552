"""Differentiable tensor ops the methods are written in; each picks its kernel by
device (see fastcam.backend)."""
from .cam_combine import cam_combine

__all__ = ["cam_combine"]
