"""glibc's malloc set for the command's own process (``fastcam.allocator``):
freed tensor memory stays with the process for the next pass where it is set,
goes back to the kernel where it is not; the command sets it, a program calling
``main(argv)`` and ``FASTCAM_MALLOC=default`` do not. Each case runs in a fresh
process (mallopt cannot be undone)."""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc: Linux with glibc only")

# the resident memory (MiB) left after a 256 MiB tensor is written and freed
_KEPT = """
import sys
import torch
from fastcam.allocator import tune_malloc

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024

if sys.argv[1] == "tune":
    print(tune_malloc())
before = rss()
x = torch.ones(64 << 20)          # 256 MiB of float32, written
del x
print(round(rss() - before))
"""

# what the command's entry did to this process
_ENTRY = """
import sys
from fastcam import allocator
from fastcam.apps import cli
entry = sys.argv[1] == "entry"
sys.argv = ["fastcam", "generate", "--help"]
try:
    cli.main() if entry else cli.main(["generate", "--help"])
except SystemExit:
    pass
print(allocator.applied)
"""


def _run(code: str, *args: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items()
             if not (k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "FASTCAM_MALLOC", "LD_PRELOAD"))}
    proc = subprocess.run([sys.executable, "-c", code, *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()


def test_freed_memory_is_kept_for_the_next_pass_only_where_set():
    status, kept = _run(_KEPT, "tune")
    assert status == "tuned"
    assert int(kept) >= 200               # the 256 MiB stay resident, for the next pass
    (returned,) = _run(_KEPT, "default")
    assert int(returned) <= 50            # glibc's default: unmapped on free


def test_the_command_sets_it_a_calling_program_and_the_opt_out_do_not():
    assert _run(_ENTRY, "entry")[-1] == "tuned"
    assert _run(_ENTRY, "program")[-1] == "None"              # main(argv) from a program
    assert _run(_ENTRY, "entry", FASTCAM_MALLOC="default")[-1] == "FASTCAM_MALLOC=default"
    assert _run(_ENTRY, "entry", MALLOC_ARENA_MAX="2")[-1] == "malloc set in the environment"
