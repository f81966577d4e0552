"""The streaming engine (fastcam.perturbation.masked_scores / reveal_scores):
its chunking, and its scores against the model on eagerly built copies; and
distinct_masks, the classes of equal masked copies (against brute force)."""
import pytest
import torch
from torch import nn

from fastcam.kernels import reference
from fastcam.ops import mask_blend
from fastcam.perturbation import class_score, masked_scores, reveal_scores
from fastcam.perturbation.distinct_masks import distinct_masks


def _norm():
    return torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.3, 0.25])


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


# -- distinct_masks: which copies are equal, exactly ----------------------------------

def _copy_bytes(x, maps, index, **options):
    copies = mask_blend(x, maps, index, **options)
    return [c.numpy().tobytes() for c in copies]


@pytest.mark.parametrize("eps, align_corners", [(0.0, False), (1e-8, True)])
def test_distinct_masks_classes_are_the_equal_copies(eps, align_corners):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 41, 41)
    r = torch.rand(4, 5, 5)
    full = lambda c: torch.full((5, 5), c)                      # noqa: E731
    # image 0: r0 r1 r0 0 6.0 -0.0 1.7 r1 | image 1: r0 0 2.5 r2 r3 r2 6.0
    maps = torch.stack([r[0], r[1], r[0], full(0.0), full(6.0), full(-0.0), full(1.7), r[1],
                        r[0], full(0.0), full(2.5), r[2], r[3], r[2], full(6.0)])
    index = torch.tensor([0] * 8 + [1] * 7)
    mean, std = _norm()
    options = dict(normalize=(mean, std), eps=eps, align_corners=align_corners)
    classes = distinct_masks(x, maps, index, chunk_size=3, **options)
    reps, inverse = classes
    # the representatives are the first map of each class, in increasing order
    assert reps.tolist() == sorted(reps.tolist())
    assert (reps[inverse] <= torch.arange(len(maps))).all()
    assert (inverse[reps] == torch.arange(len(reps))).all()
    # maps share a class exactly when the op builds bitwise-equal copies of them
    kwargs = dict(mean=mean, std=std, eps=eps, align_corners=align_corners)
    copies = _copy_bytes(x, maps, index, **kwargs)
    keys = [(int(i), c) for i, c in zip(index, copies)]
    for a in range(len(maps)):
        for b in range(len(maps)):
            assert (inverse[a] == inverse[b]) == (keys[a] == keys[b]), (a, b)
    # known answer: 6.0 and 1.7 (5×5 → 41×41) stay constant only with align_corners=False
    if align_corners:
        assert len(reps) == 5 + 5        # r0 r1 {0,-0} 6.0 1.7 | r0 {0,2.5} r2 r3 6.0
    else:
        assert len(reps) == 3 + 4        # r0 r1 {0,-0,6,1.7} | r0 {0,2.5,6} r2 r3


def test_distinct_masks_with_baseline_and_spread_scores():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    model = BatchRecorder(net.eval())
    x, baseline = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12, 12)
    r = torch.rand(3, 3, 3)
    maps = torch.stack([r[0], torch.zeros(3, 3), r[0], torch.full((3, 3), 0.5), r[1],
                        r[2], r[2], torch.zeros(3, 3)])
    index = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    reps, inverse = distinct_masks(x, maps, index, chunk_size=2, baseline=baseline)
    assert reps.tolist() == [0, 1, 4, 5, 7]
    assert inverse.tolist() == [0, 1, 0, 1, 2, 3, 3, 4]
    score = class_score(torch.tensor([1, 3]))
    every = masked_scores(model, x, maps, index, score, chunk_size=3, baseline=baseline)
    model.sizes.clear()
    once = masked_scores(model, x, maps[reps], index[reps], score, chunk_size=3,
                         baseline=baseline)[inverse]
    assert model.sizes == [3, 2]
    torch.testing.assert_close(once, every, atol=1e-6, rtol=0)


def test_distinct_masks_edge_cases():
    x = torch.rand(1, 3, 8, 8)
    reps, inverse = distinct_masks(x, torch.empty(0, 2, 2), torch.empty(0, dtype=torch.long))
    assert reps.shape == inverse.shape == (0,)
    reps, inverse = distinct_masks(x, torch.zeros(4, 2, 2, dtype=torch.float64),
                                   torch.zeros(4, dtype=torch.long))
    assert reps.tolist() == [0] and inverse.tolist() == [0] * 4
    with pytest.raises(ValueError, match="chunk_size"):
        distinct_masks(x, torch.rand(2, 2, 2), torch.zeros(2, dtype=torch.long), chunk_size=0)
