"""The Python half of benchmarks/gpu_check.sh: time every fastcam method on one
NVIDIA GPU with both GPU backends (triton, cuda) in fp32 and bf16, beside
pytorch-grad-cam and TorchCAM, check that the maps agree, and write a JSON file
and a Markdown table.

    python benchmarks/gpu_check.py time --out DIR [--budget-s 300] [--reps 5]
    python benchmarks/gpu_check.py tests --junit DIR/gpu_tests.xml --out DIR
    python benchmarks/gpu_check.py time --dry-run --out DIR   # CPU, tiny model

Timing: ResNet-50 (torchvision, random weights: the work does not depend on
them), batch 32 at 224x224 (Score-CAM batch 1), target layer ``layer4``; each
measurement is a whole explainer call between two torch.cuda.synchronize()
calls, after one warm-up call (which also compiles and autotunes the Triton
kernels); the median of ``--reps`` calls (Opti-CAM: of 1 to 3, it is 100
optimiser steps). The peers run in fp32 only (pytorch-grad-cam converts maps to
NumPy, which has no bfloat16).

Agreement (a "mismatch" makes the exit status 1): the triton and the cuda
backend's maps of each method and precision against each other, and fastcam's
fp32 Grad-CAM, Grad-CAM++ and Score-CAM (mode "pytorch-grad-cam") against
pytorch-grad-cam's, as max |difference| against a tolerance (1e-3; Opti-CAM's
100 steps amplify rounding: 2e-2 in fp32, reported only in bf16; ADVISE: the
share of channels whose KDE peak count differs, at most 5%). Exit status 3 when
the time budget ran out before every row was measured.

``--dry-run`` runs the same code on CPU with a small CNN, the cpp and the
reference backends standing in for triton and cuda, to check the harness
without a GPU; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

METHODS = ["cam", "gradcam", "gradcam++", "scorecam", "liftcam", "shapcam", "opticam", "advise"]
PRECISIONS = ["fp32", "bf16"]
TOL = {"opticam": {"fp32": 2e-2, "bf16": None}}
DEFAULT_TOL = 1e-3
ADVISE_MAX_FLIPPED = 0.05


@dataclass
class Row:
    method: str
    precision: str
    impl: str                  # "fastcam/triton", "fastcam/cuda", "pytorch-grad-cam", "TorchCAM"
    batch: int
    median_ms: Optional[float] = None
    times_ms: list = field(default_factory=list)
    note: str = ""


@dataclass
class Check:
    what: str
    value: Optional[float]
    tol: Optional[float]
    ok: bool
    note: str = ""


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------
def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def measure(fn: Callable[[], object], reps: int, device: str) -> tuple[list[float], object]:
    """One warm-up call, then ``reps`` calls each between two synchronisations:
    (the call times in ms, the last call's result)."""
    out = fn()
    _sync(device)
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times, out


def _fastcam_call(method: str, model, layer: str, x, targets, precision: str, backend: str,
                  opts: dict):
    import fastcam

    cls = fastcam.METHODS[method]
    kw = dict(opts)
    if kw.get("mode") == "pytorch-grad-cam":
        try:                    # pytorch-grad-cam's numerics: fastcam.compat.numerics' class
            from fastcam.compat.numerics import PytorchGradCAMScoreCAM as cls
        except ImportError:     # an older checkout: the native mode
            pass
        else:
            del kw["mode"]
    if precision != "fp32":
        kw["precision"] = precision

    def call():
        fastcam.set_backend(backend)
        with cls(model, target_layers=[layer], **kw) as cam:
            maps = cam(x, targets=targets)
            return maps, cam.last
    return call


def _grad_cam_call(method: str, model, layer_module, x, targets):
    import pytorch_grad_cam as pg
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = {"gradcam": pg.GradCAM, "gradcam++": pg.GradCAMPlusPlus, "scorecam": pg.ScoreCAM}[method]

    def call():
        with cls(model=model, target_layers=[layer_module]) as cam:
            if method == "scorecam":
                cam.batch_size = 32
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    return call


def _torchcam_call(method: str, model, layer: str, fc: str, x, targets):
    import torch
    import torchcam.methods as tm

    def call():
        if method == "cam":
            ex = tm.CAM(model, target_layer=layer, fc_layer=fc, input_shape=tuple(x.shape[1:]))
        elif method == "scorecam":
            ex = tm.ScoreCAM(model, target_layer=layer, batch_size=32,
                             input_shape=tuple(x.shape[1:]))
        else:
            cls = {"gradcam": tm.GradCAM, "gradcam++": tm.GradCAMpp}[method]
            ex = cls(model, target_layer=layer, input_shape=tuple(x.shape[1:]))
        try:
            grad = method in ("gradcam", "gradcam++")
            with torch.set_grad_enabled(grad):
                scores = model(x)
                maps = ex([int(t) for t in targets], scores)
            return maps
        finally:
            ex.remove_hooks()
    return call


def _max_diff(a, b) -> float:
    import numpy as np
    import torch

    a = a.detach().float().cpu() if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))
    b = b.detach().float().cpu() if isinstance(b, torch.Tensor) else torch.from_numpy(np.asarray(b))
    return float((a.float() - b.float()).abs().max())


