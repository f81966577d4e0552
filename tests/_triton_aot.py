"""Compiling Triton kernels for real GPUs from the test suite: a script runs in a
subprocess without TRITON_INTERPRET (once triton is imported under the
interpreter, triton.language's own @jit helpers are interpreted functions and
the code generator cannot compile anything) and prints ``RESULTS <json>``, or
``SKIP <reason>`` when triton's CUDA backend cannot be loaded."""
import json
import os
import subprocess
import sys

import pytest


def run_aot_script(script: str, argv: list, tmp_path_factory) -> list:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path_factory.mktemp("triton_cache"))  # no cache hits
    proc = subprocess.run([sys.executable, "-c", script, *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    last = proc.stdout.strip().splitlines()[-1]
    if last.startswith("SKIP "):
        pytest.skip(f"triton's CUDA backend cannot be loaded here: {json.loads(last[5:])}")
    assert last.startswith("RESULTS "), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(last[8:])
