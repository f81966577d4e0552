"""Start-up, each case in a fresh process (what a user waits for): ``import torch``
(the baseline: nothing can answer faster than torch once torch is needed),
``import fastcam``, ``fastcam --help``, a usage error of ``fastcam explain``, and
the first and the second GradCAM call on the bundled EfficientNet-Lite0 (2 photos
at 224 px; the model and the photos are loaded before the clock starts). The
before/after rows of a change: ``benchmarks/before_after.py --startup``.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SMOKE

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "OMP_NUM_THREADS": "2"}
PROCESSES = {
    "import torch": ("import torch", True),
    "import fastcam": ("import fastcam", False),
    "fastcam --help": ("import sys; from fastcam.cli import main; sys.argv = ['fastcam', '--help']; main()",
                       False),
    "fastcam explain (usage error)": (
        "import sys; from fastcam.cli import main; sys.argv = ['fastcam', 'explain']; main()", False),
}
_GRADCAM = r"""
import json, sys, time, torch
import fastcam
from fastcam.data import load_photos
size = int(sys.argv[1])
x, _ = load_photos(["chelsea", "coffee"], size=size)
model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
cam = fastcam.GradCAM(model, normalize=model.normalization)
times = []
for _ in range(2):
    t0 = time.perf_counter()
    cam(x)
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def _process(code: str) -> None:
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode in (0, 2), out.stderr[-2000:]                 # 2: the usage error


@pytest.mark.parametrize("case", list(PROCESSES))
def test_process(benchmark, case):
    code, baseline = PROCESSES[case]
    benchmark.group = "start-up (a fresh process)"
    benchmark.extra_info["baseline"] = baseline
    benchmark.pedantic(_process, args=(code,), rounds=1 if SMOKE else 5, iterations=1)


def test_gradcam_first_and_second_call(benchmark):
    """Both calls timed inside one process; the benchmark times the process, the
    calls go into extra_info (first includes the lazy imports and the layer search)."""
    size = 64 if SMOKE else 224

    def run():
        out = subprocess.run([sys.executable, "-c", _GRADCAM, str(size)], env=ENV, capture_output=True,
                             text=True, cwd=ROOT, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    benchmark.group = "GradCAM on the bundled model, a fresh process"
    first, second = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(first_call_s=first, second_call_s=second,
                                note=f"first call {first * 1e3:.0f} ms, second {second * 1e3:.0f} ms")
    assert first > 0 and second > 0
