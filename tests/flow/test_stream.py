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
