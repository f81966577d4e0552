"""ROAD — RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML 2022), with the classes
and numbers of pytorch-grad-cam 1.5.7's ``metrics.road``: an adapter over fastcam's
native metric :mod:`fastcam.metrics.road` (targets here are grad-cam's callables on the
raw output, results NumPy float32).

For a removal percentile p, the pixels to remove are chosen per image exactly as
grad-cam does: MoRF keeps ``S < np.percentile(S, p)`` (p = 80 removes the 20 % most
relevant), LeRF keeps ``1 − S < np.percentile(1 − S, p)`` (p = 20 removes the 80 %
least relevant). The removed pixels are filled by the paper's noisy linear
imputation (Eq. 4; :mod:`fastcam.perturbation.noisy_linear_imputation`) and the score is
``t_i(model(imputed)_i) − t_i(model(x)_i)``. The averages take the float32 mean of
those over ``percentiles`` (default 10, 20, …, 90) and ``ROADCombined`` returns
``(mean_LeRF − mean_MoRF) / 2`` (higher is better), as grad-cam.

How we differ from grad-cam:

* The imputation is a batched multigrid-preconditioned conjugate-gradient solve on
  the input's device — all images and, for the averages, all percentiles and both
  orders at once, chunked by ``chunk_elements`` — instead of a SciPy direct solve
  per image on the CPU. It stops at relative residual ``tol`` (default 1e-4: imputed
  pixels within ~1e-3 of the exact solution for unit-scale inputs, well under the
  noise of std 0.01 that grad-cam and we add); see the op's docstring.
* The unperturbed scores are computed once per call, not once per percentile; model
  forwards run under inference mode in chunks of ``batch_size`` images.
* ``targets`` must match the batch, ``cams`` must match the input and be NaN-free
  (``ValueError`` otherwise; grad-cam truncates or fails late).
* The averages and ``ROADCombined`` also accept ``return_visualization=True`` and
  then return the imputed images, (P, B, C, H, W) for an average and
  (2, P, B, C, H, W) (MoRF first, LeRF second) for ``ROADCombined``.
* The noise comes from ``generator`` (or the global RNG) on the device, so runs are
  reproducible; it cannot reproduce grad-cam's CPU stream image for image, hence
  results agree with grad-cam exactly only with ``noise=0`` and statistically
  otherwise.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Type, Union

import numpy as np
import torch
from torch import Tensor, nn

from fastcam.perturbation.noisy_linear_imputation import CORNER_WEIGHT, EDGE_WEIGHT, noisy_linear_imputation
from fastcam.metrics.road import PERCENTILES, road_changes
from .perturbation_confidence import (CamsLike, PerturbationConfidenceMetric, RemoveLeastRelevantFirst,
                                      RemoveMostRelevantFirst, check_inputs, to_numpy)

# (offset, weight) of the neighbours, ROAD paper Eq. 4 (the table grad-cam exports).
neighbors_weights = [((1, 1), CORNER_WEIGHT), ((0, 1), EDGE_WEIGHT), ((-1, 1), CORNER_WEIGHT),
                     ((1, -1), CORNER_WEIGHT), ((0, -1), EDGE_WEIGHT), ((-1, -1), CORNER_WEIGHT),
                     ((1, 0), EDGE_WEIGHT), ((-1, 0), EDGE_WEIGHT)]


class NoisyLinearImputer:
    """ROAD's noisy linear imputation, batched on the device.

    ``imputer(img, mask)`` takes images (B,C,H,W) (or one (C,H,W)) and a mask
    (B,H,W) (or (H,W)) that is nonzero/True on kept pixels, 0 on removed ones
    (grad-cam's convention) and returns the imputed images.

    Args:
        noise: std of the Gaussian noise added to imputed pixels (grad-cam: 0.01).
        weighting: only the paper's weights are supported (grad-cam accepts the
            argument and silently ignores it; we raise if it differs).
        tol, max_iter: PCG stopping rule (relative residual, iteration cap).
        generator: RNG of the noise; chunk_elements: values solved at once.
    """

    def __init__(self, noise: float = 0.01, weighting: Optional[Sequence] = None, *,
                 tol: float = 1e-4, max_iter: int = 50, generator: Optional[torch.Generator] = None,
                 chunk_elements: int = 1 << 20):
        if weighting is not None and sorted(weighting) != sorted(neighbors_weights):
            raise ValueError("only the ROAD paper's neighbour weights are supported")
        self.noise = noise
        self.tol = tol
        self.max_iter = max_iter
        self.generator = generator
        self.chunk_elements = chunk_elements

    def __call__(self, img: Tensor, mask: Tensor) -> Tensor:
        single = img.dim() == 3
        x = img[None] if single else img
        mask = torch.as_tensor(mask, device=x.device)
        keep = (mask[None] if single else mask) != 0
        out = noisy_linear_imputation(x, keep, self.noise, tol=self.tol, max_iter=self.max_iter,
                                      generator=self.generator, chunk_elements=self.chunk_elements)
        return out[0] if single else out


class ROADMostRelevantFirst(PerturbationConfidenceMetric):
    """Score change after imputing the pixels at or above the ``percentile``-th
    percentile of the map (default 80: the top 20 %). Keyword arguments go to
    :class:`NoisyLinearImputer` (``noise``, ``tol``, ``max_iter``, ``generator``,
    ``chunk_elements``) except ``batch_size`` (images per model forward)."""

    remover: Type[RemoveMostRelevantFirst] = RemoveMostRelevantFirst

    def __init__(self, percentile: Union[float, str] = 80, *, batch_size: Optional[int] = None,
                 **imputer_kwargs):
        super().__init__(self.remover(percentile, NoisyLinearImputer(**imputer_kwargs)),
                         batch_size=batch_size)


class ROADLeastRelevantFirst(ROADMostRelevantFirst):
    """Score change after imputing the pixels below the ``percentile``-th percentile
    of relevance (default 20: the 80 % least relevant)."""

    remover = RemoveLeastRelevantFirst

    def __init__(self, percentile: Union[float, str] = 20, *, batch_size: Optional[int] = None,
                 **imputer_kwargs):
        super().__init__(percentile, batch_size=batch_size, **imputer_kwargs)


def road_scores(input_tensor: Tensor, cams: CamsLike, targets: Sequence[Callable], model: nn.Module,
                removers: Sequence[RemoveMostRelevantFirst], batch_size: Optional[int] = None,
                chunk_elements: int = 1 << 20, keep_images: bool = False
                ) -> Tuple[np.ndarray, Optional[Tensor]]:
    """Score changes for every remover (R of them) and image: float32 (R, B), and the
    imputed images (R, B, C, H, W) when ``keep_images`` — fastcam's
    :func:`~fastcam.metrics.road.road_changes` with grad-cam's targets (callables on the
    raw output) and the removers' keep masks (their imputer's options)."""
    cams_t = check_inputs(input_tensor, cams, targets)
    with torch.inference_mode():
        keeps = torch.stack([r.keep_mask(cams_t) for r in removers])         # (R, B, H, W)
    imputer = removers[0].imputer
    out = road_changes(model, input_tensor, keeps, list(targets), batch_size=batch_size or input_tensor.shape[0],
                       noise=imputer.noise, tol=imputer.tol, max_iter=imputer.max_iter,
                       generator=imputer.generator, chunk_elements=chunk_elements, return_images=keep_images)
    diff, vis = out if keep_images else (out, None)
    return to_numpy(diff), vis


class _ROADAverage:
    """Mean over percentiles of ROAD scores for the removal orders in ``orders``."""

    orders: Tuple[Type[RemoveMostRelevantFirst], ...] = ()

    def __init__(self, percentiles: Sequence[float] = PERCENTILES, *, batch_size: Optional[int] = None,
                 **imputer_kwargs):
        self.percentiles = list(percentiles)
        self.batch_size = batch_size
        self.imputer = NoisyLinearImputer(**imputer_kwargs)

    def _scores(self, input_tensor, cams, targets, model, return_visualization):
        removers = [order(p, self.imputer) for order in self.orders for p in self.percentiles]
        diff, vis = road_scores(input_tensor, cams, targets, model, removers, self.batch_size,
                                self.imputer.chunk_elements, return_visualization)
        k = len(self.percentiles)
        means = [np.mean(diff[i * k:(i + 1) * k], axis=0) for i in range(len(self.orders))]
        if vis is not None:
            vis = vis.reshape(len(self.orders), k, *vis.shape[1:])
        return means, vis

    def __call__(self, input_tensor: Tensor, cams: CamsLike, targets: Sequence[Callable],
                 model: nn.Module, return_visualization: bool = False
                 ) -> Union[np.ndarray, Tuple[np.ndarray, Tensor]]:
        means, vis = self._scores(input_tensor, cams, targets, model, return_visualization)
        return (means[0], vis[0]) if return_visualization else means[0]


class ROADMostRelevantFirstAverage(_ROADAverage):
    """Mean of :class:`ROADMostRelevantFirst` over ``percentiles`` (float32, (B,))."""

    orders = (RemoveMostRelevantFirst,)


class ROADLeastRelevantFirstAverage(_ROADAverage):
    """Mean of :class:`ROADLeastRelevantFirst` over ``percentiles`` (float32, (B,))."""

    orders = (RemoveLeastRelevantFirst,)


class ROADCombined(_ROADAverage):
    """``(LeRF average − MoRF average) / 2`` per image (float32, (B,)): high when removing
    the least relevant pixels keeps the score and removing the most relevant drops it."""

    orders = (RemoveMostRelevantFirst, RemoveLeastRelevantFirst)

    def __call__(self, input_tensor: Tensor, cams: CamsLike, targets: Sequence[Callable],
                 model: nn.Module, return_visualization: bool = False
                 ) -> Union[np.ndarray, Tuple[np.ndarray, Tensor]]:
        (morf, lerf), vis = self._scores(input_tensor, cams, targets, model, return_visualization)
        scores = (lerf - morf) / 2
        return (scores, vis) if return_visualization else scores
