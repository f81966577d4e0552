"""mask_blend / rank_reveal: the C++ kernels and the ops against the eager
reference, and the streaming engine's chunking."""
import pytest
import torch
from torch import nn

import fastcam
from fastcam.kernels import cpu, reference
from fastcam.ops import mask_blend, rank_reveal
from fastcam.perturbation import class_score, masked_scores, reveal_scores

CASES = [  # B, C, H, W, h, w, n
    (1, 3, 17, 13, 3, 4, 5),
    (2, 1, 8, 8, 2, 2, 7),
    (2, 3, 32, 32, 7, 7, 3),
    (1, 3, 5, 5, 5, 5, 1),       # same resolution: no interpolation
]


def _norm():
    return torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.3, 0.25])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("with_baseline", [False, True])
@pytest.mark.parametrize("with_norm", [False, True])
def test_mask_blend_cpu_matches_reference(case, dtype, align_corners, with_baseline, with_norm):
    B, C, H, W, h, w, n = case
    x = torch.rand(B, C, H, W, dtype=dtype)
    base = torch.rand(B, C, H, W, dtype=dtype) if with_baseline else None
    maps = torch.randn(n, h, w, dtype=dtype)
    maps[0] = 0.0                     # a dead channel: a constant map masks everything
    index = torch.randint(0, B, (n,))
    mean, std = (t[:C].to(dtype) for t in _norm()) if with_norm else (None, None)
    for eps in (0.0, 1e-8):
        got = cpu.mask_blend(x, maps, index, base, mean, None if std is None else 1 / std, eps,
                             align_corners)
        ref = reference.mask_blend(x, maps, index, base, mean, std, eps, align_corners)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(got, ref, atol=tol, rtol=tol)
    plain = reference.mask_blend(x, maps[:1], index[:1], base, None, None)
    expected = torch.zeros_like(plain) if base is None else base[index[:1]]
    torch.testing.assert_close(plain, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("src_dst", ["x,None", "None,x", "x,base"])
@pytest.mark.parametrize("with_norm", [False, True])
def test_rank_reveal_cpu_matches_reference(dtype, src_dst, with_norm):
    B, C, H, W = 2, 3, 9, 7
    x = torch.rand(B, C, H, W, dtype=dtype)
    base = torch.rand(B, C, H, W, dtype=dtype)
    src, dst = {"x,None": (x, None), "None,x": (None, x), "x,base": (x, base)}[src_dst]
    rank = torch.stack([torch.randperm(H * W) for _ in range(B)])
    counts = torch.tensor([0, 1, 30, H * W, H * W + 5, 17])
    index = torch.tensor([0, 1, 1, 0, 1, 0])
    mean, std = (t.to(dtype) for t in _norm()) if with_norm else (None, None)
    got = cpu.rank_reveal(rank, counts, index, src, dst, mean, None if std is None else 1 / std)
    ref = reference.rank_reveal(rank, counts, index, src, dst, mean, std)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-6)


def test_rank_reveal_reveals_the_first_pixels():
    x = torch.arange(1.0, 7.0).view(1, 1, 2, 3)
    rank = torch.tensor([[5, 4, 3, 2, 1, 0]])             # reveal order: last pixel first
    out = rank_reveal(rank, torch.tensor([2]), torch.tensor([0]), x, None)
    assert out.flatten().tolist() == [0, 0, 0, 0, 5, 6]


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_ops_agree_across_backends(backend):
    fastcam.set_backend(backend)
    x = torch.rand(2, 3, 16, 16)
    maps = torch.randn(4, 4, 4)
    index = torch.tensor([0, 1, 0, 1])
    mean, std = _norm()
    out = mask_blend(x, maps, index, mean=mean, std=std)
    torch.testing.assert_close(out, reference.mask_blend(x, maps, index, None, mean, std),
                               atol=1e-6, rtol=1e-5)


def test_op_errors():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="index is required"):
        mask_blend(x, torch.rand(3, 2, 2))
    with pytest.raises(ValueError, match="one entry per map"):
        mask_blend(x, torch.rand(3, 2, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="rank must be"):
        rank_reveal(torch.zeros(2, 10, dtype=torch.long), torch.tensor([1]), torch.tensor([0]), x, None)
    with pytest.raises(ValueError, match="both be None"):
        rank_reveal(torch.zeros(2, 64, dtype=torch.long), torch.tensor([1]), torch.tensor([0]), None, None)


class BatchRecorder(nn.Module):
    """Wraps a model and records the batch sizes it sees."""

    def __init__(self, model):
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return self.model(x)


def test_engine_streams_chunks_and_matches_eager():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    model = BatchRecorder(net.eval())
    x = torch.rand(2, 3, 12, 12)
    maps = torch.rand(11, 3, 3)
    index = torch.tensor([0] * 6 + [1] * 5)
    targets = torch.tensor([1, 4])
    mean, std = _norm()
    got = masked_scores(model, x, maps, index, class_score(targets, "probability"),
                        chunk_size=4, normalize=(mean, std))
    assert model.sizes == [4, 4, 3]                      # never more than one chunk
    copies = reference.mask_blend(x, maps, index, None, mean, std)
    with torch.no_grad():
        expected = net(copies).softmax(1)[torch.arange(11), targets[index]]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)

    rank = torch.stack([torch.randperm(144) for _ in range(2)])
    counts = torch.tensor([0, 50, 144, 10])
    idx = torch.tensor([0, 0, 1, 1])
    model.sizes.clear()
    got = reveal_scores(model, rank, counts, idx, x, None, class_score(targets), chunk_size=3)
    assert model.sizes == [3, 1]
    with torch.no_grad():
        expected = net(reference.rank_reveal(rank, counts, idx, x, None))[torch.arange(4), targets[idx]]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_index_out_of_range():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="index must lie"):
        mask_blend(x, torch.rand(1, 2, 2), torch.tensor([2]))
    with pytest.raises(ValueError, match="index must lie"):
        rank_reveal(torch.zeros(2, 64, dtype=torch.long), torch.tensor([1]), torch.tensor([-1]), x, None)
