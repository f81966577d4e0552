"""Eager-PyTorch definition of the ``rank_reveal`` op: perturbed copies revealing
pixels in a given order (RISE insertion and deletion)."""
from __future__ import annotations

import torch
from torch import Tensor

from ._normalize import normalize


def rank_reveal(rank: Tensor, counts: Tensor, index: Tensor, src: Tensor | None,
                dst: Tensor | None, mean: Tensor | None = None,
                std: Tensor | None = None) -> Tensor:
    """Perturbed copies revealing pixels in order (RISE insertion/deletion):

    ``out[j] = norm(where(rank[i] < counts[j], src[i], dst[i]))``, i = index[j];
    rank (B, H·W) is each pixel's position in the order (0 = first); src/dst
    (B,C,H,W), None meaning zeros."""
    ref = src if src is not None else dst
    B, C, H, W = ref.shape
    keep = (rank[index] < counts[:, None]).view(-1, 1, H, W)
    s = src[index] if src is not None else torch.zeros((), dtype=ref.dtype, device=ref.device)
    d = dst[index] if dst is not None else torch.zeros((), dtype=ref.dtype, device=ref.device)
    return normalize(torch.where(keep, s, d).expand(len(index), C, H, W), mean, std)
