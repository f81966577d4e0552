"""KPCA-CAM (Karmani et al. 2024): the first kernel principal component of the activations."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..inputs import at_least_fp32
from ..network.layers import LayerSpec
from .base import BaseCAM, CallContext, CommonOptions, Unpack
from .projection import check_kernel, kernel_principal_projection, projection_maps


class KPCA_CAM(BaseCAM):  # noqa: N801 -- pytorch-grad-cam's name
    """KPCA-CAM: Eigen-CAM with kernel PCA. Each image's activation, positions as
    samples of K centred features, gives the first component of scikit-learn's
    ``KernelPCA(n_components=1, kernel=kernel, gamma=gamma)`` (pytorch-grad-cam
    1.5.7's ``KPCA_CAM``; see
    :func:`~fastcam.methods.projection.kernel_principal_projection`), then
    ``minmax(up(ReLU(p)))`` per layer, several layers averaged and rescaled.
    No gradient (capture "forward"). The sign is scikit-learn's (largest-magnitude
    entry of the eigenvector positive), so the maps are pytorch-grad-cam's.

    Args:
        kernel: ``"sigmoid"`` (default, as pytorch-grad-cam), ``"linear"``,
            ``"poly"``, ``"rbf"`` or ``"cosine"``.
        gamma: the kernel coefficient of poly, rbf and sigmoid; None -> 1/K
            (scikit-learn's default).
        max_kernel_elements: images are decomposed in chunks whose kernel
            matrices (n×n per image, n = h·w positions) hold at most this many
            elements together (at least one image per chunk).

    Cost: one forward pass, then per image an n×n kernel matrix and its full
    symmetric eigendecomposition (scikit-learn uses ARPACK above 200 positions;
    both give the top eigenvector).
    """

    capture = "forward"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 kernel: str = "sigmoid", gamma: Optional[float] = None,
                 max_kernel_elements: int = 1 << 26, **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        check_kernel(kernel, gamma)
        if isinstance(max_kernel_elements, bool) or not isinstance(max_kernel_elements, int):
            raise TypeError("max_kernel_elements must be an int, got "
                            f"{type(max_kernel_elements).__name__}")
        if max_kernel_elements < 1:
            raise ValueError(f"max_kernel_elements must be >= 1, got {max_kernel_elements}")
        self.kernel = kernel
        self.gamma = gamma
        self.max_kernel_elements = max_kernel_elements

    def _projection(self, A: Tensor) -> Tensor:
        n = A[0, 0].numel()
        chunk = max(1, self.max_kernel_elements // (n * n))
        return torch.cat([kernel_principal_projection(part, self.kernel, self.gamma)
                          for part in A.split(chunk)])

    def maps(self, ctx: CallContext) -> Tensor:
        check_kernel(self.kernel, self.gamma)       # the attributes may have been set since
        return projection_maps(ctx, [self._projection(at_least_fp32(A.detach())) for A in ctx.activations],
                               "KPCA_CAM's kernel principal component")
