"""Principal components of activations, batched on the device, and the maps made of them.

For one image, an activation ``X`` (K, h, w) is read as h·w samples of K
features; each feature is centred over the positions (pytorch-grad-cam's
``svd_on_activations``, which Eigen-CAM, Eigen-Grad-CAM, Seg-Eigen-CAM, KPCA-CAM
and the ``eigen_smooth`` option share). pytorch-grad-cam runs NumPy's SVD or
scikit-learn's ``KernelPCA`` one image at a time on the CPU; here each is one
batched ``torch.linalg`` call on the tensor's device.

Signs. A singular vector's sign is arbitrary (LAPACK, MKL, OpenBLAS and
cuSOLVER may each return ``-v``), so pytorch-grad-cam's Eigen-CAM maps depend on
the library that runs: with the ReLU that follows, ``-v`` gives the other half
of the component. :func:`principal_projection` fixes the sign so that
``Σ_k v_k ≥ 0``, i.e. the projection correlates positively with the plain sum
``Σ_k X_k`` (``cov(p, Σ_k X_k) = σ₁² Σ_k v_k``): the same map on every device
and library, pointing the way of the un-smoothed CAM (where that sum is
constant, the larger-magnitude side of ``p`` is made positive).
:func:`sign_corrected_projection` (Seg-Eigen-CAM's Eq. 13: flip when
``|min| > |max|``) and :func:`kernel_principal_projection` (scikit-learn's
``svd_flip``: largest-magnitude entry positive) have their own rules, which do
not depend on the SVD's sign, so they give pytorch-grad-cam's values exactly.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..inputs import at_least_fp32, check_finite
from ..ops import cam_combine
from .base import CallContext, minmax

__all__ = ["principal_projection", "kernel_principal_projection", "sign_corrected_projection",
           "check_kernel", "projection_maps", "KERNELS"]

#: the kernels of scikit-learn's ``KernelPCA`` that KPCA-CAM takes ('precomputed'
#: and callables need a kernel matrix of their own, which a CAM does not have)
KERNELS = ("linear", "poly", "rbf", "sigmoid", "cosine")
#: scikit-learn's ``pairwise_kernels`` defaults, which ``KernelPCA`` passes on
_DEGREE, _COEF0 = 3, 1.0
#: below this share of Σ|v_k|, Σ v_k is rounding noise and does not choose the sign
_TIE = 1e-4


def _centred_samples(activations: Tensor) -> Tensor:
    """(B, K, *spatial) -> (B, n, K): the positions as samples of K features,
    NaNs as 0, each feature centred over the positions (as pytorch-grad-cam)."""
    if activations.dim() < 3:
        raise ValueError(f"activations must be (B, K, *spatial), got {tuple(activations.shape)}")
    activations = at_least_fp32(activations)        # no half-precision SVD or eigh
    B, K = activations.shape[:2]
    X = activations.reshape(B, K, -1).transpose(1, 2)
    X = torch.where(torch.isnan(X), torch.zeros_like(X), X)
    return X - X.mean(dim=1, keepdim=True)


def principal_projection(activations: Tensor) -> Tensor:
    """``(B, K, *spatial)`` -> ``(B, *spatial)``: each image's centred activations
    projected on their first principal direction (sign as in the module doc).
    Where the channel sum says nothing (``|Σ_k v_k| ≤ 1e-4 Σ_k |v_k|``, e.g. a
    LayerNorm output with zero-mean tokens, whose channel sum is constant) the
    sign makes ``|max p| ≥ |min p|`` instead (Seg-Eigen-CAM's rule).
    NaNs count as 0 (as in pytorch-grad-cam). Differentiable; stays on the device."""
    X = _centred_samples(activations)                              # (B, n, K)
    _, _, Vh = torch.linalg.svd(X, full_matrices=False)
    v = Vh[:, 0, :]                                                # (B, K)
    p = torch.einsum("bnk,bk->bn", X, v)
    total = v.sum(dim=1)
    tie = total.abs() <= _TIE * v.abs().sum(dim=1)
    skew = p.amin(dim=1).abs() > p.amax(dim=1).abs()
    flip = torch.where(tie, skew, total < 0)
    p = torch.where(flip[:, None], -p, p)
    return p.reshape(activations.shape[0], *activations.shape[2:])


def sign_corrected_projection(activations: Tensor) -> Tensor:
    """Seg-Eigen-CAM's projection (Chung & Ying 2025, Eq. 11–13):
    :func:`principal_projection`, negated per image where ``|min| > |max|`` so
    that the salient side is positive. ``(B, K, *spatial)`` -> ``(B, *spatial)``."""
    p = principal_projection(activations)
    flat = p.reshape(p.shape[0], -1)
    flip = flat.amin(dim=1).abs() > flat.amax(dim=1).abs()
    return torch.where(flip.reshape(-1, *([1] * (p.dim() - 1))), -p, p)


def check_kernel(kernel: str, gamma: Optional[float]) -> None:
    """A kernel of :data:`KERNELS` and ``gamma`` None or a finite real number."""
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be a str, got {type(kernel).__name__}")
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}: use one of 'linear', 'poly', 'rbf', 'sigmoid', "
                         "'cosine' (KernelPCA's kernels; 'precomputed' and callables are not taken)")
    if gamma is not None:
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
            raise TypeError(f"gamma must be a real number or None, got {type(gamma).__name__}")
        if not math.isfinite(gamma):
            raise ValueError(f"gamma must be finite, got {gamma}")


def _kernel_matrix(X: Tensor, kernel: str, gamma: Optional[float]) -> Tensor:
    """scikit-learn's pairwise kernel of each image's samples with themselves: (B, n, n)."""
    g = 1.0 / X.shape[-1] if gamma is None else float(gamma)
    if kernel == "linear":
        return X @ X.transpose(1, 2)
    if kernel == "poly":
        return (g * (X @ X.transpose(1, 2)) + _COEF0) ** _DEGREE
    if kernel == "sigmoid":
        return torch.tanh(g * (X @ X.transpose(1, 2)) + _COEF0)
    if kernel == "rbf":
        return torch.exp(-g * torch.cdist(X, X).square())
    if kernel == "cosine":
        norms = X.norm(dim=-1, keepdim=True)
        U = X / torch.where(norms == 0, torch.ones_like(norms), norms)
        return U @ U.transpose(1, 2)
    check_kernel(kernel, gamma)             # raises for anything else
    raise AssertionError(kernel)


def kernel_principal_projection(activations: Tensor, kernel: str = "sigmoid",
                                gamma: Optional[float] = None) -> Tensor:
    """``(B, K, *spatial)`` -> ``(B, *spatial)``: the first kernel principal
    component of each image's centred activations (positions as samples).

    What scikit-learn's ``KernelPCA(n_components=1, kernel=kernel, gamma=gamma)
    .fit_transform`` returns, for the whole batch at once: the kernel matrix
    (defaults ``gamma = 1/K``, ``degree = 3``, ``coef0 = 1``) double-centred, its
    top eigenvector ``u`` signed so that its largest-magnitude entry is positive
    (scikit-learn's ``svd_flip``), scaled by ``sqrt(max(λ, 0))``. Computed in the
    input's floating dtype (float32 for half precision); stays on the device.
    Memory: one (n, n) kernel matrix per image, n = the positions.
    """
    check_kernel(kernel, gamma)
    if not activations.is_floating_point() or activations.dtype in (torch.float16, torch.bfloat16):
        activations = activations.float()
    X = _centred_samples(activations)
    Km = _kernel_matrix(X, kernel, gamma)
    Km = (Km - Km.mean(dim=1, keepdim=True) - Km.mean(dim=2, keepdim=True)
          + Km.mean(dim=(1, 2), keepdim=True))
    lam, vecs = torch.linalg.eigh(Km)
    u = vecs[:, :, -1]                                             # (B, n), top eigenvalue
    peak = u.gather(1, u.abs().argmax(dim=1, keepdim=True))
    u = torch.where(peak < 0, -u, u)
    p = u * lam[:, -1:].clamp_min(0).sqrt()
    return p.reshape(activations.shape[0], *activations.shape[2:])


def projection_maps(ctx: CallContext, projections: Sequence[Tensor], what: str) -> Tensor:
    """Maps (B, H, W) in [0, 1] from per-layer projections (B, h, w), pytorch-grad-cam's
    per-layer combination (``BaseCAM.compute_cam_per_layer``: ReLU, min-max, resize;
    then the layers averaged and rescaled): ``minmax(up(ReLU(p)))`` per layer (the
    fused op), several layers averaged and min-maxed. Sets ``ctx.low_res`` to
    ``ReLU(p)``; ``what`` names the projection in the error for a non-finite one."""
    with torch.no_grad():
        projections = [at_least_fp32(p.detach()) for p in projections]
        for p in projections:
            check_finite(p, what)
        ctx.low_res = [torch.relu(p) for p in projections]
        maps = [cam_combine(p[:, None], torch.ones(p.shape[0], 1, dtype=p.dtype, device=p.device),
                            ctx.size) for p in projections]
        return maps[0] if len(maps) == 1 else minmax(torch.stack(maps).mean(0))
