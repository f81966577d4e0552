"""fastcam.metrics vs Quantus 0.6 (the baseline) on the metrics both define the
same way: sparseness, complexity, relevance mass and rank accuracy and the
pointing game, on 64 CAM-like maps at 224² (bilinear upsampling of random 7×7
maps, min-max normalised) with one box mask per image, CPU. Quantus runs its
batched NumPy path (``batch_size`` 64), with its defaults (absolute values and
normalisation by the maximum where it applies them); fastcam the batched torch
functions. Each row also checks that both give the same values. ROAD and the
randomisation check are left out: Quantus's ROAD runs on one-channel images
only, and both sides of MPRT spend their time in the method's model passes."""
import warnings

import numpy as np
import pytest
import torch

import fastcam.metrics as M

from conftest import SMOKE

quantus = pytest.importorskip("quantus", reason="the comparison needs quantus")

N, SIZE = (4, 32) if SMOKE else (64, 224)
GROUP = "quantus {} N{} {}px"


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(N, 1, 7, 7, generator=g)
    maps = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = maps.amin((1, 2), keepdim=True), maps.amax((1, 2), keepdim=True)
    maps = (maps - lo) / (hi - lo)
    mask = torch.zeros(N, SIZE, SIZE, dtype=torch.bool)
    for b in range(N):
        y0, x0 = torch.randint(0, SIZE // 2, (2,), generator=g).tolist()
        mask[b, y0:y0 + SIZE // 3, x0:x0 + SIZE // 4] = True
    x = torch.rand(N, 3, SIZE, SIZE, generator=g)
    return maps, mask, x


CASES = {
    "sparseness": (quantus.Sparseness, lambda m, s: M.sparseness(m), 2e-5),
    "complexity": (quantus.Complexity, lambda m, s: M.complexity(m), 2e-5),
    "relevance_mass_accuracy": (quantus.RelevanceMassAccuracy, M.relevance_mass_accuracy, 1e-6),
    "relevance_rank_accuracy": (quantus.RelevanceRankAccuracy, M.relevance_rank_accuracy, 1e-6),
    "pointing_game": (quantus.PointingGame, lambda m, s: M.pointing_game(m, s, tolerance=0), 0),
}


def _quantus_call(cls, maps, mask, x):
    metric = cls(disable_warnings=True, display_progressbar=False)
    a, s = maps[:, None].numpy(), mask[:, None].numpy()

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(metric(model=None, x_batch=x.numpy(), y_batch=np.zeros(N, int), a_batch=a.copy(),
                                     s_batch=s, batch_size=N, device="cpu"), dtype=np.float64)
    return run


@pytest.mark.parametrize("name", list(CASES))
def test_quantus(benchmark, data, name):
    cls, _, _ = CASES[name]
    maps, mask, x = data
    benchmark.group = GROUP.format(name, N, SIZE)
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(_quantus_call(cls, maps, mask, x), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("name", list(CASES))
def test_fastcam(benchmark, data, name):
    cls, fn, tol = CASES[name]
    maps, mask, x = data
    benchmark.group = GROUP.format(name, N, SIZE)
    out = benchmark.pedantic(fn, args=(maps, mask), rounds=3, iterations=1, warmup_rounds=1)
    ref = _quantus_call(cls, maps, mask, x)()
    np.testing.assert_allclose(out.double().numpy(), ref, rtol=0, atol=tol)
