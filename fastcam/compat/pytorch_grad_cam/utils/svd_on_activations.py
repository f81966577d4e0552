"""First principal components of activations, batched on the device
(``pytorch_grad_cam.utils.svd_on_activations``; the ``eigen_smooth`` option,
Eigen-CAM, KPCA-CAM and Seg-Eigen-CAM).

pytorch-grad-cam's functions on NumPy batches (or tensors), over fastcam's
batched projections in :mod:`fastcam.methods.projection` (one ``torch.linalg``
call for the whole batch instead of NumPy's SVD or scikit-learn's
``KernelPCA`` one image at a time). :func:`get_2d_projection`'s sign is fixed
so that the component correlates positively with the channel sum (the same
result on every device and library; pytorch-grad-cam's may be its negation);
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

from ....methods.projection import (kernel_principal_projection, principal_projection,
                                    sign_corrected_projection)

__all__ = ["principal_projection", "kernel_principal_projection", "get_2d_projection",
           "get_2d_projection_kernel", "get_2d_projection_with_sign_correction"]

Batch = Union[np.ndarray, Tensor]
_sign_corrected = sign_corrected_projection     # the name this module used to define


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
    return _numpy_or_tensor(sign_corrected_projection, activation_batch)
