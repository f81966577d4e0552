"""ROAD's noisy linear imputation as a batched iterative solve on the tensor's device.

Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and Efficient Evaluation
Strategy for Attribution Methods" (ICML 2022), Sec. 4 / Eq. (4): every removed
pixel takes the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct
neighbours, 1/12 for the 4 diagonal ones), removed neighbours included, so the
removed pixels solve a sparse linear system; Gaussian noise is then added to them.

The system (as pytorch-grad-cam 1.5.7 builds it for ``scipy.sparse.linalg.spsolve``)
--------------------------------------------------------------------------------
For a removed pixel i with in-image neighbours N(i) (offsets outside the image are
dropped and the weights that remain are *not* renormalised to 1):

    d_i x_i − Σ_{j ∈ N(i), removed} w_ij x_j = Σ_{j ∈ N(i), kept} w_ij v_j,
    d_i = Σ_{j ∈ N(i)} w_ij,

i.e. ``x_i`` is the mean of its in-image neighbours weighted by w. grad-cam stores
the negated system (−d_i on the diagonal) and solves it directly; it is square
(one equation per removed pixel), and because w is symmetric under j ↔ i
(offset o and −o carry the same weight) its matrix ``L = D − W_rr`` is symmetric.
It is the graph Laplacian of the 8-neighbour grid restricted to the removed
pixels (Dirichlet data on the kept ones): weakly diagonally dominant, and
positive definite as soon as at least one pixel of the image is kept (every
connected set of removed pixels then touches a kept pixel or is the whole
image). So conjugate gradient applies directly; no normal equations are needed.
When *every* pixel is removed the right-hand side is 0 and L is singular with
the constants as null space; any constant solves it (SciPy's direct solve reports
a singular matrix), we return 0 — CG started at 0 stays there — plus the noise.

How we solve it
---------------
All images × channels are solved together on their device with preconditioned
conjugate gradient. ``L`` is applied matrix-free: the 3×3 stencil is two
separable [1, 2, 1] passes on the zero-padded image (``F.pad`` handles the
borders exactly as grad-cam's "outside the image" rule). The preconditioner is
one symmetric geometric multigrid V-cycle (one damped-Jacobi sweep before and
after the coarse correction, linear interpolation / its transpose between
levels, the same stencil rediscretised on each coarser grid where a coarse cell
is removed only if all its children are, a fixed number of Jacobi sweeps on the
coarsest grid); it is a fixed symmetric positive definite linear operator, so
plain PCG stays valid, and it makes the iteration count independent of the
image size (7–9 iterations for ``tol=1e-4``/``1e-5`` on 224-px Grad-CAM masks,
where Jacobi alone needs hundreds).

Convergence: a system stops when ``‖r‖₂ ≤ tol · ‖b‖₂`` (r the residual, b the
right-hand side, per image and channel), or after ``max_iter`` iterations (a
``RuntimeWarning`` is issued if some system did not converge). With the default
``tol=1e-4`` the imputed pixels of unit-variance images agree with a direct
float64 solve to ≤ 1e-3 (max abs; typically 1e-4), an order of magnitude below
the noise grad-cam adds (std 0.01); ``tol=1e-5`` gives ≤ 1e-4 for ~2 more
iterations. Work is in the input's dtype (float32 typically).

Noise: ``noise * N(0, 1)`` is added to the removed pixels only, drawn from
``generator`` (or the global RNG) on the tensor's device. grad-cam draws it with
``torch.randn_like`` on the CPU, one image at a time, so the random streams
cannot coincide; tests compare the noise-free part (``noise=0``) exactly and the
noise by its statistics.
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# Eq. (4) of the ROAD paper: direct neighbours 1/6, diagonal neighbours 1/12.
EDGE_WEIGHT = 1.0 / 6.0
CORNER_WEIGHT = 1.0 / 12.0

_COARSEST = 3          # stop coarsening when a side is at most this
_COARSE_SWEEPS = 8     # Jacobi sweeps on the coarsest grid
# Jacobi weight of the smoother. D⁻¹L has its spectrum in (0, 2) (Gershgorin; 2 itself
# would need a bipartite graph and the 8-neighbour grid has triangles), so ω = 1 is
# convergent in the L-norm and the V-cycle is positive definite.
_OMEGA = 1.0


def neighbour_sum(x: Tensor) -> Tensor:
    """``Σ_o w_o x[i + o]`` over the 8 neighbours of every pixel of ``x`` (..., H, W),
    zero outside the image. The weights are ``(1,2,1)ᵀ(1,2,1)/12`` minus the centre."""
    p = F.pad(x, (1, 1, 1, 1))
    t = torch.add(p[..., :-2, :], p[..., 2:, :]).add_(p[..., 1:-1, :], alpha=2.0)
    u = torch.add(t[..., :-2], t[..., 2:]).add_(t[..., 1:-1], alpha=2.0)
    return u.sub_(x, alpha=4.0).mul_(1.0 / 12.0)


def _along(t: Tensor, dim: int, sl: slice) -> Tensor:
    index = [slice(None)] * t.dim()
    index[dim] = sl
    return t[tuple(index)]


def _restrict_dim(f: Tensor, dim: int, tmp: Tensor, out: Tensor) -> None:
    """1-D transpose of :func:`_prolong_dim` along ``dim``: out[i] = ¼f[2i−1] + ¾f[2i]
    + ¾f[2i+1] + ¼f[2i+2] with f[−1] := f[0], f[n] := f[n−1] (n even) or 0 (n odd)."""
    n, m = f.shape[dim], out.shape[dim]
    _along(tmp, dim, slice(1, n + 1)).copy_(f)
    _along(tmp, dim, slice(0, 1)).copy_(_along(f, dim, slice(0, 1)))
    if n % 2 == 0:
        _along(tmp, dim, slice(n + 1, n + 2)).copy_(_along(f, dim, slice(n - 1, n)))
    else:
        _along(tmp, dim, slice(n + 1, n + 3)).zero_()
    quarter = torch.add(_along(tmp, dim, slice(0, 2 * m, 2)), _along(tmp, dim, slice(3, 2 * m + 2, 2)))
    torch.add(_along(tmp, dim, slice(1, 2 * m + 1, 2)), _along(tmp, dim, slice(2, 2 * m + 2, 2)), out=out)
    out.mul_(0.75).add_(quarter, alpha=0.25)


def _prolong_dim(c: Tensor, dim: int, tmp: Tensor, out: Tensor) -> None:
    """Cell-centred linear interpolation along ``dim`` (edges replicated):
    out[2i] = ¾c[i] + ¼c[i−1], out[2i+1] = ¾c[i] + ¼c[i+1]."""
    m, n = c.shape[dim], out.shape[dim]
    _along(tmp, dim, slice(1, m + 1)).copy_(c)
    _along(tmp, dim, slice(0, 1)).copy_(_along(c, dim, slice(0, 1)))
    _along(tmp, dim, slice(m + 1, m + 2)).copy_(_along(c, dim, slice(m - 1, m)))
    k = n // 2                                            # odd outputs; even ones are m
    torch.lerp(c, _along(tmp, dim, slice(0, m)), 0.25, out=_along(out, dim, slice(0, n, 2)))
    torch.lerp(_along(c, dim, slice(0, k)), _along(tmp, dim, slice(2, k + 2)), 0.25,
               out=_along(out, dim, slice(1, n, 2)))


class _Level:
    """One grid of the multigrid hierarchy for N images × C channels.

    ``unknown`` (N,1,h,w) is 1 on removed pixels; the operator is
    ``L e = unknown · (d·e − S e) = c1·e + c2·sep(e)`` with d the in-image weight sum,
    ``sep`` the separable (1,2,1)ᵀ(1,2,1) stencil, c1 = unknown·(d + 1/3),
    c2 = −unknown/12. Every vector lives in preallocated buffers (no allocation in
    the iteration: on CPU fresh large tensors cost more than the arithmetic)."""

    def __init__(self, unknown: Tensor, channels: int, coarse: bool):
        n, _, h, w = unknown.shape
        d = neighbour_sum(unknown.new_ones(1, 1, h, w)).clamp_min_(EDGE_WEIGHT)  # 1×1: no neighbour
        self.unknown = unknown
        self.c1 = unknown * (d + 1.0 / 3.0)
        self.c2 = unknown * (-1.0 / 12.0)
        self.smooth = unknown * (_OMEGA / d)
        self.size = (h, w)
        shape = (n, channels, h, w)
        self.epad = unknown.new_zeros(n, channels, h + 2, w + 2)     # zero ring = outside
        self.e = self.epad[..., 1:-1, 1:-1]
        self.t = unknown.new_empty(n, channels, h, w + 2)
        self.s = unknown.new_empty(shape)
        self.r = unknown.new_empty(shape) if coarse else None   # the finest level uses PCG's r
        self._bufs: Dict[str, Tensor] = {}

    def buf(self, name: str, *shape: int) -> Tensor:
        b = self._bufs.get(name)
        if b is None:
            b = self._bufs[name] = self.unknown.new_empty(shape)
        return b

    def apply(self, src_pad: Tensor, out: Tensor) -> Tensor:
        """``out = L e`` for ``e = src_pad[..., 1:-1, 1:-1]`` (zero on kept pixels and on the ring)."""
        torch.add(src_pad[..., :-2, :], src_pad[..., 2:, :], out=self.t)
        self.t.add_(src_pad[..., 1:-1, :], alpha=2.0)
        torch.add(self.t[..., :-2], self.t[..., 2:], out=out)
        out.add_(self.t[..., 1:-1], alpha=2.0)
        return out.mul_(self.c2).addcmul_(self.c1, src_pad[..., 1:-1, 1:-1])

    def restrict_to(self, fine: Tensor, coarse: "_Level") -> None:
        """coarse.r = coarse.unknown · Pᵀ fine."""
        n, c, h, w = fine.shape
        hc, wc = coarse.size
        half = self.buf("rw", n, c, h, wc)
        _restrict_dim(fine, -1, self.buf("rtw", n, c, h, 2 * wc + 2), half)
        _restrict_dim(half, -2, self.buf("rth", n, c, 2 * hc + 2, wc), coarse.r)
        coarse.r.mul_(coarse.unknown)

    def prolong_from(self, coarse: Tensor, out: Tensor) -> None:
        """out = P coarse (not masked)."""
        n, c, hc, wc = coarse.shape
        h, w = self.size
        half = self.buf("ph", n, c, h, wc)
        _prolong_dim(coarse, -2, self.buf("pth", n, c, hc + 2, wc), half)
        _prolong_dim(half, -1, self.buf("ptw", n, c, h, wc + 2), out)


def _hierarchy(unknown: Tensor, channels: int) -> List[_Level]:
    levels = [_Level(unknown, channels, coarse=False)]
    while min(levels[-1].size) > _COARSEST:
        # a coarse cell is removed only if all its (in-image) children are removed
        kept = F.max_pool2d(1.0 - levels[-1].unknown, 2, ceil_mode=True)
        levels.append(_Level(1.0 - kept, channels, coarse=True))
    return levels


def _vcycle(levels: List[_Level], k: int, r: Tensor) -> Tensor:
    """One symmetric V-cycle for ``L e = r`` on level k from e = 0; returns levels[k].e.

    Damped Jacobi before and after the coarse correction, the coarse residual
    restricted with Pᵀ, a fixed number of Jacobi sweeps on the coarsest grid: a fixed
    symmetric positive definite linear map, hence a valid CG preconditioner."""
    lv = levels[k]
    e, s = lv.e, lv.s
    torch.mul(lv.smooth, r, out=e)
    if k == len(levels) - 1:
        for _ in range(_COARSE_SWEEPS - 1):
            torch.sub(r, lv.apply(lv.epad, s), out=s)
            e.addcmul_(lv.smooth, s)
        return e
    torch.sub(r, lv.apply(lv.epad, s), out=s)
    coarse = levels[k + 1]
    lv.restrict_to(s, coarse)
    lv.prolong_from(_vcycle(levels, k + 1, coarse.r), s)
    e.addcmul_(lv.unknown, s)
    torch.sub(r, lv.apply(lv.epad, s), out=s)
    return e.addcmul_(lv.smooth, s)


def _pcg(b: Tensor, levels: List[_Level], tol: float, max_iter: int) -> Tuple[Tensor, int, bool]:
    """Multigrid-preconditioned CG for ``L x = b``, one system per (image, channel)."""
    top = levels[0]
    tiny = torch.finfo(b.dtype).tiny

    def dot(a: Tensor, c: Tensor) -> Tensor:
        return torch.mul(a, c, out=tmp).sum((-2, -1), keepdim=True)

    tmp = torch.empty_like(b)
    x = torch.zeros_like(b)
    r = b
    bound = dot(b, b) * (tol * tol)
    active = dot(r, r) > bound
    if not bool(active.any()):
        return x, 0, True
    ppad = torch.zeros_like(top.epad)
    p = ppad[..., 1:-1, 1:-1]
    q = torch.empty_like(b)
    p.copy_(_vcycle(levels, 0, r))
    rz = dot(r, p)
    for it in range(1, max_iter + 1):
        top.apply(ppad, q)
        pq = dot(p, q)
        alpha = torch.where(active & (pq > 0), rz / pq.clamp_min(tiny), 0.0)
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, q, value=-1.0)
        active &= dot(r, r) > bound
        if not bool(active.any()):
            return x, it, True
        z = _vcycle(levels, 0, r)
        rz_new = dot(r, z)
        beta = torch.where(rz > 0, rz_new / rz.clamp_min(tiny), 0.0)
        p.mul_(beta).add_(z)
        rz = rz_new
    return x, max_iter, False


def linear_imputation(x: Tensor, keep: Tensor, *, tol: float = 1e-4, max_iter: int = 50,
                      chunk_elements: int = 1 << 20) -> Tuple[Tensor, int]:
    """The noise-free part of ROAD's imputation: ``x`` (N,C,H,W) with every pixel where
    ``keep`` (N,H,W) is False replaced by the solution of the system in the module
    docstring. Returns the imputed tensor and the largest PCG iteration count.

    Systems are solved ``chunk_elements`` values (N·C·H·W) at a time: this bounds
    memory (about 16 × chunk_elements × itemsize) and, on CPU, keeps the working set
    cache-sized.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if keep.dim() == 4 and keep.shape[1] == 1:
        keep = keep[:, 0]
    if tuple(keep.shape) != (x.shape[0],) + tuple(x.shape[-2:]):
        raise ValueError(f"keep must be (N, H, W) = {(x.shape[0],) + tuple(x.shape[-2:])}, "
                         f"got {tuple(keep.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if not tol > 0 or max_iter < 1:
        raise ValueError(f"tol must be > 0 and max_iter >= 1, got tol={tol}, max_iter={max_iter}")
    keep = keep.to(device=x.device, dtype=torch.bool)
    n, c, h, w = x.shape
    per = max(1, chunk_elements // max(1, c * h * w))
    out = x.clone()
    iters, converged = 0, True
    for s in range(0, n, per):
        kept = keep[s:s + per, None]
        if bool(kept.all()):
            continue
        unknown = (~kept).to(x.dtype)
        xs = x[s:s + per]
        b = unknown * neighbour_sum(xs * kept)
        sol, it, ok = _pcg(b, _hierarchy(unknown, c), tol, max_iter)
        out[s:s + per] = torch.where(kept, xs, sol)
        iters, converged = max(iters, it), converged and ok
    if not converged:
        warnings.warn(f"noisy linear imputation: conjugate gradient did not reach tol={tol} "
                      f"in max_iter={max_iter} iterations", RuntimeWarning, stacklevel=2)
    return out, iters


def noisy_linear_imputation(x: Tensor, keep: Tensor, noise: float = 0.01, *, tol: float = 1e-4,
                            max_iter: int = 50, generator: Optional[torch.Generator] = None,
                            chunk_elements: int = 1 << 20) -> Tensor:
    """ROAD's noisy linear imputation (Rong et al. 2022, Eq. 4), batched on x's device.

    Args:
        x: images (N, C, H, W), floating point, any device.
        keep: (N, H, W) bool (or 0/1): True where the pixel is kept, False where it is
            removed and imputed (grad-cam's ``mask``: 1 kept, 0 imputed).
        noise: std of the Gaussian noise added to the removed pixels (0 for none);
            grad-cam's default 0.01, absolute, in x's units.
        tol: relative residual ``‖r‖₂/‖b‖₂`` at which each system's PCG stops.
        max_iter: PCG iteration cap; a ``RuntimeWarning`` says if it was hit.
        generator: RNG for the noise (default: the global one of x's device).
        chunk_elements: bound on N·C·H·W solved at once.

    Returns:
        A new tensor like x: kept pixels unchanged, removed pixels = weighted mean of
        their neighbours (the linear system's solution) + ``noise · N(0, 1)``.
    """
    out, _ = linear_imputation(x, keep, tol=tol, max_iter=max_iter, chunk_elements=chunk_elements)
    if noise:
        removed = ~keep.to(device=x.device, dtype=torch.bool).reshape(x.shape[0], 1, *x.shape[-2:])
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        out = torch.where(removed, out + noise * eps, out)
    return out
