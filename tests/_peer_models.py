"""What the peer-parity test files share: torchvision networks in random init (seeded,
eval mode, one instance per process: the tests never change them) and the autouse
fixture that silences the peers' UserWarnings."""
import functools
import warnings

import pytest
import torch
import torchvision


@functools.lru_cache(maxsize=None)
def random_model(name: str) -> torch.nn.Module:
    """``torchvision.models.<name>(weights=None)`` drawn after ``torch.manual_seed(0)``, in eval mode."""
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval()


@pytest.fixture(autouse=True)
def quiet_peers():
    """The peers (and fastcam's delegation, target-layer notes) warn freely; the tests
    assert on maps, not on those warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield
