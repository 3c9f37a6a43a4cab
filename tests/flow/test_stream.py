"""flow.stream: TV-L1 of a frame stream in bounded chunks, bit for bit the flow of the whole video at once."""

import cv2
import numpy as np
import pytest

from flow.engines import make_engine
from flow.stream import stream_flow
from flow.tvl1 import TVL1Params, align_flow
from tests.helpers import textured_frames

FAST = TVL1Params(nscales=2, warps=2, outer_iterations=2, inner_iterations=5)


def whole_video_flow(frames: np.ndarray, convention: str, batch: int) -> np.ndarray:
    """What predict.video_flow computed before streaming: every frame to gray, the pairs `batch` at a time."""
    engine = make_engine("opencv", FAST)
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    prev, nxt = gray[:-1], gray[1:]
    pairs = [engine.calc_pairs(prev[i : i + batch], nxt[i : i + batch]) for i in range(0, len(prev), batch)]
    pair_flow = np.concatenate(pairs) if pairs else np.zeros((0, *gray.shape[1:], 2), np.float32)
    return align_flow(pair_flow, len(frames), convention)


@pytest.mark.parametrize("convention", ["backward", "forward"])
@pytest.mark.parametrize("n", [1, 2, 4, 5, 9, 11])  # one frame; batch + 1 frames exactly; a partial last batch
def test_stream_is_the_whole_video_flow_bit_for_bit(n, convention):
    frames = textured_frames(n, 20, 24, dx=1.5, dy=-1.0, seed=n)
    chunks = list(stream_flow(iter(frames), "opencv", FAST, convention, batch=4))
    assert all(len(rgb) == len(flow) <= 5 for rgb, flow in chunks)
    np.testing.assert_array_equal(np.concatenate([rgb for rgb, _ in chunks]), frames)  # every frame once, in order
    flow = np.concatenate([f for _, f in chunks])
    assert flow.dtype == np.float32
    np.testing.assert_array_equal(flow, whole_video_flow(frames, convention, batch=4))
    zero, moving = (flow[0], flow[1:]) if convention == "backward" else (flow[-1], flow[:-1])
    assert not zero.any() and (n == 1 or np.abs(moving).mean() > 0.5)  # the texture moves 1.5 px right per frame


def test_the_stream_reads_no_further_than_its_batch():
    """A chunk is yielded as soon as its pairs are computed: at most batch + 1 frames read per chunk."""
    read = []

    def frames():
        for t, f in enumerate(textured_frames(12, 20, 24, dx=1.0, dy=0.0)):
            read.append(t)
            yield f

    stream = stream_flow(frames(), "opencv", FAST, "backward", batch=4)
    assert len(next(stream)[0]) == 5 and len(read) == 5  # frames 0-4: pairs 0-3
    assert len(next(stream)[0]) == 4 and len(read) == 9  # frames 5-8 (frame 4 starts the next pair)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown flow convention 'sideways'"):
        next(stream_flow([], "opencv", FAST, "sideways"))
    with pytest.raises(ValueError, match="batch=0"):
        next(stream_flow([], "opencv", FAST, batch=0))


@pytest.mark.parametrize("engine", ["opencv", "numba"])
def test_extraction_predict_and_features_get_the_same_flow(engine, translating_video, tmp_path):
    """One path from frames to aligned flow: a store's flow codes are the on-the-fly flow of predict and of the feature
    extractor, quantised (each with its own batch size: 3 pairs per call in the store, 16 in predict and features)."""
    if engine == "numba":
        pytest.importorskip("numba")
    from flow.extract import ExtractOptions, extract_store
    from flow.quantize import quantize_flow
    from flow.store import VideoStore
    from i3d.data.spec import InputSpec
    from i3d.inference.frames import video_chunks, video_reader
    from i3d.inference.predict import decode, video_flow

    path, _ = translating_video(num_frames=9, height=32, width=40, dx=2.0, dy=-1.0)
    spec = InputSpec(fps=0, short_side=0, flow_engine=engine, tvl1=FAST, crop_size=24, num_frames=8,
                     eval_num_frames=8)
    opts = ExtractOptions(fps=0, short_side=0, engine=engine, tvl1=FAST, batch=3)
    assert extract_store("clip", path, tmp_path / "clip.h5", opts)["status"] == "done"
    with VideoStore(tmp_path / "clip.h5") as store:
        stored = store.read_flow_codes(range(store.num_frames))  # (N, 2, H, W)
    predicted = video_flow(decode(path, spec), spec)
    featured = np.concatenate([c["flow"] for c in video_chunks(video_reader(path, spec), spec, ("rgb", "flow"))])
    assert stored.shape == (9, 2, 32, 40) and np.any(stored != 128)  # it moved
    for flow in (predicted, featured):
        np.testing.assert_array_equal(quantize_flow(flow, spec.flow_bound).transpose(0, 3, 1, 2), stored)
