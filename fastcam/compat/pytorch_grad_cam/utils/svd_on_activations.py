"""First principal component of activations, batched on the device
(``pytorch_grad_cam.utils.svd_on_activations``; the ``eigen_smooth`` option).

For one image, the weighted activation ``X`` (K, h, w) is read as h·w samples
of K features; the columns are centred over the positions and projected on the
first right singular vector ``v`` of the centred matrix: ``p = X_c v``, (h, w).
pytorch-grad-cam does this one image at a time with NumPy's full SVD; here it
is one batched ``torch.linalg.svd`` (reduced) on the tensor's device.

The sign of a singular vector is arbitrary (LAPACK, MKL, OpenBLAS and cuSOLVER
may each return ``-v``), so pytorch-grad-cam's ``eigen_smooth`` maps depend on
the library that happens to run: with the ReLU that follows, ``-v`` gives a
different map (the other half of the component). Better: we fix the sign so
that ``Σ_k v_k ≥ 0``, i.e. the projection correlates positively with the plain
map ``Σ_k X_k`` (``cov(p, Σ_k X_k) = σ₁² Σ_k v_k``): the same result on every
device and library, and pointing the way of the un-smoothed CAM.

:func:`get_2d_projection_with_sign_correction` (Seg-Eigen-CAM's rule: flip when
``|min| > |max|``) and :func:`get_2d_projection_kernel` (kernel PCA, as
scikit-learn's ``KernelPCA(n_components=1)``) fix the sign their own way, so
they give pytorch-grad-cam's results exactly (up to rounding).
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["principal_projection", "kernel_principal_projection", "get_2d_projection",
           "get_2d_projection_kernel", "get_2d_projection_with_sign_correction"]

Batch = Union[np.ndarray, Tensor]

#: scikit-learn's ``pairwise_kernels`` defaults, which ``KernelPCA`` passes on
_DEGREE, _COEF0 = 3, 1.0


def _centred_samples(activations: Tensor) -> Tensor:
    """(B, K, *spatial) -> (B, n, K): the positions as samples of K features,
    NaNs as 0, each feature centred over the positions (as pytorch-grad-cam)."""
    if activations.dim() < 3:
        raise ValueError(f"activations must be (B, K, *spatial), got {tuple(activations.shape)}")
    B, K = activations.shape[:2]
    X = activations.reshape(B, K, -1).transpose(1, 2)
    X = torch.where(torch.isnan(X), torch.zeros_like(X), X)
    return X - X.mean(dim=1, keepdim=True)


def principal_projection(activations: Tensor) -> Tensor:
    """``(B, K, *spatial)`` -> ``(B, *spatial)``: each image's centred activations
    projected on their first principal direction (sign as in the module doc).
    NaNs count as 0 (as in pytorch-grad-cam). Differentiable; stays on the device."""
    X = _centred_samples(activations)                              # (B, n, K)
    _, _, Vh = torch.linalg.svd(X, full_matrices=False)
    v = Vh[:, 0, :]                                                # (B, K)
    v = torch.where(v.sum(dim=1, keepdim=True) < 0, -v, v)
    p = torch.einsum("bnk,bk->bn", X, v)
    return p.reshape(activations.shape[0], *activations.shape[2:])


def _kernel_matrix(X: Tensor, kernel: str, gamma: Optional[float]) -> Tensor:
    """scikit-learn's pairwise kernel of each image's samples with themselves: (B, n, n)."""
    g = 1.0 / X.shape[-1] if gamma is None else gamma
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
    raise ValueError(f"unknown kernel {kernel!r}: use one of 'linear', 'poly', 'rbf', 'sigmoid', "
                     "'cosine' (KernelPCA's kernels; 'precomputed' and callables are not taken)")


def kernel_principal_projection(activations: Tensor, kernel: str = "sigmoid",
                                gamma: Optional[float] = None) -> Tensor:
    """``(B, K, *spatial)`` -> ``(B, *spatial)``: the first kernel principal
    component of each image's centred activations (positions as samples).

    What scikit-learn's ``KernelPCA(n_components=1, kernel=kernel, gamma=gamma)
    .fit_transform`` returns, for the whole batch at once: the kernel matrix
    (defaults ``gamma = 1/K``, ``degree = 3``, ``coef0 = 1``) double-centred, its
    top eigenvector ``u`` signed so that its largest-magnitude entry is positive
    (scikit-learn's ``svd_flip``), scaled by ``sqrt(max(λ, 0))``. Computed in the
    input's floating dtype; stays on the device.
    """
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


def _sign_corrected(activations: Tensor) -> Tensor:
    """:func:`principal_projection`, negated per image where ``|min| > |max|``."""
    p = principal_projection(activations)
    flat = p.reshape(p.shape[0], -1)
    flip = flat.amin(dim=1).abs() > flat.amax(dim=1).abs()
    return torch.where(flip.reshape(-1, *([1] * (p.dim() - 1))), -p, p)


def _numpy_or_tensor(fn: Callable[[Tensor], Tensor], activation_batch: Batch) -> Batch:
    """``fn`` on a tensor (a tensor back), or on a NumPy batch (float32 NumPy back)."""
    if isinstance(activation_batch, Tensor):
        return fn(activation_batch)
    return fn(torch.from_numpy(np.asarray(activation_batch))).numpy().astype(np.float32)


def get_2d_projection(activation_batch: Batch) -> Batch:
    """pytorch-grad-cam's function on a NumPy batch (B, K, h, w) -> float32
    (B, h, w); a tensor gives a tensor. Same math, batched, sign fixed (see the
    module doc: pytorch-grad-cam's result may be this one's negation)."""
    return _numpy_or_tensor(principal_projection, activation_batch)


def get_2d_projection_kernel(activation_batch: Batch, kernel: str = "sigmoid",
                             gamma: Optional[float] = None) -> Batch:
    """pytorch-grad-cam's KPCA-CAM projection: (B, K, h, w) -> (B, h, w), see
    :func:`kernel_principal_projection` (float32 NumPy for a NumPy batch).

    The same values as pytorch-grad-cam's (scikit-learn's dense solver, used for
    up to 200 positions; for more, scikit-learn's ARPACK finds the same vector
    to its tolerance), batched and without scikit-learn. ``kernel``: 'sigmoid'
    (default), 'linear', 'poly', 'rbf' or 'cosine' (``KernelPCA``'s kernels but
    'precomputed' and callables, which raise ``ValueError``)."""
    return _numpy_or_tensor(lambda a: kernel_principal_projection(a, kernel, gamma),
                            activation_batch)


def get_2d_projection_with_sign_correction(activation_batch: Batch) -> Batch:
    """Seg-Eigen-CAM's projection (Chung & Ying 2025, Eq. 13), as pytorch-grad-cam:
    the first principal component of each image (:func:`principal_projection`),
    negated where ``|min| > |max|`` so that the salient side is positive.
    (B, K, h, w) -> (B, h, w); float32 NumPy for a NumPy batch."""
    return _numpy_or_tensor(_sign_corrected, activation_batch)
