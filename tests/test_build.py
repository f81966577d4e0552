"""The CUDA part of fastcam._C: what was compiled (device code for sm_80 and
sm_90), that it fails cleanly without a GPU, and, where a GPU is available, the
CUDA kernels against the reference."""
from __future__ import annotations

import glob
import itertools
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from fastcam._ext import extension_available, load_extension
from fastcam.kernels import reference as ref

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
    assert _C().cuda_architectures == "80;90"


@needs_cuda_build
def test_cuda_entry_points_exist():
    for name in ("cam_combine_forward_cuda", "cam_combine_backward_cuda", "mask_blend_cuda",
                 "rank_reveal_cuda", "cuda_device_count"):
        assert callable(getattr(_C(), name, None)), name


@needs_cuda_build
def test_device_code_for_sm80_and_sm90():
    tool = _find_cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not found (/usr/local/cuda/bin, PATH, CUDA_HOME, triton)")
    so = _C().__file__
    elf = subprocess.run([tool, "--list-elf", so], capture_output=True, text=True, check=True)
    archs = set(re.findall(r"\.(sm_\d+)\.cubin", elf.stdout))
    assert {"sm_80", "sm_90"} <= archs, elf.stdout
    # PTX too, so GPUs newer than sm_90 can JIT-compile the kernels.
    ptx = subprocess.run([tool, "--list-ptx", so], capture_output=True, text=True, check=True)
    assert "sm_90" in set(re.findall(r"\.(sm_\d+)\.ptx", ptx.stdout)), ptx.stdout


@needs_cuda_build
def test_masked_inputs_kernels_in_both_cubins():
    tool = _find_cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not found (/usr/local/cuda/bin, PATH, CUDA_HOME, triton)")
    text = subprocess.run([tool, "--list-text", _C().__file__], capture_output=True, text=True,
                          check=True).stdout
    for kernel in ("map_minmax_kernel", "mask_blend_kernel", "rank_reveal_kernel"):
        for t in "fd":  # float, double
            for arch in ("sm_80", "sm_90"):
                assert re.search(rf"masked_inputs_cu\w*{kernel}I{t}E\w*\.{arch}\.elf", text), \
                    (kernel, t, arch)


# --- (b) no GPU: clean errors, never a crash ------------------------------------


@needs_cuda_build
@pytest.mark.skipif(not _no_gpu(), reason="a GPU is present")
def test_device_count_is_zero_without_gpu():
    assert _C().cuda_device_count() == 0


