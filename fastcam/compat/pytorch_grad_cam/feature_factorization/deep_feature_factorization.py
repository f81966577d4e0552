"""``pytorch_grad_cam.feature_factorization.deep_feature_factorization``: deep feature
factorization (Collins et al., "Deep Feature Factorization for Concept Discovery", ECCV 2018,
arXiv 1806.10206).

The target layer's activations of a batch, as a (channels × positions) matrix shifted to be
non-negative per channel, are factorised ``A ≈ W H`` by non-negative matrix factorisation:
W's columns are the concepts (channel embeddings, the shift added back), H's rows their
heatmaps over the batch's positions.

The NMF is grad-cam's, ``sklearn.decomposition.NMF(n_components, init="random",
random_state=0)`` — the Frobenius loss minimised by cyclic coordinate descent (Cichocki &
Phan 2009, sklearn's ``cd`` solver: W's columns one after another, each a closed-form
projected Newton step for all rows at once, then H's; stop when the projected-gradient
violation falls to ``tol`` = 1e-4 of the first iteration's, at most 200 iterations) — here
written in torch on the activations' device, from the same NumPy ``RandomState(0)`` start.
It follows sklearn's arithmetic step for step; only the summation order of its dot
products differs, so results agree with sklearn to float32 rounding on well-conditioned
problems (the tests check 1e-4) and match its reconstruction error otherwise.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from ....engine import Engine
from ..utils.image import create_labels_legend, scale_cam_image, show_factorization_on_image

__all__ = ["dff", "DeepFeatureFactorization", "run_dff_on_image", "nmf"]

ArrayLike = Union[np.ndarray, Tensor]


def _cd_sweep(W: Tensor, HHt: Tensor, XHt: Tensor) -> Tensor:
    """One coordinate-descent sweep over W's columns (in place); returns the sum of
    |projected gradient| (sklearn's ``_update_cdnmf_fast``, all rows of a column at once:
    the rows are independent given the column)."""
    pgs = []
    diag = HHt.diagonal()
    safe = torch.where(diag != 0, diag, 1)
    for t in range(W.shape[1]):
        col = W[:, t]
        grad = torch.addmv(XHt[:, t], W, HHt[t], beta=-1)
        pgs.append(torch.where(col == 0, grad.clamp(max=0), grad))
        # a zero Hessian leaves the column as it is (sklearn's ``if hess != 0``)
        W[:, t] = torch.where(diag[t] != 0, (col - grad / safe[t]).clamp(min=0), col)
    violation = torch.stack(pgs).abs().sum()
    return violation


def nmf(X: Tensor, n_components: int, *, tol: float = 1e-4, max_iter: int = 200,
        random_state: int = 0) -> Tuple[Tensor, Tensor, int]:
    """``X ≈ W H`` with W, H ≥ 0 (X (n, m) non-negative, on any device): sklearn's NMF with
    ``init="random"`` (``|N(0,1)|·sqrt(mean(X)/k)``, H drawn before W from NumPy's
    ``RandomState(random_state)``) and the coordinate-descent solver. Returns (W, H, iterations)."""
    if X.dim() != 2:
        raise ValueError(f"X must be a matrix, got shape {tuple(X.shape)}")
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive int, got {n_components!r}")
    if bool((X < 0).any()):
        raise ValueError("NMF needs a non-negative matrix")
    n, m = X.shape
    rng = np.random.RandomState(random_state)
    avg = np.sqrt(float(X.mean()) / n_components)
    np_dtype = np.float64 if X.dtype == torch.float64 else np.float32
    H = np.abs(avg * rng.standard_normal(size=(n_components, m)).astype(np_dtype, copy=False))
    W = np.abs(avg * rng.standard_normal(size=(n, n_components)).astype(np_dtype, copy=False))
    W = torch.from_numpy(W).to(X.device, X.dtype)
    Ht = torch.from_numpy(np.ascontiguousarray(H.T)).to(X.device, X.dtype)
    violation_init = None
    it = 0
    for it in range(1, max_iter + 1):
        violation = _cd_sweep(W, Ht.T @ Ht, X @ Ht)
        violation = violation + _cd_sweep(Ht, W.T @ W, X.T @ W)
        v = float(violation)
        if violation_init is None:
            violation_init = v
        if violation_init == 0 or v / violation_init <= tol:
            break
    else:
        if tol > 0:
            warnings.warn(f"NMF did not converge in {max_iter} iterations (tol {tol})", stacklevel=2)
    return W, Ht.T.contiguous(), it


def dff(activations: ArrayLike, n_components: int = 5) -> Tuple[ArrayLike, ArrayLike]:
    """Deep feature factorization of activations (B, C, h, w): (concepts (C, k), heatmaps
    (B, k, h, w)). NaNs count as 0; each channel is shifted by its minimum before the NMF
    and the shift is added back to the concepts, as grad-cam. NumPy in, NumPy out (the
    caller's array is not modified, unlike grad-cam's); a tensor stays on its device."""
    as_numpy = isinstance(activations, np.ndarray)
    A = torch.as_tensor(activations)
    if A.dim() != 4:
        raise ValueError(f"activations must be (B, C, h, w), got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        A = A.float()
    b, c, h, w = A.shape
    X = torch.nan_to_num(A.detach().transpose(0, 1).reshape(c, -1), nan=0.0, posinf=np.inf, neginf=-np.inf)
    offset = X.min(dim=1).values
    W, H, _ = nmf(X - offset[:, None], n_components)
    concepts = W + offset[:, None]
    explanations = H.reshape(n_components, b, h, w).transpose(0, 1)
    if as_numpy:
        return concepts.cpu().numpy(), explanations.cpu().numpy()
    return concepts, explanations


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
            (A,), _ = self.engine.capture(input_tensor, [self.target_layer], grad=False,
                                          transform=self.reshape_transform)
            concepts, explanations = dff(A.float(), n_components=n_components)
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
