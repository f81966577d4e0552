import os

# Triton kernels run on CPU tensors through the interpreter; this must be set
# before triton or fastcam's Triton kernels are imported.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_backend():
    import fastcam

    torch.manual_seed(0)
    previous = fastcam.get_backend()
    yield
    fastcam.set_backend(previous)
