import os

import torch

# Without a GPU, Triton kernels run on CPU tensors through the interpreter; with
# one they are compiled and run on CUDA tensors (the parity harness then runs
# the triton backend on the GPU). TRITON_INTERPRET must be decided before triton
# or fastcam's Triton kernels are imported; an explicit TRITON_INTERPRET wins.
HAS_GPU = torch.cuda.is_available()
if not HAS_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def _check_the_imported_fastcam() -> None:
    """Fail, with what to do, when the fastcam being tested has no fastcam._C:
    typically the unbuilt source tree shadowing the installed package (pytest
    from the checkout root after a non-editable ``pip install .``), which would
    silently skip every C++ and CUDA test. FASTCAM_TESTS_ALLOW_UNBUILT=1 runs the
    rest anyway."""
    import fastcam
    from fastcam._ext import extension_available

    if extension_available() or os.environ.get("FASTCAM_TESTS_ALLOW_UNBUILT") == "1":
        return
    where = os.path.dirname(os.path.abspath(fastcam.__file__))
    raise pytest.UsageError(
        f"fastcam imported from {where} has no compiled fastcam._C, so every C++, CUDA "
        "and GPU test would be skipped. Build it where it is imported from: "
        "`pip install -e .` in the checkout (or run pytest from outside the checkout "
        "with `--import-mode=importlib` to test a non-editable install). Set "
        "FASTCAM_TESTS_ALLOW_UNBUILT=1 to run the remaining tests anyway.")


def pytest_configure(config):
    _check_the_imported_fastcam()


@pytest.fixture(autouse=True)
def _seed_and_backend():
    import fastcam

    torch.manual_seed(0)
    previous = fastcam.get_backend()
    yield
    fastcam.set_backend(previous)
