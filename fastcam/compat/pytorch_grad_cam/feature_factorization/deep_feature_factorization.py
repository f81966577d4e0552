"""``pytorch_grad_cam.feature_factorization.deep_feature_factorization``: deep feature
factorization (Collins et al., "Deep Feature Factorization for Concept Discovery", ECCV 2018,
arXiv 1806.10206) with grad-cam's interface, an adapter over fastcam's
:mod:`fastcam.methods.feature_factorization` (``dff`` and ``nmf`` are fastcam's).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ....engine import Engine
from ....methods.feature_factorization import deep_feature_factorization, dff, nmf
from ..utils.image import create_labels_legend, scale_cam_image, show_factorization_on_image

__all__ = ["dff", "DeepFeatureFactorization", "run_dff_on_image", "nmf"]


class DeepFeatureFactorization:
    """Deep feature factorization with grad-cam's interface::

        DeepFeatureFactorization(model, target_layer, reshape_transform=None,
                                 computation_on_concepts=None)(input_tensor, n_components=16)
        -> (concepts (C, k), [per image (k, H, W) maps in [0, 1]][, concept outputs (k, ...)])

    The target layer is hooked only during the call (fastcam's engine; nothing is left on
    the model), the NMF runs on the activations' device, ``computation_on_concepts`` (e.g. the
    classifier head) gets the concepts (k, C) on that device. Errors propagate (grad-cam's
    ``with`` block swallows an IndexError).
    """

    def __init__(self, model: nn.Module, target_layer: nn.Module, reshape_transform: Optional[Callable] = None,
                 computation_on_concepts: Optional[Callable[[Tensor], Tensor]] = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(target_layer, nn.Module):
            raise TypeError(f"target_layer must be a module, got {type(target_layer).__name__}")
        self.model = model
        self.target_layer = target_layer
        self.reshape_transform = reshape_transform
        self.computation_on_concepts = computation_on_concepts
        self.engine = Engine(model)

    def __enter__(self) -> "DeepFeatureFactorization":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    def __call__(self, input_tensor: Tensor, n_components: int = 16) -> tuple:
        if not isinstance(input_tensor, Tensor) or input_tensor.dim() != 4:
            raise ValueError("input_tensor must be a (B, C, H, W) tensor, got "
                             f"{getattr(input_tensor, 'shape', type(input_tensor).__name__)}")
        _, _, h, w = input_tensor.shape
        with torch.inference_mode(False), torch.no_grad():
            found = deep_feature_factorization(self.engine, input_tensor, self.target_layer, n_components,
                                               reshape_transform=self.reshape_transform)
            concepts, explanations = found.concepts, found.heatmaps
            processed = list(scale_cam_image(explanations.reshape(-1, *explanations.shape[2:]), (w, h))
                             .reshape(explanations.shape[0], n_components, h, w))
            concepts_np = concepts.cpu().numpy()
            if not self.computation_on_concepts:
                return concepts_np, processed
            outputs = self.computation_on_concepts(concepts.T.contiguous())
        return concepts_np, processed, torch.as_tensor(outputs).detach().cpu().numpy()


def run_dff_on_image(model: nn.Module, target_layer: nn.Module, classifier: Callable[[Tensor], Tensor],
                     img_pil: Any, img_tensor: Tensor, reshape_transform: Optional[Callable] = None,
                     n_components: int = 5, top_k: int = 2) -> np.ndarray:
    """One image's DFF picture, as grad-cam: the image beside its concept maps over it
    (image weight 0.3), each labelled with the ``top_k`` classes of the softmax of
    ``classifier(concept)`` named by ``model.config.id2label`` (a Hugging Face model).
    ``img_tensor`` is the image's (C, H, W) model input; ``img_pil`` the RGB picture."""
    labels = getattr(getattr(model, "config", None), "id2label", None)
    if labels is None:
        raise ValueError("run_dff_on_image names the concepts by model.config.id2label "
                         "(a Hugging Face model); this model has none")
    rgb = np.array(img_pil) / 255
    factorizer = DeepFeatureFactorization(model, target_layer, reshape_transform, computation_on_concepts=classifier)
    _, explanations, outputs = factorizer(img_tensor[None], n_components)
    scores = torch.softmax(torch.from_numpy(outputs), dim=-1).numpy()
    legend = create_labels_legend(scores, labels=labels, top_k=top_k)
    picture = show_factorization_on_image(rgb, explanations[0], image_weight=0.3, concept_labels=legend)
    return np.hstack((np.array(img_pil), picture))
