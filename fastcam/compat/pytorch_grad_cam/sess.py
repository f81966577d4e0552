"""``pytorch_grad_cam.sess``: SESS, Saliency Enhancing with Scaling and Sliding (Tursun et al.,
ECCV 2022, arXiv 2207.01769), a meta-method over any CAM method, with grad-cam 1.5.7's
interface and numerics: an adapter over fastcam's :mod:`fastcam.methods.sess`, which runs
the pipeline batched on the model's device. Here the patch maps come from a grad-cam-style
``base_method`` (NumPy maps scaled its way), a target is called on a batch of outputs
(B, C) as grad-cam's SESS does, and the final scaling is grad-cam's ``scale_cam_image``.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ...engine import Engine
from ...methods.sess import SESS as NativeSESS
from ...methods.sess import gaussian_blur, sliding_window, window_starts
from .grad_cam import GradCAM
from .utils.image import scale_cam_image
from .utils.model_targets import ClassifierOutputTarget

__all__ = ["SESS", "sliding_window", "window_starts", "gaussian_blur"]


class SESS:
    """SESS with grad-cam's interface::

        SESS(model, target_layers, reshape_transform=None, base_method=GradCAM, scales=None,
             num_scales=12, scale_step_ratio=2/7, window_size=None, step_size=None,
             pre_filter_ratio=0.0, theta=0.0, pool="mean", smooth=True,
             use_softmax_scores=True, batch_size=32, **kwargs)(input_tensor, targets=None,
             eigen_smooth=False) -> float32 NumPy (B, H, W)

    ``base_method``: a CAM class of this front-end (fastcam's GradCAM by default, or any of
    ``fastcam.compat.pytorch_grad_cam``'s), built as ``base_method(model, target_layers,
    reshape_transform, **kwargs)``. The other options are :class:`fastcam.methods.sess.SESS`'s;
    ``targets`` None means each image's predicted class.

    Unlike grad-cam, all images and windows are processed in batches of ``batch_size``
    patches across images and scales, on the model's device.
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: Optional[Callable] = None, base_method: Callable[..., Any] = GradCAM,
                 scales: Optional[List[int]] = None, num_scales: int = 12, scale_step_ratio: float = 2.0 / 7.0,
                 window_size: Optional[int] = None, step_size: Optional[int] = None,
                 pre_filter_ratio: float = 0.0, theta: float = 0.0, pool: str = "mean", smooth: bool = True,
                 use_softmax_scores: bool = True, batch_size: int = 32, **kwargs: Any) -> None:
        self.base_cam = base_method(model, target_layers, reshape_transform, **kwargs)
        self.model = self.base_cam.model
        param = next(self.model.parameters(), None)
        self.device = param.device if param is not None else torch.device("cpu")
        self.engine = Engine(self.model)
        self.sess = NativeSESS(self.base_cam, scales=scales, num_scales=num_scales,
                               scale_step_ratio=scale_step_ratio, window_size=window_size,
                               step_size=step_size, pre_filter_ratio=pre_filter_ratio, theta=theta, pool=pool,
                               smooth=smooth, use_softmax_scores=use_softmax_scores, batch_size=batch_size,
                               engine=self.engine)

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return self.forward(*args, **kwargs)

    def __enter__(self) -> "SESS":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    def get_scales(self, window_size: int) -> List[int]:
        """The shorter-side sizes the image is resized to."""
        return self.sess.get_scales(window_size)

    def forward(self, input_tensor: Tensor, targets: Optional[Sequence[Callable]] = None,
                eigen_smooth: bool = False) -> np.ndarray:
        if not isinstance(input_tensor, Tensor) or input_tensor.dim() != 4:
            raise ValueError("input_tensor must be a (B, C, H, W) tensor, got "
                             f"{getattr(input_tensor, 'shape', type(input_tensor).__name__)}")
        x = input_tensor.detach().to(self.device)
        b = x.shape[0]
        targets = [None] * b if targets is None else list(targets)
        if len(targets) != b:
            raise ValueError(f"Expected one target per image. Got {len(targets)} targets for {b} images.")
        with torch.inference_mode(False):
            targets = self._resolve(x, targets)

        def patch_scores(out: Tensor, images: Tensor) -> Tensor:
            """grad-cam's SESS calls a target on the batch of an image's patch outputs."""
            if self.sess.use_softmax_scores:
                out = torch.softmax(out, dim=-1)
            score = torch.empty(len(images), dtype=out.dtype, device=out.device)
            for i in images.unique().tolist():
                sel = (images == i).nonzero()[:, 0]
                score[sel] = torch.as_tensor(targets[i](out[sel]), dtype=out.dtype, device=out.device)
            return score

        def explain_rows(patches: Tensor, images: Tensor) -> Tensor:
            return torch.as_tensor(self.base_cam(patches, [targets[i] for i in images.tolist()],
                                                 eigen_smooth=eigen_smooth))

        cams = self.sess.fused_maps(x, patch_scores, explain_rows)
        return scale_cam_image(cams.float().cpu().numpy())

    def _resolve(self, x: Tensor, targets: list) -> list:
        if all(t is not None for t in targets):
            return targets
        with torch.no_grad():
            classes = self.engine.forward(x).argmax(dim=-1).tolist()
        return [ClassifierOutputTarget(c) if t is None else t for t, c in zip(targets, classes)]
