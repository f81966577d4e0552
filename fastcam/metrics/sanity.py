"""The model-randomisation sanity check (Adebayo et al., "Sanity Checks for
Saliency Maps", NeurIPS 2018, Sec. 3): re-initialise the model's layers and see
whether the maps change. A method whose maps stay the same does not explain the
model.

Similarities (per image, between the trained model's map and the randomised
model's map), both written here from their definitions:

* Spearman rank correlation: Pearson correlation of the ranks, ties given their
  average rank; NaN when one of the two maps is constant (undefined);
* SSIM (Wang et al. 2004, eq. 13): Gaussian window 11×11, σ = 1.5, K1 = 0.01,
  K2 = 0.03, data range 1 (maps in [0, 1]), mean over the valid positions — what
  scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)`` computes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..inputs import Normalize

MethodSpec = Union[str, type, Callable[[nn.Module, Tensor, object], Tensor]]


def average_ranks(v: Tensor) -> Tensor:
    """Ranks 1..N of each row of ``v`` (B, N), tied values given their mean rank."""
    B, N = v.shape
    order = v.argsort(dim=1, stable=True)
    sv = v.gather(1, order)
    ranks = torch.empty(B, N, dtype=torch.float64, device=v.device)
    for b in range(B):
        _, inverse, counts = torch.unique_consecutive(sv[b], return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        mean_rank = ends - (counts.double() - 1) / 2          # mean of start..end (1-based)
        ranks[b, order[b]] = mean_rank[inverse]
    return ranks


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation of each pair of maps (B, H, W) → (B,) float64;
    NaN where one map is constant."""
    ra, rb = average_ranks(a.flatten(1)), average_ranks(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(1) / torch.where(den > 0, den, 1), float("nan"))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-t * t / (2 * sigma * sigma))
    return g / g.sum()


def ssim(a: Tensor, b: Tensor, *, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """SSIM of each pair of maps (B, H, W) → (B,) float64 (Wang et al. 2004, eq. 13,
    local statistics under a Gaussian window, averaged over the positions where
    the whole window fits)."""
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"ssim needs two (B, H, W) maps of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    if min(a.shape[-2:]) < window:
        raise ValueError(f"ssim: maps of {tuple(a.shape[-2:])} are smaller than the {window}×{window} window")
    g = _gaussian_window(window, sigma).to(a.device)
    x, y = a.double()[:, None], b.double()[:, None]

    def blur(t: Tensor) -> Tensor:       # separable valid convolution
        t = torch.nn.functional.conv2d(t, g.view(1, 1, 1, -1))
        return torch.nn.functional.conv2d(t, g.view(1, 1, -1, 1))

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def parameter_layers(model: nn.Module) -> list[str]:
    """The names of the modules that own parameters directly, in registration
    order (the bottom of the network first for sequential models)."""
    return [name for name, m in model.named_modules()
            if name and any(True for _ in m.parameters(recurse=False))]


def _groups(model: nn.Module, steps) -> list[list[str]]:
    leaves = parameter_layers(model)
    if steps is None:
        return [[n] for n in reversed(leaves)]
    if isinstance(steps, int):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        top = list(reversed(leaves))
        steps = min(steps, len(top))
        bounds = [round(i * len(top) / steps) for i in range(steps + 1)]
        return [top[bounds[i]:bounds[i + 1]] for i in range(steps)]
    names = dict(model.named_modules())
    groups = []
    for name in steps:
        if name not in names:
            raise ValueError(f"steps: the model has no module {name!r}")
        inner = [n for n in leaves if n == name or n.startswith(name + ".")]
        if not inner:
            raise ValueError(f"steps: module {name!r} has no parameters")
        groups.append(inner)
    return groups


def _reinitialise(model: nn.Module, names: Sequence[str], reseed: Optional[int]) -> None:
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name in names:
            m = modules[name]
            if reseed is not None:
                torch.manual_seed(reseed)
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            else:
                for p in m.parameters(recurse=False):
                    std = float(p.std()) if p.numel() > 1 else 1.0
                    p.normal_(float(p.mean()), std if std > 0 else 1.0)


def _state(model: nn.Module, names: Sequence[str]) -> dict:
    modules = dict(model.named_modules())
    return {n: {k: v.detach().clone() for k, v in modules[n].state_dict().items()} for n in names}


def _restore(model: nn.Module, saved: dict) -> None:
    modules = dict(model.named_modules())
    with torch.no_grad():
        for n, state in saved.items():
            modules[n].load_state_dict(state)


def _explainer(method: MethodSpec, target_layers, normalize, options) -> Callable:
    if callable(method) and not isinstance(method, type) and not isinstance(method, str):
        if options:
            raise ValueError("options are for a method name or class, not a callable")
        return method
    # metrics sit above methods (tests/test_layering.py): importing the registry is
    # allowed, and done here so that the other metrics load without every method
    from ..methods import METHODS

    cls = METHODS.get(method.lower()) if isinstance(method, str) else method
    if cls is None:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}")

    def run(model: nn.Module, x: Tensor, targets) -> Tensor:
        return cls(model, target_layers, normalize=normalize, **options)(x, targets)

    return run


