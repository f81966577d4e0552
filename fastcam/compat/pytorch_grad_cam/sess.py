"""``pytorch_grad_cam.sess``: SESS, Saliency Enhancing with Scaling and Sliding.

Not implemented by fastcam yet: ``SESS``, ``sliding_window``, ``window_starts`` are
pytorch-grad-cam's own, handed out with a warning (``._delegate``); without grad-cam,
accessing one raises ImportError.
"""
from ._delegate import delegated

__all__ = ["SESS", "sliding_window", "window_starts"]
__getattr__ = delegated(__name__, __all__)