@dataclass
class Setup:
    device: str
    model: object
    layer: str
    layer_module: object
    fc: str
    x: object
    x1: object
    targets: list
    backends: tuple
    opts: dict


def make_setup(dry_run: bool) -> Setup:
    import torch
    import torchvision

    if dry_run:
        torch.manual_seed(0)
        model = torch.nn.Sequential()
        model.add_module("conv", torch.nn.Conv2d(3, 8, 3, padding=1))
        model.add_module("act", torch.nn.ReLU())
        model.add_module("layer4", torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, stride=4,
                                                                      padding=1),
                                                      torch.nn.ReLU()))
        model.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
        model.add_module("flat", torch.nn.Flatten())
        model.add_module("fc", torch.nn.Linear(16, 10))
        model.eval()
        x = torch.rand(2, 3, 32, 32)
        return Setup("cpu", model, "layer4", model.layer4, "fc", x, x[:1], [1, 2],
                     ("cpp", "reference"), dict(opticam=dict(max_iter=3)))
    torch.manual_seed(0)
    model = torchvision.models.resnet50().cuda().eval()
    x = torch.rand(32, 3, 224, 224, device="cuda")
    return Setup("cuda", model, "layer4", model.layer4, "fc", x, x[:1],
                 [(37 * i) % 1000 for i in range(32)], ("triton", "cuda"), {})


def has_precision_api() -> bool:
    import fastcam

    return "precision" in inspect.signature(fastcam.GradCAM.__init__).parameters


def run_timing(s: Setup, reps: int, budget_s: float, methods=METHODS,
               precisions=PRECISIONS) -> tuple[list[Row], list[Check], bool]:
    """Every (method, precision, backend) and the peers; (rows, checks,
    complete) — complete is False when the budget ran out first."""
    rows: list[Row] = []
    checks: list[Check] = []
    start = time.perf_counter()
    complete = True
    precision_api = has_precision_api()
    for method in methods:
        x = s.x1 if method == "scorecam" else s.x
        targets = s.targets[:x.shape[0]]
        opts = dict(s.opts.get(method, {}))
        if method == "scorecam":
            opts["mode"] = "pytorch-grad-cam"
        n = 1 if method == "opticam" else reps
        fp32_maps = {}
        for precision in precisions:
            outs = {}
            for backend in s.backends:
                impl = f"fastcam/{backend}"
                row = Row(method, precision, impl, x.shape[0])
                rows.append(row)
                if time.perf_counter() - start > budget_s:
                    row.note, complete = "not measured: time budget spent", False
                    continue
                if precision != "fp32" and not precision_api:
                    row.note, complete = "not measured: this checkout has no precision=", False
                    continue
                times, out = measure(_fastcam_call(method, s.model, s.layer, x, targets,
                                                   precision, backend, opts), n, s.device)
                row.times_ms, row.median_ms = times, statistics.median(times)
                outs[backend] = out
            if len(outs) == 2:
                checks.append(_backend_check(method, precision, outs, s.backends))
            if precision == "fp32" and s.backends[0] in outs:
                fp32_maps = outs[s.backends[0]][0]
        if time.perf_counter() - start > budget_s:
            complete = False
            continue
        # peers, fp32
        peer_calls = []
        if method in ("gradcam", "gradcam++", "scorecam"):
            peer_calls.append(("pytorch-grad-cam",
                               _grad_cam_call(method, s.model, s.layer_module, x, targets)))
        if method in ("cam", "gradcam", "gradcam++", "scorecam"):
            peer_calls.append(("TorchCAM", _torchcam_call(method, s.model, s.layer, s.fc, x,
                                                          targets)))
        for impl, call in peer_calls:
            row = Row(method, "fp32", impl, x.shape[0])
            rows.append(row)
            times, out = measure(call, n, s.device)
            row.times_ms, row.median_ms = times, statistics.median(times)
            if impl == "pytorch-grad-cam" and len(fp32_maps):
                d = _max_diff(fp32_maps, out)
                checks.append(Check(f"{method} fp32 fastcam/{s.backends[0]} vs pytorch-grad-cam",
                                    d, DEFAULT_TOL, d <= DEFAULT_TOL))
    return rows, checks, complete


