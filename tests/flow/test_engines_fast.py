"""The fast TV-L1 engines (numba, torch) against OpenCV's, which is the reference: same algorithm, same answer."""

import sys

import cv2
import numpy as np
import pytest

from flow.engines import make_engine
from flow.extract import ExtractOptions, extract_store
from flow.store import VideoStore
from flow.tvl1 import TVL1Params
from flow.video import read_video
from tests.helpers import textured_frames

FAST_ENGINES = ("numba", "torch")


def _gray(frames_rgb: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames_rgb])


def _epe(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


# thousands of tiny ops per pair: torch's thread pool only adds barrier waits on a shared 2-core machine
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synthetic():
    """Two pairs of a 64x80 texture moving by a sub-pixel (1.5, -0.75) and two by an integer (2, 1) per frame."""
    sub = _gray(textured_frames(3, 64, 80, 1.5, -0.75, seed=1))
    whole = _gray(textured_frames(3, 64, 80, 2.0, 1.0, seed=2))
    prev, nxt = np.concatenate([sub[:-1], whole[:-1]]), np.concatenate([sub[1:], whole[1:]])
    truth = np.zeros(prev.shape + (2,), np.float32)
    truth[:2] = (1.5, -0.75)
    truth[2:] = (2.0, 1.0)
    return prev, nxt, truth, make_engine("opencv").calc_pairs(prev, nxt)


@pytest.fixture(scope="module")
def real_crop(bikes_mp4):
    """Three consecutive pairs of bikes.mp4 at short side 72 (72x169), centre crop 72x128."""
    frames, _ = read_video(bikes_mp4, fps=0, short_side=72)
    gray = _gray(frames[:4, :, 20:148])
    return gray[:-1], gray[1:], make_engine("opencv").calc_pairs(gray[:-1], gray[1:])


@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_matches_opencv_on_synthetic_motion(engine, synthetic):
    prev, nxt, _, reference = synthetic
    flow = make_engine(engine).calc_pairs(prev, nxt)
    assert flow.shape == prev.shape + (2,) and flow.dtype == np.float32
    epe = _epe(flow, reference)
    # measured: numba 0.016, torch 0.016 px mean over the four pairs (the target is 0.15 on real video)
    assert epe.mean() < 0.05, epe.mean()
    assert np.percentile(epe, 99) < 0.5


@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_matches_opencv_on_real_video(engine, real_crop):
    prev, nxt, reference = real_crop
    flow = make_engine(engine).calc_pairs(prev, nxt)
    epe = _epe(flow, reference)
    assert np.abs(reference).mean() > 0.3  # the camera pans: there is motion to get right
    assert epe.mean() < 0.08, epe.mean()  # measured: numba 0.024, torch 0.024 (mean |flow| 0.75)


@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_known_displacement_no_worse_than_opencv(engine, synthetic):
    prev, nxt, truth, reference = synthetic
    flow = make_engine(engine).calc_pairs(prev, nxt)
    inner = (slice(None), slice(8, -8), slice(8, -8))  # texture entering at the border has no true match
    ours, theirs = _epe(flow, truth)[inner].mean(), _epe(reference, truth)[inner].mean()
    assert theirs < 0.2  # sanity: OpenCV itself recovers the motion
    assert ours <= theirs + 0.01, (ours, theirs)  # measured: numba 0.0250, torch 0.0250, opencv 0.0233


NON_DEFAULT = [
    TVL1Params(gamma=0.2, nscales=3, warps=3, median_filtering=3, epsilon=0.02),  # illumination term, 3x3 median
    TVL1Params(nscales=2, warps=2, inner_iterations=10, outer_iterations=3, median_filtering=0, tau=0.2, theta=0.4),
]


@pytest.mark.parametrize("engine", FAST_ENGINES)
@pytest.mark.parametrize("params", NON_DEFAULT, ids=["gamma-median3", "no-median"])
def test_non_default_params_follow_opencv(engine, params, synthetic):
    """Other parameters (each one changes the answer) still give OpenCV's answer."""
    prev, nxt = synthetic[0][:2], synthetic[1][:2]
    reference = make_engine("opencv", params).calc_pairs(prev, nxt)
    flow = make_engine(engine, params).calc_pairs(prev, nxt)
    assert _epe(flow, reference).mean() < 0.06  # measured: numba 0.020, torch 0.019 (gamma-median3)
    default = make_engine(engine).calc_pairs(prev, nxt)
    assert _epe(flow, default).mean() > 1e-3  # the parameters changed something


def test_numba_rows_and_pairs_parallel_agree(synthetic, numba_tvl1):
    from flow.engines.numba_tvl1 import NumbaTVL1

    prev, nxt = synthetic[0][2:], synthetic[1][2:]
    by_rows = NumbaTVL1(parallel="rows").calc_pairs(prev, nxt)
    by_pairs = NumbaTVL1(parallel="pairs").calc_pairs(prev, nxt)
    # same arithmetic; only the order of the error sum differs, which can move a stopping decision slightly
    assert _epe(by_rows, by_pairs).mean() < 1e-3


def test_torch_batches_are_independent(synthetic):
    """A pair's flow does not depend on the other pairs of its batch (per-pair stopping masks)."""
    from flow.engines.torch_tvl1 import TorchTVL1

    prev, nxt = synthetic[0][1:3], synthetic[1][1:3]
    together = TorchTVL1(device="cpu").calc_pairs(prev, nxt)
    one_by_one = TorchTVL1(device="cpu", batch_size=1).calc_pairs(prev, nxt)
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)


