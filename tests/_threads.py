"""torch's intra-op thread count, set for a block (tests/conftest.py's ``one_thread``)."""
import contextlib

import torch


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to ``n`` for the duration (restored on exit)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
