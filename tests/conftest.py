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
                and os.path.abspath(value.__wrapped__.__code__.co_filename).startswith(
                    _TESTS + os.sep)):
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


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, as the processes the generation and
    evaluation tests start run (one thread: CPU convolutions round differently with
    another count, and their stores are compared bit for bit). Modules that need it
    name it: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- Per-test time and memory profile, and the memory guard -----------------------------
# FASTCAM_TEST_PROFILE=<path> writes each test's duration and resident-set change, per
# file and per test (the tests that keep memory alive show as growers, the ones that
# set the peak as peak raisers). FASTCAM_RSS_LIMIT_GB=<GB> fails the session when the
# pytest process's peak RSS passed <GB>, or a subprocess's peak passed half of it (the
# suite's budget: 4 GB and 2 GB). A subprocess's peak is sampled (every 0.2 s, from
# /proc: its proportional set size, so pages a forked child shares with pytest count
# once) by a thread that runs only when one of the two variables is set: getrusage's
# RUSAGE_CHILDREN cannot be used, since Linux counts the pages a child inherits at fork
# in its ru_maxrss (every child forked after pytest's peak would "peak" as high).

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


def _peak_rss_kib(who: int = resource.RUSAGE_SELF) -> int:
    """Peak resident set (ru_maxrss: KiB on Linux, bytes on macOS) of this process, or
    with RUSAGE_CHILDREN of the largest subprocess it has waited for."""
    peak = resource.getrusage(who).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


#: pid -> (peak PSS in KiB, command line) of every descendant the sampler saw
_CHILD_PEAKS: dict[int, tuple[int, str]] = {}


def _descendants(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [root]
    while frontier:
        kids = [pid for pid, ppid in parent.items() if ppid in frontier]
        found += kids
        frontier = kids
    return found


def _sample_children() -> None:
    me = os.getpid()
    while True:
        for pid in _descendants(me):
            try:
                with open(f"/proc/{pid}/smaps_rollup") as rollup:
                    pss = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
                with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                    name = cmd.read().replace(b"\0", b" ").decode(errors="replace")[:120]
            except (OSError, StopIteration, ValueError):
                continue
            if pss > _CHILD_PEAKS.get(pid, (0, ""))[0]:
                _CHILD_PEAKS[pid] = (pss, name)
        time.sleep(0.2)


def pytest_sessionstart(session):
    if (os.environ.get("FASTCAM_RSS_LIMIT_GB") or os.environ.get("FASTCAM_TEST_PROFILE")) \
            and os.path.isdir("/proc"):
        import threading
        threading.Thread(target=_sample_children, daemon=True, name="rss-sampler").start()


def _child_peak_kib() -> tuple[int, str]:
    return max(_CHILD_PEAKS.values(), default=(0, ""))


# (nodeid, seconds, RSS before, RSS after, peak before, peak after), KiB
_PROFILE: list[tuple[str, float, int, int, int, int]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    rss0, peak0, t0 = _rss_kib(), _peak_rss_kib(), time.perf_counter()
    yield
    _PROFILE.append((item.nodeid, time.perf_counter() - t0, rss0, _rss_kib(),
                     peak0, _peak_rss_kib()))


def _write_profile(path: str) -> None:
    mib = 1024.0
    by_file: dict[str, list] = {}        # file -> [seconds, RSS in, RSS out]
    for nodeid, seconds, rss0, rss1, _, _ in _PROFILE:
        entry = by_file.setdefault(nodeid.split("::")[0], [0.0, rss0, rss1])
        entry[0] += seconds
        entry[2] = rss1
    child, name = _child_peak_kib()
    lines = [f"peak RSS {_peak_rss_kib() / mib:.0f} MiB, largest subprocess peak (PSS, sampled) "
             f"{child / mib:.0f} MiB ({name}), {len(_PROFILE)} tests, "
             f"{sum(p[1] for p in _PROFILE):.1f} s", "",
             "per file (slowest first): seconds, RSS in -> out MiB (growth)"]
    for name, (seconds, rss_in, rss_out) in sorted(by_file.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"  {seconds:7.1f}  {rss_in / mib:6.0f} -> {rss_out / mib:6.0f} "
                     f"({(rss_out - rss_in) / mib:+.0f})  {name}")
    lines += ["", "top RSS growers: growth MiB, seconds, peak after MiB, test"]
    for nodeid, seconds, rss0, rss1, _, peak1 in sorted(_PROFILE, key=lambda p: p[2] - p[3])[:30]:
        lines.append(f"  {(rss1 - rss0) / mib:+6.0f}  {seconds:7.1f}  {peak1 / mib:6.0f}  {nodeid}")
    lines += ["", "top peak raisers: MiB the peak rose, seconds, test"]
    for nodeid, seconds, _, _, peak0, peak1 in sorted(_PROFILE, key=lambda p: p[4] - p[5])[:20]:
        lines.append(f"  {(peak1 - peak0) / mib:+6.0f}  {seconds:7.1f}  {nodeid}")
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("FASTCAM_TEST_PROFILE")
    if path:
        _write_profile(path)
    limit = os.environ.get("FASTCAM_RSS_LIMIT_GB")
    if not limit:
        return
    gib = 1024.0 ** 2
    own, (child, name) = _peak_rss_kib() / gib, _child_peak_kib()
    child /= gib
    over = []
    if own > float(limit):
        over.append(f"the pytest process peaked at {own:.2f} GB (limit {float(limit):.2f})")
    if child > float(limit) / 2:
        over.append(f"a subprocess peaked at {child:.2f} GB (limit {float(limit) / 2:.2f}): {name}")
    if over:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("FASTCAM_RSS_LIMIT_GB: " + "; ".join(over), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
