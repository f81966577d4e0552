"""Gaussian noise for perturbed copies that does not depend on how the copies
are chunked: the noise of a copy is drawn from its own generator, seeded from
the call's seed and the copy's key (e.g. its sample number), so the same seed
gives the same noise whatever the chunk size, the chunk plan of
:meth:`fastcam.engine.Engine.stream_scores` or the other images of the batch."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1


def _mix(seed: int, key: int) -> int:
    # splitmix64 of (seed, key): nearby keys give unrelated generator seeds
    z = (seed * 0x9E3779B97F4A7C15 + key + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


Seed = Union[None, int, torch.Generator]


def call_seed(seed: Seed) -> int:
    """The base seed of one call: ``seed`` itself (an int), one drawn from the
    ``torch.Generator`` given, or one drawn from torch's global generator (None;
    ``torch.manual_seed`` then makes the call reproducible)."""
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=seed, device=seed.device).item())
    if seed is not None:
        return int(seed)
    return int(torch.randint(0, 2**62, (1,)).item())


def seeded_normal(keys: Tensor, shape: tuple[int, ...], std: float, seed: int,
                  device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """(n, *shape) samples of N(0, std²) on ``device``; row j is a function of
    ``(seed, keys[j])`` only. Rows with equal keys are equal (one draw each)."""
    out = torch.empty((keys.shape[0], *shape), dtype=dtype, device=device)
    gen = torch.Generator(device=device)
    first: dict[int, int] = {}
    for j, key in enumerate(keys.tolist()):      # one host read per call
        if key in first:
            out[j].copy_(out[first[key]])
            continue
        first[key] = j
        gen.manual_seed(_mix(seed, key))
        torch.randn(shape, generator=gen, dtype=dtype, device=device, out=out[j])
    return out.mul_(std)


def check_noise_options(num_samples: int, std: float | None = None,
                        seed: Seed = None, batch_size: int | None = None) -> None:
    """TypeError/ValueError for bad ``num_samples``, ``std``, ``seed``, ``batch_size``."""
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if value is None and name == "batch_size":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if std is not None:
        if isinstance(std, bool) or not isinstance(std, (int, float)):
            raise TypeError(f"std must be a number, got {type(std).__name__}")
        if not (0 <= float(std) < float("inf")):
            raise ValueError(f"std must be finite and >= 0, got {std}")
    if seed is not None and not isinstance(seed, torch.Generator) and (
            isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be None, an int or a torch.Generator, got "
                        f"{type(seed).__name__}")
