"""Deep feature factorization (Collins, Achanta, Süsstrunk, "Deep Feature Factorization
for Concept Discovery", ECCV 2018, arXiv 1806.10206).

The target layer's activations of a batch, as a (channels × positions) matrix shifted to be
non-negative per channel, are factorised ``A ≈ W H`` by non-negative matrix factorisation:
W's columns are the concepts (channel embeddings, the shift added back), H's rows their
heatmaps over the batch's positions — concepts shared by every image of the batch.

The NMF is ``sklearn.decomposition.NMF(n_components, init="random", random_state=0)`` (what
pytorch-grad-cam 1.5.7 uses) — the Frobenius loss minimised by cyclic coordinate descent
(Cichocki & Phan 2009, sklearn's ``cd`` solver: W's columns one after another, each a
closed-form projected Newton step for all rows at once, then H's; stop when the
projected-gradient violation falls to ``tol`` = 1e-4 of the first iteration's, at most 200
iterations) — written in torch on the activations' device, from the same NumPy
``RandomState(0)`` start. It follows sklearn's arithmetic step for step; only the summation
order of its dot products differs, so results agree with sklearn to float32 rounding on
well-conditioned problems and match its reconstruction error otherwise.

The model pass is the engine's hooked forward (:meth:`fastcam.engine.Engine.capture`, no
autograd); nothing is left on the model.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine import Engine, Precision, engine_for
from ..inputs import Normalize, check_images, normalizer
from ..network.layers import resolve_layers
from .base import minmax

__all__ = ["nmf", "dff", "Factorization", "deep_feature_factorization"]

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


@dataclass
class Factorization:
    """The result of :func:`deep_feature_factorization` for a batch of B images."""

    #: (C, k): each concept's channel embedding (the per-channel shift added back)
    concepts: Tensor
    #: (B, k, h, w): each concept's heatmap at the layer's resolution (NMF's H)
    heatmaps: Tensor
    #: (B, k, H, W): the heatmaps upsampled (bilinear) to the input and min-max scaled per map
    maps: Tensor


def deep_feature_factorization(model: Union[nn.Module, Engine], x: Tensor, layer: Union[str, nn.Module],
                               n_components: int = 16, *, normalize: Normalize = None,
                               reshape_transform: Optional[Callable[[Tensor], Tensor]] = None,
                               precision: Optional[Precision] = None) -> Factorization:
    """Deep feature factorization of a batch ``x`` (B, C, H, W) at ``layer`` (a module or
    a dotted name): ``n_components`` concepts shared by the batch and their heatmaps (see
    :class:`Factorization`). ``reshape_transform``: the layer's raw output → (B, K, h, w)
    (e.g. a ViT's tokens); ``normalize``/``precision`` as for the explainers."""
    check_images(x)
    engine = engine_for(model, precision)
    (module,) = resolve_layers(engine.network, [layer])
    norm = normalizer(normalize, x)
    with torch.inference_mode(False), torch.no_grad():
        (A,), _ = engine.capture(norm(x), [module], grad=False, transform=reshape_transform)
        concepts, heatmaps = dff(A.float(), n_components=n_components)
        b, k, h, w = heatmaps.shape
        up = F.interpolate(heatmaps.reshape(b * k, 1, h, w), size=tuple(x.shape[-2:]), mode="bilinear",
                           align_corners=False)
        maps = minmax(up.reshape(b, k, *x.shape[-2:]))
    return Factorization(concepts, heatmaps, maps)
