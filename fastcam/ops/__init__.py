"""Differentiable tensor ops the methods are written in; each picks its kernel by
device (see fastcam.backend)."""
from .adaptive_kde import adaptive_kde
from .cam_combine import cam_combine
from .mask_blend import mask_blend
from .masked_scores import class_score, masked_scores, reveal_scores, stream_scores
from .noisy_linear_imputation import noisy_linear_imputation
from .rank_reveal import rank_reveal

__all__ = ["adaptive_kde", "cam_combine", "mask_blend", "rank_reveal", "masked_scores", "reveal_scores",
           "stream_scores", "class_score", "noisy_linear_imputation"]
