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
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["principal_projection", "get_2d_projection"]


def principal_projection(activations: Tensor) -> Tensor:
    """``(B, K, *spatial)`` -> ``(B, *spatial)``: each image's centred activations
    projected on their first principal direction (sign as in the module doc).
    NaNs count as 0 (as in pytorch-grad-cam). Differentiable; stays on the device."""
    if activations.dim() < 3:
        raise ValueError(f"activations must be (B, K, *spatial), got {tuple(activations.shape)}")
    B, K = activations.shape[:2]
    X = activations.reshape(B, K, -1).transpose(1, 2)              # (B, n, K)
    X = torch.where(torch.isnan(X), torch.zeros_like(X), X)
    X = X - X.mean(dim=1, keepdim=True)
    _, _, Vh = torch.linalg.svd(X, full_matrices=False)
    v = Vh[:, 0, :]                                                # (B, K)
    v = torch.where(v.sum(dim=1, keepdim=True) < 0, -v, v)
    p = torch.einsum("bnk,bk->bn", X, v)
    return p.reshape(B, *activations.shape[2:])


def get_2d_projection(activation_batch: Union[np.ndarray, Tensor]) -> Union[np.ndarray, Tensor]:
    """pytorch-grad-cam's function on a NumPy batch (B, K, h, w) -> float32
    (B, h, w); a tensor gives a tensor. Same math, batched, sign fixed (see the
    module doc: pytorch-grad-cam's result may be this one's negation)."""
    if isinstance(activation_batch, Tensor):
        return principal_projection(activation_batch)
    out = principal_projection(torch.from_numpy(np.asarray(activation_batch)))
    return out.numpy().astype(np.float32)
