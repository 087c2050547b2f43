"""Fixtures of the core tests."""
import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run torch single-threaded: the tensors here are small, and on a shared 2-core machine extra
    OpenMP intra-op threads only contend (10-30x slower)."""
    import torch  # lazy: collection decides the torch/open3d import order, not this file

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
