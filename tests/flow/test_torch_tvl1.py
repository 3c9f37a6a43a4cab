"""Inside the torch engine: the network median is cv2.medianBlur bit for bit, converged pairs leaving the batch change
no pair's flow, and torch.compile falls back to eager."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from flow.engines import torch_tvl1
from flow.tvl1 import TVL1Params, median_network

REPO = Path(__file__).resolve().parents[2]


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
        np.random.default_rng(0).integers(0, 2, (200_000, n))
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


def _mixed_pairs(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Static and moving pairs of one smooth texture, so that pairs converge after different numbers of iterations."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (h + 16, w + 16)).astype(np.float32), (0, 0), 2.0)
    big = (big - big.min()) / (big.max() - big.min()) * 255
    prev, nxt = [], []
    for shift in [0, 0.3, 0, 1.5, 3.0, 0, 0.7, 2.2]:
        move = np.float32([[1, 0, shift], [0, 1, shift / 2]])
        moved = cv2.warpAffine(big, move, big.shape[::-1], flags=cv2.INTER_CUBIC)
        prev.append(big[8:-8, 8:-8])
        nxt.append(moved[8:-8, 8:-8])
    return np.stack(prev).round().astype(np.uint8), np.stack(nxt).round().astype(np.uint8)


def _flow_and_batch_sizes(engine: torch_tvl1.TorchTVL1, prev, nxt) -> tuple[np.ndarray, list[int]]:
    sizes, step = [], engine._step
    engine._step = lambda *args: sizes.append(len(args[1])) or step(*args)  # args[1]: the error, one per pair
    return engine.calc_pairs(prev, nxt), sizes


@pytest.mark.parametrize(("extra", "check_every"), [({}, 1), ({"gamma": 0.1, "median_filtering": 3}, 3), ({}, 8)])
def test_converged_pairs_leave_the_batch_with_the_same_flow(one_torch_thread, extra, check_every):
    """Pairs leave after every iteration (the CPU's default), every few iterations, or at outer loops only."""
    prev, nxt = _mixed_pairs(24, 32)
    params = TVL1Params(nscales=2, warps=2, outer_iterations=6, inner_iterations=8, **extra)
    masked = torch_tvl1.TorchTVL1(params, "cpu", drop_converged=False)
    masked.check_every = params.inner_iterations  # the whole batch iterates until its last pair has converged
    dropping = torch_tvl1.TorchTVL1(params, "cpu")
    dropping.check_every = check_every
    flow, masked_sizes = _flow_and_batch_sizes(masked, prev, nxt)
    dropped, sizes = _flow_and_batch_sizes(dropping, prev, nxt)
    assert set(masked_sizes) == {8}
    assert len(set(sizes) - {8}) >= 2, f"pairs should leave at different times, batch sizes seen: {set(sizes)}"
    assert sum(sizes) < sum(masked_sizes)
    assert torch.equal(torch.from_numpy(dropped), torch.from_numpy(flow))
    assert np.abs(dropped).max() > 0.5  # the moving pairs moved


def test_stopping_error_of_a_pair_does_not_depend_on_the_batch():
    """One pair alone gets the error it gets in a batch, with two threads too (where one H x W sum would not).

    In a child process: with OMP_NUM_THREADS=1 in the environment, torch.set_num_threads(2) stays serial.
    """
    script = textwrap.dedent("""
        import torch
        from flow.engines.torch_tvl1 import tvl1_step
        torch.set_num_threads(2)
        g = torch.Generator().manual_seed(2)
        r = lambda: torch.randn(4, 256, 340, generator=g) * torch.exp(torch.randn(4, 256, 340, generator=g))
        u, warped, dual = (r(), r(), None), tuple(r() for _ in range(4)), tuple(r() for _ in range(4)) + (None, None)
        coef, active, error = (0.045, 0.3, 0.25 / 0.3, 0.0), torch.ones(4, dtype=torch.bool), torch.full((4,), 1e9)
        batch = tvl1_step(active, error, warped, u, dual, coef)[0]
        one = lambda ts, i: tuple(None if t is None else t[i : i + 1] for t in ts)
        alone = [tvl1_step(active[:1], error[:1], one(warped, i), one(u, i), one(dual, i), coef)[0] for i in range(4)]
        print(all(torch.equal(a, batch[i : i + 1]) for i, a in enumerate(alone)))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.stdout.strip() == "True", proc.stdout + proc.stderr
