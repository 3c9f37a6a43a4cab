"""TV-L1 flow of a stream of RGB frames, frame by frame, in bounded memory: one place that pairs consecutive frames,
batches the pairs for the engine and places each pair's flow in its frame's slot (`flow.tvl1.align_flow`).

    for rgb, flow in stream_flow(VideoReader(path), "numba", TVL1Params()):   # (n, H, W, 3), (n, H, W, 2)
        ...

Chunks come in frame order and hold at most `batch + 1` frames, so a 30-minute video never sits in memory; what
the chunks hold together is bit for bit what `align_flow` gives for the whole video with the pairs computed
`batch` at a time from the first (the grouping `i3d.inference.predict.video_flow` has always used).
"""

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from flow.extract import get_engine
from flow.tvl1 import CONVENTIONS, TVL1Params, align_flow


def stream_flow(frames: Iterable[np.ndarray], engine: str, params: TVL1Params, convention: str = "backward",
                batch: int = 16) -> Iterator[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Yield (rgb (n, H, W, 3) uint8, flow (n, H, W, 2) float32 px) chunks of consecutive frames and their flow.

    Args:
        frames: (H, W, 3) uint8 RGB frames in order (a `flow.video.VideoReader`, a list, an array).
        engine: TV-L1 engine name (`flow.engines.ENGINES`), run on grayscale frames with `params`.
        convention: "backward": flow[t] is the motion t-1 -> t, flow[0] = 0; "forward" (DeepMind's): t -> t+1, the
            last frame's flow is 0 (so a frame's flow is known once the next frame has arrived).
        batch: consecutive pairs per engine call.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown flow convention {convention!r}; use one of {CONVENTIONS}")
    if batch < 1:
        raise ValueError(f"batch={batch}: need at least one pair per engine call")
    rgb, gray, first = [], [], True
    for frame in frames:
        rgb.append(frame)
        gray.append(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        if len(gray) == batch + 1:
            yield _chunk(rgb, gray, engine, params, convention, first=first, last=False)
            rgb, gray, first = rgb[-1:], gray[-1:], False  # the last frame starts the next batch's first pair
    if len(gray) > 1 or (gray and (first or convention == "forward")):  # else the frame left is placed already
        yield _chunk(rgb, gray, engine, params, convention, first=first, last=True)


def _chunk(rgb: list, gray: list, engine: str, params: TVL1Params, convention: str, *, first: bool, last: bool
           ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The frames of `rgb` (n + 1 of them, n pairs) whose flow this batch decides, with that flow.

    `align_flow` puts a zero in one end slot of the batch; it is the video's zero only at the video's own end
    ("backward": the first frame; "forward": the last), otherwise that frame belongs to the neighbouring batch.
    """
    g = np.stack(gray)
    pairs = len(g) - 1
    if pairs:
        eng = get_engine(engine, params, g.shape[1:])
        pair_flow = eng.calc_pairs(g[:-1], g[1:])
    else:
        pair_flow = np.zeros((0, *g.shape[1:], 2), np.float32)
    flow = align_flow(pair_flow, len(g), convention)
    if convention == "backward":
        keep = slice(0 if first else 1, None)
    else:
        keep = slice(0, None if last else pairs)
    return np.stack(rgb[keep]), flow[keep]