_CALL_WITHOUT_GPU = textwrap.dedent("""
    import fastcam._C as C
    for name, args in [
        ("cam_combine_forward_cuda",
         (0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, True, True, False, 0, "float32")),
        ("cam_combine_backward_cuda",
         (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, True, True, False, 0, "float64")),
        ("mask_blend_cuda",
         (0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 8, 8, 2, 2, 0.0, False, 0, "float32")),
        ("rank_reveal_cuda", (0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 64, 0, "float64")),
    ]:
        try:
            getattr(C, name)(*args)
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
    for name in ("cam_combine_forward_cuda", "cam_combine_backward_cuda", "mask_blend_cuda",
                 "rank_reveal_cuda"):
        line = next(x for x in lines if x.startswith(name + " "))
        assert "RuntimeError: fastcam CUDA kernels: no usable CUDA device" in line, line


# --- (c) on a GPU: the CUDA kernels against the reference ----------------------

needs_gpu = pytest.mark.skipif(not (_cuda_compiled() and torch.cuda.is_available()),
                               reason="needs a CUDA GPU and a build with CUDA kernels")

# (B, G, K, h, w, H, W): ResNet-like 7x7 -> 224, odd sizes, G > 1, low-res
# sizes of 1 and 2, downsampling, identity, a low-res map too big for shared
# memory (float64), and a single output pixel.
SHAPES = [
    (2, 1, 64, 7, 7, 224, 224),
    (3, 4, 6, 5, 6, 17, 13),
    (1, 2, 3, 2, 2, 8, 8),
    (1, 3, 5, 1, 4, 6, 9),
    (2, 2, 4, 9, 7, 5, 4),
    (1, 1, 3, 4, 4, 4, 4),
    (1, 1, 3, 90, 80, 23, 31),
    (2, 3, 4, 6, 5, 1, 1),
]
FLAGS = list(itertools.product([True, False], [True, False], [False, True]))


def _inputs(shape, dtype, device="cuda"):
    B, G, K, h, w, H, W = shape
    A = torch.randn(B, K, h, w, dtype=dtype, device=device)
    wt = torch.randn(B, G, K, dtype=dtype, device=device)
    go = torch.randn(B, G, H, W, dtype=dtype, device=device)
    return A, wt, go


@needs_gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu,normalize,align_corners", FLAGS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_matches_reference(shape, relu, normalize, align_corners, dtype):
    from fastcam.kernels import cuda as kcuda

    B, G, K, h, w, H, W = shape
    A, wt, go = _inputs(shape, dtype)
    out, s, stats = kcuda.cam_combine_forward(A, wt, H, W, relu, normalize, align_corners)
    torch.cuda.synchronize()
    # The reference in float64 from the same inputs.
    r_out, r_s, r_stats = ref.cam_combine_with_stats(A.double(), wt.double(), (H, W), relu,
                                                     normalize, align_corners)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s.double(), r_s, **tol)
    torch.testing.assert_close(stats.double(), r_stats, **tol)
    torch.testing.assert_close(out.double(), r_out, **tol)
    if normalize:  # the maximum of every non-constant map is exactly 1
        assert ((out == 1).flatten(2).any(-1) | (stats[..., 1] == 0)).all()

    gA, gw = kcuda.cam_combine_backward(go, out, A, wt, s, stats, relu, normalize,
                                        align_corners)
    torch.cuda.synchronize()
    r_gA, r_gw = ref.cam_combine_backward(go.double(), A.double(), wt.double(), (H, W), relu,
                                          normalize, align_corners)
    g_tol = tol if dtype == torch.float64 else dict(rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(gA.double(), r_gA, **g_tol)
    torch.testing.assert_close(gw.double(), r_gw, **g_tol)


@needs_gpu
def test_cuda_matches_cpu_kernels():
    from fastcam.kernels import cpu as kcpu
    from fastcam.kernels import cuda as kcuda

    A, wt, go = _inputs((3, 2, 32, 7, 7, 64, 48), torch.float64)
    flags = (True, True, False)
    o, s, st = kcuda.cam_combine_forward(A, wt, 64, 48, *flags)
    gA, gw = kcuda.cam_combine_backward(go, o, A, wt, s, st, *flags)
    Ac, wc, gc = A.cpu(), wt.cpu(), go.cpu()
    oc, sc, stc = kcpu.cam_combine_forward(Ac, wc, 64, 48, *flags)
    gAc, gwc = kcpu.cam_combine_backward(gc, oc, Ac, wc, sc, stc, *flags)
    for x, y in [(o, oc), (s, sc), (st, stc), (gA, gAc), (gw, gwc)]:
        torch.testing.assert_close(x.cpu(), y, rtol=1e-10, atol=1e-12)


@needs_gpu
def test_constant_map_is_zero_with_zero_gradient():
    from fastcam.kernels import cuda as kcuda

    A = torch.ones(2, 3, 4, 4, dtype=torch.float64, device="cuda")
    wt = torch.ones(2, 1, 3, dtype=torch.float64, device="cuda")
    out, s, st = kcuda.cam_combine_forward(A, wt, 9, 9, True, True, False)
    assert (out == 0).all() and (st[..., 1] == 0).all()
    gA, gw = kcuda.cam_combine_backward(torch.randn_like(out), out, A, wt, s, st, True, True,
                                        False)
    assert (gA == 0).all() and (gw == 0).all()


@needs_gpu
def test_cuda_backend_through_op_on_side_stream():
    import fastcam
    from fastcam.ops.cam_combine import cam_combine

    A, wt, _ = _inputs((2, 3, 16, 7, 7, 33, 29), torch.float32)
    A.requires_grad_(True)
    wt.requires_grad_(True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with fastcam.use_backend("cuda"), torch.cuda.stream(side):
        out = cam_combine(A, wt, (33, 29))
        out.square().sum().backward()
    torch.cuda.synchronize()
    A_ = A.detach().double().requires_grad_(True)
    w_ = wt.detach().double().requires_grad_(True)
    r = ref.cam_combine(A_, w_, (33, 29))
    r.square().sum().backward()
    torch.testing.assert_close(out.double(), r, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(A.grad.double(), A_.grad, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(wt.grad.double(), w_.grad, rtol=2e-3, atol=2e-3)


# --- (d) on a GPU: mask_blend / rank_reveal against the reference --------------

# (B, C, H, W, h, w, n): odd sizes, a single channel, no interpolation, a 1-high
# map, downsampling, a map too big for shared memory (float64), a single output
# pixel, and ResNet-like 7x7 -> 224 with many maps. No 1x1 maps: their
# upsampling is constant only up to rounding, and (u - min)/(max - min) of that
# rounding noise differs between implementations (the reference's included).
MB_CASES = [
    (1, 3, 17, 13, 3, 4, 5),
    (2, 1, 8, 8, 2, 2, 7),
    (1, 3, 5, 5, 5, 5, 1),
    (3, 2, 9, 40, 1, 2, 4),
    (1, 2, 6, 3, 9, 11, 2),
    (2, 3, 23, 31, 100, 90, 2),
    (1, 3, 1, 1, 3, 3, 2),
    (2, 3, 224, 224, 7, 7, 40),
]


def _mask_blend_inputs(case, dtype, with_baseline, with_norm):
    B, C, H, W, h, w, n = case
    x = torch.rand(B, C, H, W, dtype=dtype, device="cuda")
    base = torch.rand(B, C, H, W, dtype=dtype, device="cuda") if with_baseline else None
    maps = torch.randn(n, h, w, dtype=dtype, device="cuda")
    maps[0] = 0.0                     # a dead channel: a constant map masks everything
    index = torch.randint(0, B, (n,), device="cuda")
    if with_norm:
        mean = torch.rand(C, dtype=dtype, device="cuda")
        std = torch.rand(C, dtype=dtype, device="cuda") + 0.2
    else:
        mean = std = None
    return x, base, maps, index, mean, std


@needs_gpu
@pytest.mark.parametrize("case", MB_CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("with_baseline,with_norm", [(False, False), (True, True),
                                                     (True, False), (False, True)])
def test_mask_blend_cuda_matches_reference(case, dtype, align_corners, with_baseline, with_norm):
    from fastcam.kernels import cuda as kcuda

    x, base, maps, index, mean, std = _mask_blend_inputs(case, dtype, with_baseline, with_norm)
    inv_std = None if std is None else 1 / std
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    for eps in (0.0, 1e-8):
        got = kcuda.mask_blend(x, maps, index, base, mean, inv_std, eps, align_corners)
        torch.cuda.synchronize()
        d = lambda t: None if t is None else t.double()  # noqa: E731
        want = ref.mask_blend(x.double(), maps.double(), index, d(base), d(mean), d(std), eps,
                              align_corners)
        assert got.shape == want.shape and got.dtype == dtype
        torch.testing.assert_close(got.double(), want, **tol)


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("src_dst", ["x,None", "None,x", "x,base", "None,None"])
@pytest.mark.parametrize("with_norm", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 9, 7), (1, 1, 1, 1), (3, 3, 224, 224)])
def test_rank_reveal_cuda_matches_reference(dtype, src_dst, with_norm, shape):
    from fastcam.kernels import cuda as kcuda

    B, C, H, W = shape
    HW = H * W
    x = torch.rand(B, C, H, W, dtype=dtype, device="cuda")
    base = torch.rand(B, C, H, W, dtype=dtype, device="cuda")
    src, dst = {"x,None": (x, None), "None,x": (None, x), "x,base": (x, base),
                "None,None": (None, None)}[src_dst]
    rank = torch.stack([torch.randperm(HW, device="cuda") for _ in range(B)])
    counts = torch.tensor([0, 1, HW // 2, HW, HW + 5, -1, HW // 3], device="cuda")
    index = torch.randint(0, B, (len(counts),), device="cuda")
    if with_norm:
        mean = torch.rand(C, dtype=dtype, device="cuda")
        std = torch.rand(C, dtype=dtype, device="cuda") + 0.2
    else:
        mean = std = None
    if src is None and dst is None:  # the kernel allows it (zeros); the wrapper does not
        with pytest.raises(ValueError):
            kcuda.rank_reveal(rank, counts, index, src, dst, mean,
                              None if std is None else 1 / std)
        return
    got = kcuda.rank_reveal(rank, counts, index, src, dst, mean, None if std is None else 1 / std)
    torch.cuda.synchronize()
    want = ref.rank_reveal(rank, counts, index, src, dst, mean, std)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got, want, **tol)


@needs_gpu
def test_masked_inputs_cuda_match_cpu_kernels():
    from fastcam.kernels import cpu as kcpu
    from fastcam.kernels import cuda as kcuda

    x, base, maps, index, mean, std = _mask_blend_inputs((3, 3, 40, 36, 7, 6, 9),
                                                         torch.float64, True, True)
    g = kcuda.mask_blend(x, maps, index, base, mean, 1 / std, 1e-8, False)
    c = kcpu.mask_blend(x.cpu(), maps.cpu(), index.cpu(), base.cpu(), mean.cpu(),
                        (1 / std).cpu(), 1e-8, False)
    torch.testing.assert_close(g.cpu(), c, rtol=1e-12, atol=1e-12)
    rank = torch.stack([torch.randperm(40 * 36, device="cuda") for _ in range(3)])
    counts = torch.randint(0, 40 * 36 + 1, (9,), device="cuda")
    g = kcuda.rank_reveal(rank, counts, index, x, base, mean, 1 / std)
    c = kcpu.rank_reveal(rank.cpu(), counts.cpu(), index.cpu(), x.cpu(), base.cpu(), mean.cpu(),
                         (1 / std).cpu())
    torch.testing.assert_close(g.cpu(), c, rtol=0, atol=0)


@needs_gpu
def test_masked_inputs_cuda_empty_and_bad_arguments():
    from fastcam.kernels import cuda as kcuda

    x = torch.rand(2, 3, 8, 8, device="cuda")
    out = kcuda.mask_blend(x, x.new_empty(0, 2, 2), torch.zeros(0, dtype=torch.long,
                                                                 device="cuda"),
                           None, None, None, 0.0, False)
    assert out.shape == (0, 3, 8, 8)
    with pytest.raises(ValueError):  # maps of size 0 cannot be upsampled
        kcuda.mask_blend(x, x.new_empty(1, 0, 2), torch.zeros(1, dtype=torch.long,
                                                              device="cuda"),
                         None, None, None, 0.0, False)
    with pytest.raises(ValueError):  # one mean per channel
        kcuda.mask_blend(x, x.new_ones(1, 2, 2), torch.zeros(1, dtype=torch.long, device="cuda"),
                         None, x.new_zeros(2), x.new_ones(2), 0.0, False)
    with pytest.raises(ValueError):  # CPU tensors
        kcuda.mask_blend(x.cpu(), x.new_ones(1, 2, 2).cpu(), torch.zeros(1, dtype=torch.long),
                         None, None, None, 0.0, False)
    with pytest.raises(TypeError):  # mixed dtypes
        kcuda.rank_reveal(torch.zeros(2, 64, dtype=torch.long, device="cuda"),
                          torch.zeros(1, dtype=torch.long, device="cuda"),
                          torch.zeros(1, dtype=torch.long, device="cuda"), x, x.double(), None,
                          None)
    torch.cuda.synchronize()  # no asynchronous error was left behind


@needs_gpu
def test_masked_inputs_cuda_backend_through_ops_on_side_stream():
    import fastcam
    from fastcam.ops import mask_blend, rank_reveal

    x, base, maps, index, mean, std = _mask_blend_inputs((2, 3, 33, 29, 7, 7, 6),
                                                         torch.float32, True, True)
    rank = torch.stack([torch.randperm(33 * 29, device="cuda") for _ in range(2)])
    counts = torch.randint(0, 33 * 29 + 1, (6,), device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with fastcam.use_backend("cuda"), torch.cuda.stream(side):
        mb = mask_blend(x, maps, index, baseline=base, mean=mean, std=std, eps=1e-8)
        rr = rank_reveal(rank, counts, index, x, base, mean=mean, std=std)
    torch.cuda.synchronize()
    torch.testing.assert_close(mb, ref.mask_blend(x, maps, index, base, mean, std, 1e-8),
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(rr, ref.rank_reveal(rank, counts, index, x, base, mean, std),
                               rtol=1e-6, atol=1e-6)


# --- (e) adaptive_kde (one thread per channel, csrc/common/kde_math.h) ----------


@needs_cuda_build
def test_adaptive_kde_cuda_entry_points_and_scratch_size():
    C = _C()
    assert callable(getattr(C, "adaptive_kde_cuda", None))
    # kde_scratch_size(L, M) = (3M + 12) L doubles per channel
    assert C.adaptive_kde_scratch_size(49, 10) == 42 * 49
    assert C.adaptive_kde_scratch_size(1000, 2) == 18 * 1000


@needs_cuda_build
def test_adaptive_kde_kernels_in_both_cubins():
    tool = _find_cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not found (/usr/local/cuda/bin, PATH, CUDA_HOME, triton)")
    text = subprocess.run([tool, "--list-text", _C().__file__], capture_output=True, text=True,
                          check=True).stdout
    for kernel in ("kde_grid_kernel", "kde_channel_kernel"):
        for arch in ("sm_80", "sm_90"):
            assert re.search(rf"adaptive_kde_cu\w*{kernel}\w*\.{arch}\.elf", text), (kernel, arch)


_KDE_CALL_WITHOUT_GPU = textwrap.dedent("""
    import fastcam._C as C
    try:
        C.adaptive_kde_cuda(0, 0, 0, 0, 0, 42 * 8, 1, 8, 8, 10, 30, 1e-5, 0)
    except RuntimeError as e:
        print("adaptive_kde_cuda RuntimeError:", e)
    else:
        print("adaptive_kde_cuda returned")
    print("still alive")
""")


@needs_cuda_build
@pytest.mark.skipif(not _no_gpu(), reason="a GPU is present")
def test_adaptive_kde_cuda_without_gpu_raises_runtime_error():
    p = subprocess.run([sys.executable, "-c", _KDE_CALL_WITHOUT_GPU], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert lines[-1] == "still alive", p.stdout
    assert "RuntimeError: fastcam CUDA kernels: no usable CUDA device" in lines[0], p.stdout


def _kde_samples(n=96, S=49, seed=0):
    """Channels of the kinds the CPU tests use, plus sparse channels (coarse
    internal grids), channels without an estimate, ties and out-of-range values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, S, generator=g, dtype=torch.float64) ** 3
    x[:, 0], x[:, 1] = 0.0, 1.0
    x[::7, 5:] = 2.0                                     # sparse: coarse grids
    x[3] = 0.25                                          # all equal: no estimate
    x[4] = -1.0                                          # nothing in range
    x[5, 2:] = torch.round(x[5, 2:] * 7) / 7             # ties
    x[6, 2:] = torch.randn(S - 2, generator=g, dtype=torch.float64) * 0.5 + 0.5  # some dropped
    return x


