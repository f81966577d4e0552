"""What the build of fastcam._C contains: the entry points, device code for sm_75,
sm_80 and sm_90 of every CUDA kernel, the shared-memory rule of the CUDA
launchers, and CUDA entry points that fail cleanly without a GPU. The kernels' numerics are tested beside their op's other backends
(tests/test_<op>.py)."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from fastcam._ext import extension_available, load_extension

pytestmark = pytest.mark.skipif(not extension_available(), reason="fastcam._C is not built")


def _C():
    return load_extension()


def _cuda_compiled() -> bool:
    return extension_available() and bool(_C().cuda_compiled)


needs_cuda_build = pytest.mark.skipif(not _cuda_compiled(), reason="built without CUDA")


def _no_gpu() -> bool:
    # torch (even a CPU-only build) sees no GPU and there is no NVIDIA device node.
    return not torch.cuda.is_available() and not glob.glob("/dev/nvidia[0-9]*")


def _find_cuobjdump() -> str | None:
    candidates = ["/usr/local/cuda/bin/cuobjdump", shutil.which("cuobjdump")]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], "bin", "cuobjdump"))
    try:  # triton's wheel ships one
        import triton

        candidates.append(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia",
                                       "bin", "cuobjdump"))
    except ImportError:
        pass
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


# --- (a) what the build contains ---------------------------------------------


@needs_cuda_build
def test_cuda_architectures_attribute():
    # the default list, or a superset (benchmarks/gpu_check.sh adds the GPU's own)
    assert set(ARCHS.split(";")) <= set(_C().cuda_architectures.split(";"))


ARCHS = "75;80;90"  # the default of CMakeLists.txt and pyproject.toml: T4, A100, H100
SM = tuple(f"sm_{a}" for a in ARCHS.split(";"))


OP_ENTRY_POINTS = ("cam_combine_forward", "cam_combine_backward", "mask_blend", "rank_reveal",
                   "adaptive_kde")


def test_entry_points_are_named_as_the_ops():
    # One name per op in every layer: fastcam._C.cpu.<op> calls fastcam::cpu::<op>,
    # and the kernels packages and custom ops use the same names.
    import importlib
    import importlib.util

    import fastcam.ops  # noqa: F401  (registers the custom ops)

    for name in OP_ENTRY_POINTS:
        assert callable(getattr(_C().cpu, name, None)), name
        assert not hasattr(_C(), name + "_cpu") and not hasattr(_C(), name + "_cuda"), name
        for backend in ("reference", "cpp", "cuda", "triton"):
            if backend == "triton" and importlib.util.find_spec("triton") is None:
                continue
            package = importlib.import_module(f"fastcam.kernels.{backend}")
            assert callable(getattr(package, name, None)), (backend, name)
            op = name.rsplit("_forward", 1)[0].rsplit("_backward", 1)[0]
            assert importlib.import_module(f"fastcam.kernels.{backend}.{op}")
        assert hasattr(torch.ops.fastcam, name), name
    assert hasattr(_C(), "cuda") == _cuda_compiled()


@needs_cuda_build
def test_cuda_entry_points_exist():
    # one name per op in every layer: fastcam._C.cuda.<op> calls fastcam::cuda::<op>
    for name in OP_ENTRY_POINTS:
        assert callable(getattr(_C().cuda, name, None)), name
    assert callable(getattr(_C(), "cuda_device_count", None))


@needs_cuda_build
def test_device_code_for_every_default_architecture():
    tool = _find_cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not found (/usr/local/cuda/bin, PATH, CUDA_HOME, triton)")
    so = _C().__file__
    elf = subprocess.run([tool, "--list-elf", so], capture_output=True, text=True, check=True)
    archs = set(re.findall(r"\.(sm_\d+)\.cubin", elf.stdout))
    assert set(SM) <= archs, elf.stdout
    # PTX too, so GPUs newer than sm_90 can JIT-compile the kernels.
    ptx = subprocess.run([tool, "--list-ptx", so], capture_output=True, text=True, check=True)
    assert "sm_90" in set(re.findall(r"\.(sm_\d+)\.ptx", ptx.stdout)), ptx.stdout


# Every CUDA kernel, by source file; the templates in float and double.
_KERNELS = [(source, kernel, template)
            for source, kernels, template in [
                ("cam_combine", ("weighted_sum_kernel", "upsample_minmax_kernel",
                                 "upsample_backward_kernel", "grad_wt_kernel", "grad_A_kernel"),
                 True),
                ("mask_blend", ("map_minmax_kernel", "mask_blend_kernel"), True),
                ("rank_reveal", ("rank_reveal_kernel",), True),
                ("adaptive_kde", ("adaptive_kde_grid_kernel", "adaptive_kde_channel_kernel"), False)]
            for kernel in kernels]


@needs_cuda_build
def test_every_kernel_in_both_cubins():
    tool = _find_cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not found (/usr/local/cuda/bin, PATH, CUDA_HOME, triton)")
    text = subprocess.run([tool, "--list-text", _C().__file__], capture_output=True, text=True,
                          check=True).stdout
    for source, kernel, template in _KERNELS:
        for t in ("IfE", "IdE") if template else ("",):  # float, double
            for arch in SM:
                assert re.search(rf"{source}_cu\w*{kernel}{t}\w*\.{arch}\.elf", text), \
                    (kernel, t, arch)


# --- (b) shared memory: a staged map must fit beside the static arrays ---------


def test_smem_rule_counts_the_static_reduction_array():
    # 96 x 128 float32 is exactly 48 KiB: with a reduction array of 32 floats
    # beside it the block needs more than 48 KiB and the launch would fail
    # (cudaErrorInvalidValue), so the map must not be staged.
    fits = _C().smem_fits
    limit = _C().smem_per_block
    assert limit == 48 * 1024
    assert not fits(96 * 128 * 4, 32 * 4, limit - 32 * 4)
    assert fits(96 * 127 * 4, 32 * 4, limit - 32 * 4)
    assert fits(limit - 1152, 1152, limit - 1152) and not fits(limit - 1151, 1152, limit)
    assert not fits(1024, 0, 512)                       # the function's own maximum
    assert fits(0, limit, 0) and not fits(0, limit + 1, limit)


def _res_usage(tool: str) -> dict[tuple[str, str, str], int]:
    """Static shared bytes per (kernel, float|double, sm_XX) from cuobjdump -res-usage."""
    text = subprocess.run([tool, "-res-usage", _C().__file__], capture_output=True, text=True,
                          check=True).stdout
    out, arch = {}, None
    fn = None
    for line in text.splitlines():
        m = re.search(r"arch = (sm_\d+)", line)
        if m:
            arch = m.group(1)
        m = re.search(r"Function (\S+):", line)
        if m:
            fn = m.group(1)
        m = re.search(r"SHARED:(\d+)", line)
        if m and fn:
            for kernel in ("upsample_minmax_kernel", "map_minmax_kernel"):
                for t, code in (("float", "IfE"), ("double", "IdE")):
                    if f"{kernel}{code}" in fn:
                        out[(kernel, t, arch)] = int(m.group(1))
            fn = None
    return out


@needs_cuda_build
def test_staging_kernels_have_static_shared_memory():
    # What the launchers must count (they read it from cudaFuncGetAttributes at
    # run time, which needs a GPU): the kernels that stage a map in dynamic
    # shared memory also hold a static reduction array of 32 values, and the
    # static size differs by architecture.
    tool = _find_cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not found (/usr/local/cuda/bin, PATH, CUDA_HOME, triton)")
    usage = _res_usage(tool)
    for kernel in ("upsample_minmax_kernel", "map_minmax_kernel"):
        for t, size in (("float", 4), ("double", 8)):
            for arch in SM:
                assert usage.get((kernel, t, arch), 0) >= 32 * size, (kernel, t, arch, usage)


# --- (c) no GPU: clean errors, never a crash ------------------------------------


@needs_cuda_build
@pytest.mark.skipif(not _no_gpu(), reason="a GPU is present")
def test_device_count_is_zero_without_gpu():
    assert _C().cuda_device_count() == 0


_CALL_WITHOUT_GPU = textwrap.dedent("""
    import fastcam._C as C
    for name, args in [
        ("cam_combine_forward",
         (0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, True, True, False, 0, "float32")),
        ("cam_combine_backward",
         (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, True, True, False, 0, "float64")),
        ("mask_blend",
         (0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 8, 8, 2, 2, 0.0, False, 0, "float32")),
        ("rank_reveal", (0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 64, 0, "float64")),
        ("adaptive_kde", (0, 0, 0, 0, 0, 42 * 8, 1, 8, 8, 10, 30, 1e-5, 0)),
    ]:
        try:
            getattr(C.cuda, name)(*args)
        except RuntimeError as e:
            print(name, "RuntimeError:", e)
        else:
            print(name, "returned")
    print("still alive")
