"""Localisation metrics: how well a saliency map points at the annotated object.

* Pointing game (Zhang et al., "Top-down neural attention by excitation
  backprop", ECCV 2016, Sec. 5.1): a hit when the maximum point of the map lies
  inside an annotated bounding box, within a tolerance of ``tolerance`` pixels
  (15 in the paper); accuracy = hits / (hits + misses).
* Energy-based pointing game (Wang et al., "Score-CAM", CVPR-W 2020, Sec. 5.2.2):
  the share of the saliency map's energy inside the boxes,
  ``Σ_{(i,j)∈bbox} S_ij / Σ_ij S_ij``, the map min-max normalised at image
  resolution.
* Relevance mass accuracy (Arras, Osman, Samek, "CLEVR-XAI: A benchmark dataset
  for the ground truth evaluation of neural network explanations", Information
  Fusion 81, 2022, Sec. 4.2, eq. 1): ``R_within / R_total``, the map's mass inside
  the ground-truth mask over its total mass, in [0, 1]. fastcam takes the map's
  positive part (``max(S, 0)``); no min-max normalisation (unlike the energy
  pointing game, a map's constant floor counts as mass outside the boxes).
* Relevance rank accuracy (same paper, eq. 2): with K the mask's pixel count,
  the share of the K highest-ranked pixels of the map that lie inside the mask,
  ``|P_top-K ∩ GT| / K``, in [0, 1]. Pixels tied at the K-th value are counted at
  their expected share under a uniformly random order of the tie (deterministic).

Same conventions as the other metrics: maps (B,H,W) at the image's resolution,
a (B,) tensor of per-image values, the papers' figures are means ×100. They
need no model: the boxes are the ground truth.

Boxes: per image, a sequence of ``(x0, y0, x1, y1)`` in the map's pixel
coordinates (x = column, y = row; pixel (i, j) spans [j, j+1) × [i, i+1)). A
pixel is inside a box when its centre ``(j + ½, i + ½)`` is, so integer boxes are
half-open: columns ``x0 … x1−1``, rows ``y0 … y1−1``. Several boxes count as
their union. Or a (B,H,W) boolean tensor: the inside mask itself. An image with
no box gets NaN (left out of a mean with ``nanmean``).

Quantus 0.6 defines the pointing game and both relevance accuracies the same
way on a (B, H, W) mask, with these differences (``docs/metrics.md``): its
pointing game has no tolerance (fastcam's ``tolerance=0``), counts a hit when
*any* maximal pixel is inside (fastcam: the first in row-major order; a
constant map is a hit there, a miss here), and its ``weighted`` option has no
counterpart; its relevance mass uses the signed map (``abs=False``); its rank
accuracy breaks ties by NumPy's (unstable) ``argsort``. On maps without ties
and with non-negative values the results are equal
(``tests/metrics/test_quantus_parity.py``).
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import torch
from torch import Tensor

from ._common import check_maps

Box = Sequence[float]
BoxSpec = Union[Tensor, Sequence[Sequence[Box]]]

__all__ = ["boxes_mask", "pointing_game", "energy_pointing_game", "relevance_mass_accuracy",
           "relevance_rank_accuracy"]


def boxes_mask(boxes: BoxSpec, batch: int, size: tuple[int, int],
               device: Union[str, torch.device, None] = None) -> Tensor:
    """(B,H,W) bool: the union of each image's boxes (see the module doc)."""
    H, W = size
    if isinstance(boxes, Tensor):
        if boxes.dim() != 3 or tuple(boxes.shape) != (batch, H, W):
            raise ValueError(f"a box mask must be (B,H,W) = {(batch, H, W)}, got {tuple(boxes.shape)}")
        return boxes.to(device=device, dtype=torch.bool)
    if len(boxes) != batch:
        raise ValueError(f"boxes: {len(boxes)} entries for {batch} maps (one list of boxes per image)")
    cy = torch.arange(H, device=device, dtype=torch.float64) + 0.5
    cx = torch.arange(W, device=device, dtype=torch.float64) + 0.5
    mask = torch.zeros(batch, H, W, dtype=torch.bool, device=device)
    for b, image_boxes in enumerate(boxes):
        for box in image_boxes:
            if len(box) != 4:
                raise ValueError(f"a box is (x0, y0, x1, y1), got {tuple(box)}")
            x0, y0, x1, y1 = (float(v) for v in box)
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
                raise ValueError(f"invalid box {tuple(box)}: need finite x0 <= x1, y0 <= y1")
            rows = (cy >= y0) & (cy <= y1)
            cols = (cx >= x0) & (cx <= x1)
            mask[b] |= rows[:, None] & cols[None, :]
    return mask


def _has_box(boxes: BoxSpec, mask: Tensor) -> Tensor:
    if isinstance(boxes, Tensor):
        return mask.flatten(1).any(1)
    return torch.tensor([len(b) > 0 for b in boxes], device=mask.device)


def _disk(radius: float, device) -> Tensor:
    r = int(math.floor(radius))
    d = torch.arange(-r, r + 1, device=device, dtype=torch.float32)
    return ((d[:, None] ** 2 + d[None, :] ** 2) <= radius ** 2).to(torch.float32)