@dataclass
class SanityResult:
    """Per step t (0 = the trained model's copy, recomputed; t ≥ 1 = after the
    t-th re-initialisation): ``randomised[t]`` the layers re-initialised at that
    step (cascade: together with every earlier step's), ``spearman`` and
    ``ssim`` (T + 1, B) float64 against the trained model's maps."""

    mode: str
    randomised: list[list[str]]
    spearman: Tensor
    ssim: Tensor

    def mean(self, which: Literal["spearman", "ssim"]) -> Tensor:
        """(T + 1,) mean over the images (NaN values — undefined Spearman — left out)."""
        v = getattr(self, which)
        return v.nanmean(1)


def randomisation_sanity(method: MethodSpec, model: nn.Module, x: Tensor, targets=None, *,
                         layers: Literal["cascade", "independent"] = "cascade",
                         steps: Union[None, int, Sequence[str]] = None,
                         target_layers=None, normalize: Normalize = None,
                         seed: int = 0, reseed: bool = False, **options) -> SanityResult:
    """Adebayo et al.'s model-randomisation test of a saliency method.

    ``method``: a name of ``fastcam.METHODS``, a method class (built with
    ``target_layers``, ``normalize`` and ``options`` on the randomised model),
    or a callable ``method(model, x, targets) -> (B, H, W) maps``. ``targets``
    are resolved once by the trained model (``None`` → its predicted classes)
    and kept for every step, as in the paper.

    ``layers="cascade"``: re-initialise from the top (logits) down, the earlier
    steps' layers staying random; ``"independent"``: one step's layers at a time,
    the rest trained. ``steps``: None → one step per module that owns
    parameters (``parameter_layers``), top first; an int N → the same modules in
    N near-equal consecutive groups, top first; or a list of module names (each
    step re-initialises the parameter modules inside that module).
    Re-initialisation is the module's own ``reset_parameters()`` (PyTorch's
    default initialisation; batch norm: weight 1, bias 0, running statistics
    reset), else each parameter is redrawn from a normal with its trained mean
    and std; it runs under ``seed`` (once, the modules drawing in turn) without
    changing the caller's random state. ``reseed=True`` seeds ``seed`` again
    before each module instead, as Quantus's MPRT does: modules of one shape
    then get the same new weights.

    Quantus 0.6's MPRT (``quantus.MPRT``, Adebayo et al.'s test there) is the same
    check: its ``layer_order="top_down"`` is ``layers="cascade"``, ``"independent"``
    the same name, its layers the modules with ``reset_parameters`` (``steps=None`` here, for
    models whose parameter-owning modules all have one), and it seeds ``seed + 1``
    before each reset: ``reseed=True, seed=s + 1`` here gives its re-initialised
    weights and, with its default ``correlation_spearman``,
    its per-layer similarities (``tests/metrics/test_quantus_parity.py``). Its
    ``abs`` and normalisation by the maximum do not change a Spearman correlation
    of non-negative maps; fastcam also reports SSIM.

    All of it runs on a deep copy of ``model``: the user's model is never
    changed. ``target_layers`` given as modules of ``model`` are mapped to the
    copy by name.
    """
    if layers not in ("cascade", "independent"):
        raise ValueError(f"layers must be 'cascade' or 'independent', got {layers!r}")
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError("x must be a (B, C, H, W) tensor")
    work = copy.deepcopy(model)
    if target_layers is not None:
        names = {m: n for n, m in model.named_modules()}
        specs = target_layers if isinstance(target_layers, (list, tuple)) else [target_layers]
        mapped = []
        for spec in specs:
            if isinstance(spec, nn.Module):
                if spec not in names:
                    raise ValueError("target_layers: a module that is not part of the model")
                mapped.append(names[spec])
            else:
                mapped.append(spec)
        target_layers = mapped if isinstance(target_layers, (list, tuple)) else mapped[0]
    run = _explainer(method, target_layers, normalize, options)
    groups = _groups(work, steps)
    if targets is None:
        from ..inputs import normalizer

        with torch.inference_mode():
            targets = work(normalizer(normalize, x)(x)).argmax(1).tolist()
    reference = run(work, x, targets).detach()
    rows_s, rows_m = [], []

    def compare(maps: Tensor) -> None:
        maps = maps.detach()
        if maps.shape != reference.shape:
            raise ValueError(f"the method returned maps of {tuple(maps.shape)}, expected {tuple(reference.shape)}")
        rows_s.append(spearman(reference, maps))
        rows_m.append(ssim(reference, maps))

    compare(run(copy.deepcopy(model), x, targets))            # step 0: determinism on a fresh copy
    done: list[list[str]] = [[]]
    cuda = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        for group in groups:
            saved = _state(work, group) if layers == "independent" else None
            _reinitialise(work, group, seed if reseed else None)
            compare(run(work, x, targets))
            if saved is not None:
                _restore(work, saved)
            done.append(list(group))
    return SanityResult(layers, done, torch.stack(rows_s), torch.stack(rows_m))
