"""Benchmark conventions: every group holds fastcam and what it is compared with,
measured in the same run; the summary prints each row's median and its ratio to
the group's baseline (the row whose ``extra_info["baseline"]`` is True).

FASTCAM_BENCH_SMOKE=1 shrinks every size so CI can run the file quickly as a
smoke test (together with --benchmark-disable)."""
import os

import pytest
import torch

SMOKE = os.environ.get("FASTCAM_BENCH_SMOKE", "0") == "1"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", False):
        return
    groups: dict = {}
    for bench in session.benchmarks:
        if bench.stats is None or not getattr(bench.stats, "rounds", 0):
            continue
        groups.setdefault(bench.group, []).append(bench)
    if not groups:
        return
    tr = terminalreporter
    tr.section("fastcam benchmark ratios (median / baseline median)")
    for group, benches in groups.items():
        base = [b for b in benches if b.extra_info.get("baseline")]
        base_median = base[0].stats.median if base else None
        tr.write_line(f"[{group}]  baseline: {base[0].name if base else 'none'}")
        for b in benches:
            ratio = f"{b.stats.median / base_median:7.3f}x" if base_median else "   -   "
            note = b.extra_info.get("note", "")
            tr.write_line(f"  {b.name:<60} median {b.stats.median * 1e3:10.3f} ms  {ratio}  {note}")