def pointing_game(maps: Tensor, boxes: BoxSpec, *, tolerance: float = 15.0) -> Tensor:
    """Pointing game (Zhang et al. 2016), per image: 1.0 when the map's maximum
    point is within ``tolerance`` pixels (Euclidean distance between pixel
    centres; 15 in the paper, 0 = the point itself) of a pixel inside a box,
    else 0.0; NaN for an image without boxes. The maximum point is the first
    maximal pixel in row-major order; a constant map points nowhere and is a
    miss. Accuracy = 100 · nanmean."""
    if not isinstance(maps, Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be (B,H,W), got {tuple(getattr(maps, 'shape', ()))}")
    check_maps(maps[:, None], maps)
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    B, H, W = maps.shape
    inside = boxes_mask(boxes, B, (H, W), maps.device)
    if tolerance >= 1:
        kernel = _disk(tolerance, maps.device)
        r = kernel.shape[-1] // 2
        near = torch.nn.functional.conv2d(inside[:, None].to(torch.float32), kernel[None, None],
                                          padding=r)[:, 0] > 0.5
    else:
        near = inside
    flat = maps.flatten(1)
    peak = flat.argmax(1)
    hit = near.flatten(1).gather(1, peak[:, None])[:, 0]
    constant = flat.amax(1) == flat.amin(1)
    out = (hit & ~constant).to(torch.float32)
    return torch.where(_has_box(boxes, inside), out, torch.full_like(out, float("nan")))


def energy_pointing_game(maps: Tensor, boxes: BoxSpec) -> Tensor:
    """Energy-based pointing game (Score-CAM, Wang et al. 2020), per image: the
    share ``Σ_in S / Σ S`` of the min-max normalised map S inside the union of
    the boxes, in [0, 1]; NaN for an image without boxes. A constant map spreads
    its energy evenly, so it scores the boxes' area fraction. Score = 100 · nanmean."""
    if not isinstance(maps, Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be (B,H,W), got {tuple(getattr(maps, 'shape', ()))}")
    check_maps(maps[:, None], maps)
    B, H, W = maps.shape
    inside = boxes_mask(boxes, B, (H, W), maps.device)
    s = maps.to(torch.float64).flatten(1)
    lo, hi = s.amin(1, keepdim=True), s.amax(1, keepdim=True)
    rng = hi - lo
    s = torch.where(rng > 0, (s - lo) / torch.where(rng > 0, rng, 1), 1.0)   # constant -> uniform
    m = inside.flatten(1).to(s.dtype)
    out = ((s * m).sum(1) / s.sum(1)).to(torch.float32)
    return torch.where(_has_box(boxes, inside), out, torch.full_like(out, float("nan")))


def _maps_and_mask(maps: Tensor, boxes: BoxSpec) -> tuple[Tensor, Tensor]:
    if not isinstance(maps, Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be (B,H,W), got {tuple(getattr(maps, 'shape', ()))}")
    check_maps(maps[:, None], maps)
    B, H, W = maps.shape
    return maps.to(torch.float64).flatten(1), boxes_mask(boxes, B, (H, W), maps.device).flatten(1)


def relevance_mass_accuracy(maps: Tensor, boxes: BoxSpec) -> Tensor:
    """Relevance mass accuracy (Arras et al. 2022, eq. 1), per image: the share
    ``Σ_in S⁺ / Σ S⁺`` of the map's positive part inside the boxes (a (B,H,W) bool
    mask or box lists, see the module doc), in [0, 1]; NaN for an image without
    boxes or a map without positive values. (B,) float32 on the maps' device."""
    s, inside = _maps_and_mask(maps, boxes)
    s = s.clamp_min(0)
    total = s.sum(1)
    out = (s * inside).sum(1) / torch.where(total > 0, total, 1)
    ok = inside.any(1) & (total > 0)
    return torch.where(ok, out, float("nan")).to(torch.float32)


def relevance_rank_accuracy(maps: Tensor, boxes: BoxSpec) -> Tensor:
    """Relevance rank accuracy (Arras et al. 2022, eq. 2), per image: with K the
    number of pixels inside the boxes, the share of the map's K highest pixels
    that are inside, in [0, 1]; pixels tied with the K-th highest value count at
    their expected share (see the module doc). NaN for an image without boxes.
    (B,) float32 on the maps' device."""
    s, inside = _maps_and_mask(maps, boxes)
    k = inside.sum(1)
    kth = s.sort(dim=1, descending=True).values.gather(1, (k - 1).clamp_min(0)[:, None])
    above, tied = s > kth, s == kth
    n_above = above.sum(1).to(torch.float64)
    in_above = (above & inside).sum(1).to(torch.float64)
    in_tied = (tied & inside).sum(1).to(torch.float64)
    n_tied = tied.sum(1).to(torch.float64)
    kf = k.to(torch.float64)
    out = (in_above + (kf - n_above) * in_tied / n_tied.clamp_min(1)) / kf.clamp_min(1)
    return torch.where(k > 0, out, float("nan")).to(torch.float32)
