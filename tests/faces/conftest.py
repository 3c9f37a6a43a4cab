"""tests/faces: scikit-image's photographs must be there (a dev dependency), and MTCNN runs in one thread."""

import pytest

pytest.importorskip("skimage", reason="scikit-image ships the photographs with faces: pip install -e '.[dev]'")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """MTCNN in one thread: on small frames more threads gain little, and on a busy machine they wait on each other
    (ten times slower seen with two threads on two shared cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