""")


@needs_cuda_build
@pytest.mark.skipif(not _no_gpu(), reason="a GPU is present")
def test_cuda_call_without_gpu_raises_runtime_error():
    # In a subprocess: a crash (abort, segfault) must show as a failed test, not
    # take pytest down.
    p = subprocess.run([sys.executable, "-c", _CALL_WITHOUT_GPU], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert lines[-1] == "still alive", p.stdout
    for name in ("cam_combine_forward", "cam_combine_backward", "mask_blend", "rank_reveal",
                 "adaptive_kde"):
        line = next(x for x in lines if x.startswith(name + " "))
        assert "RuntimeError: fastcam CUDA kernels: no usable CUDA device" in line, line


# --- adaptive_kde (one thread per channel, csrc/common/adaptive_kde_math.h) -----

@needs_cuda_build
def test_adaptive_kde_cuda_entry_points_and_scratch_size():
    C = _C()
    assert callable(getattr(C.cuda, "adaptive_kde", None))
    # adaptive_kde_scratch_size(L, M) = (3M + 12) L doubles per channel
    assert C.cuda.adaptive_kde_scratch_size(49, 10) == 42 * 49
    assert C.cuda.adaptive_kde_scratch_size(1000, 2) == 18 * 1000


# --- (d) the test suite refuses an unbuilt fastcam ------------------------------


def test_suite_fails_clearly_on_an_unbuilt_source_tree(tmp_path):
    # The checkout's Python files without fastcam._C, imported first (as from
    # the checkout root after a non-editable install): conftest.py must stop the
    # run with what to do instead of skipping every compiled test. Python runs
    # with -S, so no installed (editable) fastcam is found, and the
    # site-packages directories come back through PYTHONPATH.
    import fastcam

    src = os.path.dirname(os.path.abspath(fastcam.__file__))
    shutil.copytree(src, tmp_path / "fastcam",
                    ignore=shutil.ignore_patterns("_C*", "*.so", "*.pyd", "__pycache__"))
    (tmp_path / "tests").mkdir()
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/ops/ -> tests/
    shutil.copy(os.path.join(tests, "conftest.py"), tmp_path / "tests")
    (tmp_path / "tests" / "test_one.py").write_text("def test_one():\n    assert True\n")
    site = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    env = {k: v for k, v in os.environ.items() if k != "FASTCAM_TESTS_ALLOW_UNBUILT"}
    env["PYTHONPATH"] = os.pathsep.join(site)
    cmd = [sys.executable, "-S", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "has no compiled fastcam._C" in p.stdout + p.stderr, p.stdout + p.stderr
    assert str(tmp_path / "fastcam") in p.stdout + p.stderr
    env["FASTCAM_TESTS_ALLOW_UNBUILT"] = "1"
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "1 passed" in p.stdout, p.stdout + p.stderr
