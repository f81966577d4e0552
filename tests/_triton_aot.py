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


# What every script starts with: ``mod`` is the kernels' module, imported from
# the checkout that the tests run (argv: its root, the compute capabilities).
_PRELUDE = r"""
import importlib, json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

root, ccs = sys.argv[1], [int(c) for c in sys.argv[2].split(",")]
try:
    from triton.backends import backends
    backends["nvidia"].compiler(GPUTarget("cuda", ccs[0], 32)).parse_options({})
except Exception as e:
    print("SKIP " + json.dumps(repr(e)))
    sys.exit(0)

sys.path.insert(0, root)
mod = importlib.import_module(sys.argv[3])
"""


def run_aot_script(script: str, module: str, tmp_path_factory, ccs: str = "80,90") -> list:
    """Run ``script`` (which uses ``mod``, ``ccs``, ``triton``, ``GPUTarget``,
    ``ASTSource``, ``json``) after the prelude, with ``mod`` = ``module`` imported."""
    import fastcam

    root = os.path.dirname(os.path.dirname(os.path.abspath(fastcam.__file__)))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path_factory.mktemp("triton_cache"))  # no cache hits
    proc = subprocess.run([sys.executable, "-c", _PRELUDE + script, root, ccs, module], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    last = proc.stdout.strip().splitlines()[-1]
    if last.startswith("SKIP "):
        pytest.skip(f"triton's CUDA backend cannot be loaded here: {json.loads(last[5:])}")
    assert last.startswith("RESULTS "), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(last[8:])