@needs_gpu
@pytest.mark.parametrize("S,Z", [(49, None), (49, 20), (30, 49), (196, None), (100, 169)])
def test_adaptive_kde_cuda_matches_reference(S, Z):
    from fastcam.kernels import cuda as kcuda
    from fastcam.kernels import reference_kde as rkde

    x = _kde_samples(S=S)
    d, p = kcuda.adaptive_kde(x.cuda(), Z)
    torch.cuda.synchronize()
    assert d.device.type == "cuda" and d.dtype == torch.float64 and p.dtype == torch.long
    d0, p0 = rkde.adaptive_kde(x, Z)
    torch.testing.assert_close(d.cpu(), d0, rtol=1e-9, atol=1e-12)
    assert torch.equal(p.cpu(), p0)


@needs_gpu
def test_adaptive_kde_cuda_matches_cpu_kernel_and_float32_input():
    from fastcam.kernels import cpu as kcpu
    from fastcam.kernels import cuda as kcuda

    x = _kde_samples(n=300, S=64, seed=3)
    d, p = kcuda.adaptive_kde(x.cuda())
    dc, pc = kcpu.adaptive_kde(x)
    torch.testing.assert_close(d.cpu(), dc, rtol=1e-9, atol=1e-12)
    assert torch.equal(p.cpu(), pc)
    x32 = x.float()
    d, p = kcuda.adaptive_kde(x32.cuda(), 40)
    dc, pc = kcpu.adaptive_kde(x32, 40)
    torch.testing.assert_close(d.cpu(), dc, rtol=1e-9, atol=1e-12)
    assert torch.equal(p.cpu(), pc)


