import ctypes
import os
import sys

import torch

# Without a GPU, Triton kernels run on CPU tensors through the interpreter; with
# one they are compiled and run on CUDA tensors (the parity harness then runs
# the triton backend on the GPU). TRITON_INTERPRET must be decided before triton
# or fastcam's Triton kernels are imported; an explicit TRITON_INTERPRET wins.
HAS_GPU = torch.cuda.is_available()
if not HAS_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import functools  # noqa: E402
import gc  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

_TESTS = os.path.dirname(os.path.abspath(__file__))


def _glibc():
    """glibc, for malloc_trim; None elsewhere (macOS, musl)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc() if sys.platform.startswith("linux") else None


def _check_the_imported_fastcam() -> None:
    """Fail, with what to do, when the fastcam being tested has no fastcam._C:
    typically the unbuilt source tree shadowing the installed package (pytest
    from the checkout root after a non-editable ``pip install .``), which would
    silently skip every C++ and CUDA test. FASTCAM_TESTS_ALLOW_UNBUILT=1 runs the
    rest anyway."""
    import fastcam
    from fastcam._ext import extension_available

    if extension_available() or os.environ.get("FASTCAM_TESTS_ALLOW_UNBUILT") == "1":
        return
    where = os.path.dirname(os.path.abspath(fastcam.__file__))
    raise pytest.UsageError(
        f"fastcam imported from {where} has no compiled fastcam._C, so every C++, CUDA "
        "and GPU test would be skipped. Build it where it is imported from: "
        "`pip install -e .` in the checkout (or run pytest from outside the checkout "
        "with `--import-mode=importlib` to test a non-editable install). Set "
        "FASTCAM_TESTS_ALLOW_UNBUILT=1 to run the remaining tests anyway.")


def pytest_configure(config):
    _check_the_imported_fastcam()


@pytest.fixture(scope="module", autouse=True)
def _free_the_modules_models(request):
    """After each test module, empty the ``functools.lru_cache``s it defines or imports
    from the tests' helpers (``_peer_models.random_model``, ``_model(arch)`` in many
    files): they hold networks (a VGG16 is 528 MB) that no later module reuses, and
    fastcam's per-network caches (splits, chunk timings) are weak-keyed on them, so
    they go too. Dynamo's caches are reset where the module compiled something, and
    glibc is asked to return the freed heap (its dynamic mmap threshold puts large
    tensors on the heap after the first few are freed; RSS otherwise keeps them)."""
    yield
    for value in list(vars(request.module).values()):
        if (isinstance(value, functools._lru_cache_wrapper)
                and os.path.dirname(value.__wrapped__.__code__.co_filename) == _TESTS):
            value.cache_clear()
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None and dynamo.utils.counters["frames"]["ok"]:   # reset() zeroes it
        dynamo.reset()
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@pytest.fixture(autouse=True)
def _seed_and_backend():
    import fastcam

    torch.manual_seed(0)
    previous = fastcam.get_backend()
    yield
    fastcam.set_backend(previous)


# --- Per-test time and memory profile -------------------------------------------------
# FASTCAM_TEST_PROFILE=<path> writes each test's duration and resident-set growth (the
# tests that keep memory alive show as growers); FASTCAM_RSS_LIMIT_GB=<GB> fails the
# session when the pytest process's peak RSS passed it. Both read /proc and getrusage
# only, so the hook costs microseconds per test.

def _rss_kib() -> int:
    """Current resident set (VmRSS) in KiB; 0 where /proc is absent."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _peak_rss_kib() -> int:
    """Peak resident set of this process: ru_maxrss is KiB on Linux (bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if os.uname().sysname == "Darwin" else peak


def _children_peak_rss_kib() -> int:
    """Largest peak RSS among the waited-for subprocesses this process started."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak // 1024 if os.uname().sysname == "Darwin" else peak


_PROFILE: list = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    rss0, peak0, t0 = _rss_kib(), _peak_rss_kib(), time.perf_counter()
    yield
    _PROFILE.append((item.nodeid, time.perf_counter() - t0, rss0, _rss_kib(),
                     peak0, _peak_rss_kib()))


def _write_profile(path: str) -> None:
    by_file: dict = {}
    for nodeid, seconds, rss0, rss1, _, _ in _PROFILE:
        entry = by_file.setdefault(nodeid.split("::")[0], [0.0, 0, None, 0])
        entry[0] += seconds
        entry[1] += rss1 - rss0
        entry[2] = rss0 if entry[2] is None else entry[2]
        entry[3] = rss1
    mib = 1024.0
    lines = [f"peak RSS {_peak_rss_kib() / mib:.0f} MiB, largest subprocess peak "
             f"{_children_peak_rss_kib() / mib:.0f} MiB, {len(_PROFILE)} tests, "
             f"{sum(p[1] for p in _PROFILE):.1f} s", "",
             "per file: seconds  RSS-in MiB  RSS-out MiB  growth MiB"]
    for name, (seconds, _, rss_in, rss_out) in sorted(by_file.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"  {name}: {seconds:.1f}  {rss_in / mib:.0f}  {rss_out / mib:.0f}  "
                     f"{(rss_out - rss_in) / mib:+.0f}")
    lines += ["", "top RSS growers (MiB growth, seconds, peak-after MiB, test):"]
    for nodeid, seconds, rss0, rss1, _, peak1 in sorted(_PROFILE, key=lambda p: p[2] - p[3])[:30]:
        lines.append(f"  {(rss1 - rss0) / mib:+.0f}  {seconds:.1f}  {peak1 / mib:.0f}  {nodeid}")
    lines += ["", "top peak raisers (MiB the peak rose during the test, seconds, test):"]
    for nodeid, seconds, _, _, peak0, peak1 in sorted(_PROFILE, key=lambda p: p[4] - p[5])[:20]:
        lines.append(f"  {(peak1 - peak0) / mib:+.0f}  {seconds:.1f}  {nodeid}")
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("FASTCAM_TEST_PROFILE")
    if path:
        _write_profile(path)
    limit = os.environ.get("FASTCAM_RSS_LIMIT_GB")
    if limit:
        gc.collect()
        peak_gb = _peak_rss_kib() / 1024.0 ** 2
        child_gb = _children_peak_rss_kib() / 1024.0 ** 2
        over = [f"the pytest process peaked at {peak_gb:.2f} GB"] if peak_gb > float(limit) else []
        if child_gb > float(limit) / 2:
            over.append(f"a subprocess peaked at {child_gb:.2f} GB (limit {float(limit) / 2:.2f})")
        if over:
            session.config.get_terminal_reporter().write_line(
                f"FASTCAM_RSS_LIMIT_GB={limit}: " + "; ".join(over), red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
