"""Front-ends that speak other CAM libraries' APIs on top of fastcam's engine.

``fastcam.compat.pytorch_grad_cam`` mirrors the PyPI package ``grad-cam``
(import name ``pytorch_grad_cam``): change the import line, keep the script.
``fastcam.compat.torchcam`` mirrors TorchCAM 0.5 (``torchcam.methods``,
``torchcam.utils``) the same way. ``fastcam.compat.numerics`` holds those
libraries' numerics where they differ from the native methods' (subclasses of
the native methods that the front-ends build; the native methods never import it).
"""
