"""Inside the numba engine: the written-out 5x5 median (flow/engines/_median5.py) is cv2.medianBlur, bit for bit."""

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("numba")

from flow.engines import _numba_iterate, _numba_median  # noqa: E402
from flow.engines._median5 import median5  # noqa: E402
from flow.tvl1 import median_network  # noqa: E402

pytestmark = pytest.mark.usefixtures("numba_tvl1")  # kernels compiled once per run (conftest)


def test_generated_median_file_is_up_to_date():
    """_median5.py is generated from `median_network(25)`: an edit of either shows here (regenerate, see its top)."""
    path = Path(_numba_median.__file__).parent / "_median5.py"
    assert path.read_text() == _numba_median.median5_source()


@pytest.mark.parametrize("shape", [(64, 80), (51, 64), (5, 5), (3, 17), (17, 3)])
def test_median5_is_opencv_median_blur(shape):
    rng = np.random.default_rng(sum(shape))
    flow = rng.normal(0, 2, shape).astype(np.float32)
    flow[: shape[0] // 2, : shape[1] // 3] = 1.5  # ties and flat areas, as in a flow field
    flow[-1, -1] = 40.0  # an outlier in a corner: replicated borders count it several times
    out = np.empty_like(flow)
    median5(flow, out)
    np.testing.assert_array_equal(out, cv2.medianBlur(flow, 5))


def test_median3_is_opencv_median_blur():
    rng = np.random.default_rng(3)
    flow = np.round(rng.normal(0, 2, (33, 41)), 1).astype(np.float32)  # rounded: many ties
    out, window = np.empty_like(flow), np.empty((9, flow.shape[1]), np.float32)
    _numba_median.median_rows(flow, out, window, median_network(9))
    np.testing.assert_array_equal(out, cv2.medianBlur(flow, 3))


def test_stopping_decision_is_the_float32_running_sum():
    """`error_above` decides as OpenCV's float32 pixel-after-pixel sum does, also at a threshold between that sum and
    the exact one (they differ by 7e-6 of it here), where the float64 sum alone would decide the other way."""
    rng = np.random.default_rng(0)
    sq = (rng.random((160, 200)) ** 4).astype(np.float32)  # squared changes: many small, a few large
    running = float(np.cumsum(sq.ravel(), dtype=np.float32)[-1])  # cumsum adds one after the other, like OpenCV
    exact = float(sq.astype(np.float64).sum())
    assert running != exact
    between = (running + exact) / 2
    assert np.float32(between) != np.float32(running) and (running < between) == (np.float32(between) < exact)
    for threshold in [between, running, exact, *np.linspace(running * 0.98, running * 1.02, 41)]:
        eps = np.float32(threshold)
        assert _numba_iterate.error_above(exact, sq, eps) == (np.float32(running) > eps), threshold
