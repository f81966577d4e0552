"""Running one op's parity harness (tests/ops/test_<op>.py::test_parity, the
triton backend only) in a subprocess, with or without TRITON_INTERPRET, and
reading what ran from its JUnit XML: tests/ops/test_gpu_triton.py runs it
compiled on a GPU.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(TESTS))


def run_triton_parity(op: str, tmp_path, interpret: bool, select: str = "",
                      timeout: int = 900) -> dict:
    """Run ``test_<op>.py::test_parity -k triton[ and select]`` in a fresh Python;
    returns rc, output, the test ids that passed, and the counts of tests,
    failures, errors and skips."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    xml = os.path.join(str(tmp_path), f"parity_{op}.xml")
    expr = "triton" + (f" and {select}" if select else "")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
           f"{TESTS}/test_{op}.py::test_parity", "-k", expr, f"--junitxml={xml}"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=timeout)
    out = dict(rc=p.returncode, output=(p.stdout + p.stderr)[-6000:], passed=[], tests=0,
               failures=0, errors=0, skipped=0)
    if not os.path.exists(xml):
        return out
    root = ET.parse(xml).getroot()
    for case in root.iter("testcase"):
        out["tests"] += 1
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            out["failures"] += 1
        elif "error" in kinds:
            out["errors"] += 1
        elif "skipped" in kinds:
            out["skipped"] += 1
        else:
            out["passed"].append(case.get("name"))
    return out
