"""The streaming engine (fastcam.perturbation.masked_scores / reveal_scores):
its chunking, and its scores against the model on eagerly built copies."""
import torch
from torch import nn

from fastcam.kernels import reference
from fastcam.perturbation import class_score, masked_scores, reveal_scores


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
