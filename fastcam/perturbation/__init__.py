"""Engines that run the model on perturbed copies of its input, chunk by chunk
(memory bounded by the chunk size): masked images (Score-CAM, the confidence
metrics, AVX), pixels revealed in saliency order (insertion/deletion), Shapley
coalitions of the target layer's positions (Shap-CAM), and ROAD's noisy linear
imputation. The copies themselves come from the kernel-backed ops in
:mod:`fastcam.ops`."""
from .masked_scores import callable_score, class_score, masked_scores, reveal_scores
from .noisy_linear_imputation import noisy_linear_imputation

__all__ = ["masked_scores", "reveal_scores", "class_score", "callable_score",
           "noisy_linear_imputation"]
