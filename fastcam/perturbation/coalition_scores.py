"""The coalition engine of the Shapley methods: worths of the n + 1 nested
coalitions of each sampled permutation of the n spatial players, evaluated
through the tail of a split network in chunks.

A coalition keeps its players' activation columns ``A[:, i, j]`` and replaces
the others by a per-channel baseline. Two paths, chosen by the caller:

* general: each chunk of masked activations is built on the fly by the fused
  ``rank_reveal`` kernel from A, the baseline and (permutation, prefix length)
  pairs, and streamed through the whole tail;
* linear head (:mod:`fastcam.network.linear_head`): the first linear layer's
  pre-activation changes by one player's contribution per step, so it is a
  cumulative sum of per-player deltas (for k×k max-pooling windows, one of the
  2^(k²) values a window takes as its players enter, precomputed once per
  image); only the rest of the tail runs per coalition.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Optional, Union

import torch
from torch import Tensor, nn

from ..network.linear_head import LinearHead
from ..engine import Engine, ScoreFn, engine_for
from ..ops import rank_reveal
from ..progress import counted


def inverse_permutations(perms: Tensor) -> Tensor:
    """rank[r, perms[r, t]] = t."""
    rank = torch.empty_like(perms)
    rank.scatter_(1, perms, torch.arange(perms.shape[1], device=perms.device).expand_as(perms))
    return rank


def general_worths(tail: Union[nn.Module, Engine], A: Tensor, base: Tensor, perms: Tensor, score_fn: ScoreFn,
                   chunk_size: int) -> Tensor:
    """Worths (m, n+1) of one image's coalitions. A: (1,K,h,w); base: (K,).
    ``tail``: the tail, or its :class:`~fastcam.engine.Engine` (precision, memory format)."""
    m, n = perms.shape
    _, K, h, w = A.shape
    rank = inverse_permutations(perms)
    src = A.expand(m, K, h, w).contiguous()
    dst = base.view(1, K, 1, 1).expand(m, K, h, w).contiguous()
    counts = torch.arange(n + 1, device=A.device).repeat(m)
    rows = torch.arange(m, device=A.device).repeat_interleave(n + 1)
    image = torch.zeros_like(rows)

    def build(a: int, b: int) -> Tensor:
        return rank_reveal(rank, counts[a:b], rows[a:b], src, dst, check_index=False)  # rows < m

    return engine_for(tail).stream_scores(m * (n + 1), build, image, counted(score_fn, m * (n + 1)),
                                          chunk_size).view(m, n + 1)


class HeadTables:
    """Per-image tables of the linear head: the pre-activation of the empty
    coalition and, per player and subset of its window already present, what
    the player adds when it enters."""

    def __init__(self, head: LinearHead, A: Tensor, base: Tensor,
                 window_weight: Optional[Tensor] = None):
        _, K, h, w = A.shape
        W = head.linear.weight.to(A.dtype)
        b = head.linear.bias.to(A.dtype) if head.linear.bias is not None else torch.zeros(W.shape[0], dtype=A.dtype, device=A.device)
        n = h * w
        a = A[0].reshape(K, n)
        self.n = n
        if head.pool == "mean":
            if W.shape[1] != K:
                raise ValueError("linear head: in_features does not match the channels")
            self.pre0 = W @ base + b
            d = ((a - base[:, None]) / n).t() @ W.t()             # (n, O)
            self.kind, self.delta = "additive", d
            return
        k = head.k
        Hp, Wp = h // k, w // k
        if W.shape[1] != K * Hp * Wp:
            raise ValueError("linear head: in_features does not match the pooled activation")
        nb = k * k
        ys, xs = torch.meshgrid(torch.arange(Hp * k), torch.arange(Wp * k), indexing="ij")
        win = torch.full((h, w), -1, dtype=torch.long)
        win[:Hp * k, :Wp * k] = (ys // k) * Wp + xs // k
        bit = torch.zeros((h, w), dtype=torch.long)
        bit[:Hp * k, :Wp * k] = (ys % k) * k + xs % k
        win, bit = win.flatten().to(A.device), bit.flatten().to(A.device)
        # players of each window, in bit order
        members = torch.full((Hp * Wp, nb), -1, dtype=torch.long, device=A.device)
        inside = win >= 0
        members[win[inside], bit[inside]] = torch.arange(n, device=A.device)[inside]
        vals = a[:, members]                                        # (K, windows, nb)
        subsets = torch.arange(2 ** nb, device=A.device)
        present = ((subsets[:, None] >> torch.arange(nb, device=A.device)) & 1).bool()  # (S, nb)
        neg = torch.finfo(A.dtype).min
        cells = torch.where(present[None, None], vals[:, :, None, :], torch.full_like(vals[:, :, None, :], neg)).amax(-1)
        full = present.all(1)
        cells = torch.where(full[None, None], cells, torch.maximum(cells, base[:, None, None]))  # (K, windows, S)
        Wv = window_weight if window_weight is not None else window_weights(head, K, Hp * Wp)
        self.table = torch.bmm(cells.permute(1, 2, 0), Wv.to(A.dtype).permute(1, 2, 0))  # (windows, S, O)
        self.pre0 = b + self.table[:, 0].sum(0)
        self.kind, self.win, self.bit = "windows", win, bit
        self.mates = torch.where(inside[:, None], members[win.clamp(min=0)], -1)  # (n, nb)

    def deltas(self, perms: Tensor) -> Tensor:
        """(m, n, O): what the t-th player of each permutation adds."""
        if self.kind == "additive":
            return self.delta[perms]
        rank = inverse_permutations(perms)                        # (m, n)
        m, n = perms.shape
        mates = self.mates
        valid = mates >= 0
        mate_rank = torch.where(valid[None], rank[:, mates.clamp(min=0)], n)   # (m, n, nb)
        before = (mate_rank < rank[:, :, None]) & valid[None]
        weights = 1 << torch.arange(mates.shape[1], device=perms.device)
        s_before = (before.long() * weights).sum(-1)                          # (m, n)
        inside = self.win >= 0
        s_after = s_before | (1 << self.bit.clamp(min=0))[None]
        w = self.win.clamp(min=0)[None].expand(m, n)
        d = self.table[w, s_after] - self.table[w, s_before]                 # (m, n, O) by player
        d = torch.where(inside[None, :, None], d, torch.zeros_like(d))
        return torch.gather(d, 1, perms[:, :, None].expand(-1, -1, d.shape[-1]))


WINDOW_WEIGHT_CACHE_SIZE = 2   # linear layers whose window layout is kept (VGG16's fc6: 411 MB each)
_window_cache: "OrderedDict[int, tuple]" = OrderedDict()


def _build_window_weights(W: Tensor, K: int, windows: int) -> Tensor:
    # (O, K·windows) → (O, windows, K): each weight row's (K, windows) block is
    # transposed within the row (cache-local), not the whole weight reversed.
    return W.view(W.shape[0], K, windows).transpose(1, 2).contiguous()


def window_weights(head: LinearHead, K: int, windows: int) -> Tensor:
    """The linear layer's weight (O, K·windows) laid out (O, windows, K), so
    ``.permute(1, 2, 0)`` is one (K, O) matrix per pooling window that BLAS
    reads without a further copy.

    Cached across explainer objects, keyed on the weight itself: its identity
    (a weak reference, so the cache never keeps the user's model alive: the
    entry goes when the weight does), its autograd version counter (any in-place
    change — an optimiser step, ``copy_``, ``nn.init`` — makes a new entry), data
    pointer, shape, dtype and device. A change made through ``weight.data``
    bypasses the version counter and is not seen. At most
    ``WINDOW_WEIGHT_CACHE_SIZE`` layouts are kept (least recently used go)."""
    weight = head.linear.weight
    try:
        version = weight._version
    except RuntimeError:                   # an inference-mode tensor has no version counter
        with torch.no_grad():
            return _build_window_weights(weight.detach(), K, windows)
    stamp = (version, weight.data_ptr(), tuple(weight.shape), weight.dtype, weight.device,
             K, windows)
    key = id(weight)
    hit = _window_cache.get(key)
    if hit is not None and hit[0]() is weight and hit[1] == stamp:
        _window_cache.move_to_end(key)
        return hit[2]
    with torch.no_grad():
        table = _build_window_weights(weight.detach(), K, windows)

    def forget(_ref, key=key):
        entry = _window_cache.get(key)
        if entry is not None and entry[0] is _ref:
            del _window_cache[key]

    _window_cache[key] = (weakref.ref(weight, forget), stamp, table)
    _window_cache.move_to_end(key)
    while len(_window_cache) > WINDOW_WEIGHT_CACHE_SIZE:
        _window_cache.popitem(last=False)
    return table


def head_worths(head: LinearHead, tables: HeadTables, perms: Tensor, score_fn: ScoreFn,
                chunk_size: int, engine: Optional[Engine] = None) -> Tensor:
    """Worths (m, n+1) through the linear head: cumulative pre-activations, then
    only ``head.rest`` per coalition (run with ``engine``'s options when given)."""
    m, n = perms.shape
    d = tables.deltas(perms)
    pre = torch.cat([tables.pre0.expand(m, 1, -1), tables.pre0 + torch.cumsum(d, dim=1)], dim=1)
    pre = pre.reshape(m * (n + 1), -1)
    image = torch.zeros(m * (n + 1), dtype=torch.long, device=pre.device)
    rest = engine.part(head.rest) if engine is not None else Engine(head.rest)
    return rest.stream_scores(m * (n + 1), lambda a, b: pre[a:b], image, score_fn,
                                           chunk_size).view(m, n + 1)


def linear_macs(modules: list) -> int:
    """Multiply-adds of the Linear layers among ``modules`` for one row."""
    return sum(mod.in_features * mod.out_features for mod in modules if isinstance(mod, nn.Linear))