@needs_gpu
def test_adaptive_kde_cuda_empty_and_bad_arguments():
    from fastcam.kernels import cuda as kcuda

    d, p = kcuda.adaptive_kde(torch.rand(0, 10, device="cuda"))
    assert d.shape == (0, 10) and p.shape == (0,)
    d, p = kcuda.adaptive_kde(torch.full((3, 10), 5.0, device="cuda"))  # no estimate
    assert (d == 0).all() and (p == 0).all()
    with pytest.raises(ValueError):
        kcuda.adaptive_kde(torch.rand(3, 10, device="cuda"), 1)
    with pytest.raises(ValueError):  # CPU tensor
        kcuda.adaptive_kde(torch.rand(3, 10), 10)
    torch.cuda.synchronize()  # no asynchronous error was left behind


@needs_gpu
def test_adaptive_kde_cuda_through_op_on_side_stream():
    import fastcam
    from fastcam.kernels import reference_kde as rkde
    from fastcam.ops.adaptive_kde import adaptive_kde

    x = _kde_samples(n=24, S=49, seed=5).reshape(2, 12, 49)
    xg = x.cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with fastcam.use_backend("cuda"), torch.cuda.stream(side):
        d, p = adaptive_kde(xg, grid_size=36)
    torch.cuda.synchronize()
    assert d.shape == (2, 12, 36) and p.shape == (2, 12) and d.is_cuda
    d0, p0 = rkde.adaptive_kde(x.reshape(24, 49), 36)
    torch.testing.assert_close(d.cpu().reshape(24, 36), d0, rtol=1e-9, atol=1e-12)
    assert torch.equal(p.cpu().reshape(24), p0)
