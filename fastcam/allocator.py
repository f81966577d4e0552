"""glibc's malloc, set for the ``fastcam`` command's own process: :func:`tune_malloc`.

PyTorch's CPU tensors come from ``malloc``. By default glibc serves a request
above its mmap threshold (128 KiB, raised as such blocks are freed, to 32 MiB at
most) with a fresh ``mmap`` that ``free`` unmaps, and gives the heap's free top
back to the kernel beyond 128 KiB. A batch's activations and gradients (tens to
hundreds of MB each at batch 32, 224 px) are then page-faulted and zeroed by the
kernel again on every pass. On this project's 2-core CPU ``fastcam generate`` ran
1.4-1.7x faster with this module's setting than with glibc's defaults
(``benchmarks/bench_generate.py``, its ``cli`` and ``cli_default_malloc`` rows).

:func:`tune_malloc` sets ``M_MMAP_MAX = 0`` (blocks from the heap, reused across
passes; a thread other than the main one still maps a request beyond its arena's
64 MiB) and ``M_TRIM_THRESHOLD`` = 1 GiB (up to that much freed memory is
kept for the next pass rather than returned). The process's resident memory then
stays near its peak instead of falling between passes. The command line applies
it to its own process only (:func:`fastcam.apps.cli.main` as the ``fastcam``
command or ``python -m fastcam``), as do the Ray executor's actors (a process
each), never to a program that imports fastcam: a library does not change its
host's allocator. Such a program can get the same
with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824`` in its environment
(glibc reads them at start), or with jemalloc/tcmalloc through ``LD_PRELOAD``.

Left alone: another C library than glibc, a platform other than Linux,
``FASTCAM_MALLOC=default``, and a process whose allocator the user has chosen
(a ``MALLOC_*`` variable, ``GLIBC_TUNABLES`` malloc settings, or jemalloc, tcmalloc or
mimalloc preloaded).
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional

#: mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
#: freed memory kept for the next pass before the heap's top is given back
TRIM_THRESHOLD = 1 << 30
#: the environment variable that turns it off (``default``)
ENV = "FASTCAM_MALLOC"
_PRELOADED = ("jemalloc", "tcmalloc", "mimalloc")

#: what :func:`tune_malloc` did in this process (None: not called)
applied: Optional[str] = None


def _reason_to_leave() -> Optional[str]:
    if os.environ.get(ENV, "").strip().lower() == "default":
        return f"{ENV}=default"
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if any(k.startswith("MALLOC_") for k in os.environ) or \
            "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "malloc set in the environment"
    preload = os.environ.get("LD_PRELOAD", "")
    if any(name in preload for name in _PRELOADED):
        return "another allocator preloaded"
    return None


def _glibc():
    """glibc with its malloc functions; None elsewhere (macOS, musl, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim
        return libc
    except (OSError, AttributeError):
        return None


def tune_malloc() -> str:
    """Set glibc's malloc as the module says, once per process; returns what was
    done (``"tuned"``, or why it was left alone)."""
    global applied
    if applied is not None:
        return applied
    reason = _reason_to_leave()
    if reason is None:
        libc = _glibc()
        if libc is None:
            reason = "not glibc"
        else:
            refused = [name for name, param, value in (("M_MMAP_MAX", M_MMAP_MAX, 0),
                                                        ("M_TRIM_THRESHOLD", M_TRIM_THRESHOLD, TRIM_THRESHOLD))
                       if libc.mallopt(param, value) != 1]
            reason = "tuned" if not refused else "mallopt refused " + ", ".join(refused)
    applied = reason
    return applied


def release_free_heap() -> None:
    """Return the C heap's free pages to the OS (``malloc_trim(0)``; nothing off
    glibc). The generation loader calls it before forking its workers: pages shared
    with a forked child are copied on the parent's next write to them
    (copy-on-write); in a process that had already computed large batches (a
    notebook, a benchmark) the allocator reuses gigabytes of such pages, which made
    the first batch after the fork about 5x slower."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