@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_bad_inputs_name_the_engine(engine):
    eng = make_engine(engine)
    frames = np.zeros((2, 32, 32), np.uint8)
    with pytest.raises(ValueError, match=f"{engine} engine.*uint8"):
        eng.calc_pairs(frames, frames[:1])
    with pytest.raises(ValueError, match=f"{engine} engine.*uint8"):
        eng.calc_pairs(frames.astype(np.float32), frames)
    with pytest.raises(ValueError, match="median_filtering"):
        make_engine(engine, TVL1Params(median_filtering=7))


def test_missing_numba_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now raises ImportError
    monkeypatch.delitem(sys.modules, "flow.engines.numba_tvl1", raising=False)
    with pytest.raises(ImportError, match=r"'numba' TV-L1 engine.*pip install numba.*pip install -e \.\[fast\]"):
        make_engine("numba")
    assert make_engine("opencv").name == "opencv"  # the other engines do not need numba


def test_extraction_with_numba_engine_same_layout(translating_video, tmp_path, numba_tvl1):
    path, _ = translating_video(num_frames=4, height=48, width=64, dx=2.0, dy=1.0)
    stores = {}
    for engine in ("opencv", "numba"):
        opts = ExtractOptions(short_side=0, engine=engine)
        record = extract_store("clip", path, tmp_path / engine / "clip.h5", opts)
        assert record["status"] == "done", record
        stores[engine] = VideoStore(record["store"])
    ref, ours = stores["opencv"], stores["numba"]
    assert (ours.num_frames, ours.height, ours.width, ours.has_flow) == (ref.num_frames, ref.height, ref.width, True)
    assert ours.attrs["engine"] == "numba" and ours.attrs["engine_version"].startswith("1.0+numba")
    assert ref.attrs["engine"] == "opencv"
    assert set(ours.attrs) == set(ref.attrs)
    assert {k: v for k, v in ours.attrs.items() if k.startswith("tvl1_")} == TVL1Params().to_attrs()
    flow_ours, flow_ref = ours.read_flow(range(4)), ref.read_flow(range(4))
    assert flow_ours.shape == flow_ref.shape == (4, 48, 64, 2)
    assert np.abs(flow_ours - flow_ref).mean() < 0.1
    np.testing.assert_array_equal(ours.read_rgb(range(4)), ref.read_rgb(range(4)))