def _backend_check(method: str, precision: str, outs: dict, backends: tuple) -> Check:
    (m0, r0), (m1, r1) = outs[backends[0]], outs[backends[1]]
    what = f"{method} {precision} fastcam/{backends[0]} vs fastcam/{backends[1]}"
    if method == "advise":
        p0, p1 = r0.extra["peaks"], r1.extra["peaks"]
        flipped = float((p0 != p1).float().mean())
        if flipped:
            return Check(what + " (peak counts)", flipped, ADVISE_MAX_FLIPPED,
                         flipped <= ADVISE_MAX_FLIPPED, "maps not compared: peaks differ")
    tol = TOL.get(method, {}).get(precision, DEFAULT_TOL)
    d = _max_diff(m0, m1)
    return Check(what, d, tol, tol is None or d <= tol, "reported only" if tol is None else "")


# ----------------------------------------------------------------------------
# Tests (JUnit XML of the GPU test run)
# ----------------------------------------------------------------------------
def read_junit(path: str) -> dict:
    """Counts and the ids of failed and skipped tests of a pytest --junitxml file."""
    root = ET.parse(path).getroot()
    res = dict(tests=0, passed=0, failed=[], skipped=[])
    for case in root.iter("testcase"):
        res["tests"] += 1
        name = f"{case.get('classname')}::{case.get('name')}"
        tags = {c.tag: c for c in case}
        if "failure" in tags or "error" in tags:
            res["failed"].append(name)
        elif "skipped" in tags:
            res["skipped"].append(f"{name}: {tags['skipped'].get('message', '')}")
        else:
            res["passed"] += 1
    return res


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------
def environment(device: str) -> dict:
    import torch

    env = dict(python=platform.python_version(), torch=torch.__version__,
               cuda=torch.version.cuda, device=device)
    try:
        import triton
        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    try:
        import fastcam._C as C
        env["fastcam_cuda_architectures"] = C.cuda_architectures
    except ImportError:
        env["fastcam_cuda_architectures"] = None
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["capability"] = "%d.%d" % torch.cuda.get_device_capability()
    try:
        env["git"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                    text=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except OSError:
        env["git"] = None
    return env


def _fmt(v: Optional[float], digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def markdown(rows: list[Row], checks: list[Check], env: dict, tests: Optional[dict]) -> str:
    """The table: one line per (method, precision), fastcam's backends and the
    peers side by side (median ms per call), then the checks."""
    impls = []
    for r in rows:
        if r.impl not in impls:
            impls.append(r.impl)
    lines = [f"GPU check: {env.get('gpu', env['device'])} (sm {env.get('capability', '–')}), "
             f"torch {env['torch']}, CUDA {env['cuda']}, triton {env['triton']}, "
             f"Python {env['python']}, fastcam {str(env.get('git'))[:10]}.", "",
             "Median ms per call (synchronised); ResNet-50, layer4, 224x224.", "",
             "| method | batch | precision | " + " | ".join(impls) + " |",
             "|---|---:|---|" + "---:|" * len(impls)]
    keys = []
    for r in rows:
        if (r.method, r.precision) not in keys:
            keys.append((r.method, r.precision))
    for method, precision in keys:
        mine = {r.impl: r for r in rows if r.method == method and r.precision == precision}
        batch = next(iter(mine.values())).batch
        cells = [_fmt(mine[i].median_ms) if i in mine else "" for i in impls]
        lines.append(f"| {method} | {batch} | {precision} | " + " | ".join(cells) + " |")
    notes = [f"- {r.method} {r.precision} {r.impl}: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["", *notes]
    lines += ["", "| check | max abs difference | tolerance | ok |", "|---|---:|---:|---|"]
    for c in checks:
        lines.append(f"| {c.what}{' (' + c.note + ')' if c.note else ''} | "
                     f"{_fmt(c.value, 6)} | {_fmt(c.tol, 6)} | {'yes' if c.ok else '**NO**'} |")
    if tests is not None:
        lines += ["", f"GPU tests: {tests['passed']} passed of {tests['tests']}, "
                      f"{len(tests['failed'])} failed, {len(tests['skipped'])} skipped."]
        lines += [f"- failed: {t}" for t in tests["failed"]]
        lines += [f"- skipped: {t}" for t in tests["skipped"]]
    return "\n".join(lines) + "\n"


def write(out: str, rows, checks, env, tests, complete) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(dict(environment=env, complete=complete, rows=[asdict(r) for r in rows],
                       checks=[asdict(c) for c in checks], tests=tests), f, indent=1)
    with open(os.path.join(out, "gpu_check.md"), "w") as f:
        f.write(markdown(rows, checks, env, tests))


def exit_status(checks, tests, complete) -> int:
    if tests is not None and (tests["failed"] or tests["skipped"] or not tests["tests"]):
        return 1
    if any(not c.ok for c in checks):
        return 1
    return 0 if complete else 3


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time", help="time every method, check agreement, write the table")
    t.add_argument("--out", required=True)
    t.add_argument("--reps", type=int, default=5)
    t.add_argument("--budget-s", type=float, default=300.0,
                   help="stop starting measurements after this many seconds")
    t.add_argument("--methods", default=",".join(METHODS))
    t.add_argument("--junit", help="the GPU test run's JUnit XML, summarised in the table")
    t.add_argument("--dry-run", action="store_true", help="CPU, tiny model, cpp/reference")
    r = sub.add_parser("tests", help="summarise a GPU test run; exit 1 on a failure or skip")
    r.add_argument("--junit", required=True)
    a = p.parse_args(argv)
    if a.cmd == "time":
        a.methods = [m.strip() for m in a.methods.split(",") if m.strip()]
        bad = sorted(set(a.methods) - set(METHODS))
        if bad:
            p.error(f"unknown methods {bad}: expected some of {METHODS}")
        if a.reps < 1:
            p.error("--reps must be at least 1")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.cmd == "tests":
        res = read_junit(a.junit)
        print(f"GPU tests: {res['passed']} passed of {res['tests']}, {len(res['failed'])} "
              f"failed, {len(res['skipped'])} skipped")
        for t in res["failed"]:
            print("  failed:", t)
        for t in res["skipped"]:
            print("  skipped:", t)
        return 1 if res["failed"] or res["skipped"] or not res["tests"] else 0
    import torch

    if not a.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible to torch (use --dry-run to test the harness)",
              file=sys.stderr)
        return 2
    s = make_setup(a.dry_run)
    rows, checks, complete = run_timing(s, a.reps, a.budget_s, a.methods)
    tests = read_junit(a.junit) if a.junit else None
    env = environment(s.device)
    write(a.out, rows, checks, env, tests, complete)
    print(markdown(rows, checks, env, tests))
    return exit_status(checks, tests, complete)


if __name__ == "__main__":
    sys.exit(main())
