"""TV-L1 flow of a stream of RGB frames, frame by frame, in bounded memory: the one place that pairs consecutive
frames, batches the pairs for the engine and places each pair's flow in its frame's slot (`flow.tvl1.align_flow`).
Extraction (`flow.extract`, which quantises it into the stores), predict and the feature extractor
(`i3d.inference`) all get their flow here, so a store's flow is the on-the-fly flow quantised.

    for rgb, flow in stream_flow(VideoReader(path), "numba", TVL1Params()):   # (n, H, W, 3), (n, H, W, 2)
        ...

Chunks come in frame order and hold at most `batch + 1` frames, so a 30-minute video never sits in memory; what
the chunks hold together is bit for bit what `align_flow` gives for the whole video with the pairs computed
`batch` at a time from the first (the grouping `i3d.inference.predict.video_flow` has always used).
"""

import threading
import time
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from flow.engines import make_engine
from flow.tvl1 import CONVENTIONS, TVL1Params, align_flow

_ENGINES: dict = {}


def get_engine(name: str, params: TVL1Params, shape: tuple[int, int] | None = None):
    """The engine for (name, params), built once per process and thread (TV-L1 objects are costly, not shareable),
    and built again when the frame size `shape` (H, W) changes: OpenCV's TV-L1 object computes different flow for
    frames of one size after it has seen another size (up to 5.6 px on 48x64 after 24x32), so a store would depend
    on which videos its worker happened to do before. Only the latest size's engine is kept (bounded memory)."""
    key = (name, params, threading.get_ident())
    cached = _ENGINES.get(key)
    if cached is None or (shape is not None and cached[0] != shape):
        _ENGINES[key] = cached = (shape, make_engine(name, params))
    return cached[1]


def stream_flow(frames: Iterable[np.ndarray], engine: str, params: TVL1Params, convention: str = "backward",
                batch: int = 16, timing: dict | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (rgb (n, H, W, 3) uint8, flow (n, H, W, 2) float32 px) chunks of consecutive frames and their flow.

    Args:
        frames: (H, W, 3) uint8 RGB frames in order (a `flow.video.VideoReader`, a list, an array).
        engine: TV-L1 engine name (`flow.engines.ENGINES`), run on grayscale frames with `params`.
        convention: "backward": flow[t] is the motion t-1 -> t, flow[0] = 0; "forward" (DeepMind's): t -> t+1, the
            last frame's flow is 0 (so a frame's flow is known once the next frame has arrived).
        batch: consecutive pairs per engine call.
        timing: if given, the seconds spent inside the engine are added to timing["engine_seconds"].
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
            yield _chunk(rgb, gray, engine, params, convention, timing, first=first, last=False)
            rgb, gray, first = rgb[-1:], gray[-1:], False  # the last frame starts the next batch's first pair
    if len(gray) > 1 or (gray and (first or convention == "forward")):  # else the frame left is placed already
        yield _chunk(rgb, gray, engine, params, convention, timing, first=first, last=True)


def _chunk(rgb: list, gray: list, engine: str, params: TVL1Params, convention: str, timing: dict | None, *,
           first: bool, last: bool) -> tuple[np.ndarray, np.ndarray]:
    """The frames of `rgb` (n + 1 of them, n pairs) whose flow this batch decides, with that flow.

    `align_flow` puts a zero in one end slot of the batch; it is the video's zero only at the video's own end
    ("backward": the first frame; "forward": the last), otherwise that frame belongs to the neighbouring batch.
    """
    g = np.stack(gray)
    pairs = len(g) - 1
    if pairs:
        eng = get_engine(engine, params, g.shape[1:])
        start = time.perf_counter()
        pair_flow = eng.calc_pairs(g[:-1], g[1:])
        if timing is not None:
            timing["engine_seconds"] = timing.get("engine_seconds", 0.0) + time.perf_counter() - start
    else:
        pair_flow = np.zeros((0, *g.shape[1:], 2), np.float32)
    flow = align_flow(pair_flow, len(g), convention)
    if convention == "backward":
        keep = slice(0 if first else 1, None)
    else:
        keep = slice(0, None if last else pairs)
    return np.stack(rgb[keep]), flow[keep]
