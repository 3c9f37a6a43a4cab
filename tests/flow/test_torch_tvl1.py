"""Inside the torch engine: the network median is cv2.medianBlur bit for bit, and torch.compile falls back to eager."""

import cv2
import numpy as np
import pytest
import torch

from flow.engines import torch_tvl1
from flow.tvl1 import median_network


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("shape", [(2, 37, 51), (1, 2, 3), (3, 1, 9)])  # frames smaller than the window too
def test_median_blur_is_opencv_median_blur(k, shape):
    u = torch.from_numpy(np.random.default_rng(k).normal(0, 3, shape).astype(np.float32))
    u[0, 0, : min(3, shape[2])] = 1.5  # ties
    want = np.stack([cv2.medianBlur(x, k) for x in u.numpy()])
    np.testing.assert_array_equal(torch_tvl1.median_blur(u, k).numpy(), want)


def test_masked_median_changes_only_the_kept_pairs():
    u1, u2 = torch.randn(3, 8, 9), torch.randn(3, 8, 9)
    keep = torch.tensor([True, False, True])[:, None, None]
    m1, m2 = torch_tvl1.masked_median(keep, u1, u2, 5)
    assert torch.equal(m1[1], u1[1]) and torch.equal(m2[1], u2[1])
    assert torch.equal(m1[0], torch_tvl1.median_blur(u1, 5)[0]) and torch.equal(m2[2], torch_tvl1.median_blur(u2, 5)[2])


@pytest.mark.parametrize("n", [9, 25])
def test_median_network_selects_the_median_of_every_input(n):
    """0-1 principle: a comparator network that selects the median of every 0/1 input does so for any input."""
    bits = (np.arange(1 << n, dtype=np.int64)[:, None] >> np.arange(n)) & 1 if n <= 9 else \
        np.random.default_rng(0).integers(0, 2, (200_000, n))  # fmt: skip
    v = bits.astype(np.int8).T.copy()
    for a, b in median_network(n):
        v[a], v[b] = np.minimum(v[a], v[b]), np.maximum(v[a], v[b])
    np.testing.assert_array_equal(v[n // 2], np.sort(bits, axis=1)[:, n // 2])
    assert len(median_network(25)) == 113


def test_compile_failure_falls_back_to_eager_once(monkeypatch):
    calls = []

    def broken_compile(fn, **kwargs):
        def compiled(*args):
            calls.append("compiled")
            raise RuntimeError("no C compiler")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    add = torch_tvl1._compiled_or_eager(lambda a, b: a + b)
    with pytest.warns(UserWarning, match=r"torch.compile failed \(RuntimeError: no C compiler\); running eager"):
        assert add(1, 2) == 3
    assert add(3, 4) == 7 and calls == ["compiled"]  # the second call goes straight to eager
