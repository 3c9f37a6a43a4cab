"""A video's frames for inference in bounded memory: consecutive {stream: (n, H, W, C)} chunks from a video file
(decoded as the input spec says, TV-L1 flow computed on the fly) or from a store (read in windows of indices), the
sliding `FrameBuffer` the consumers hold them in, and `gather_frames` for the few frames that test clips need.

"rgb" chunks are (n, H, W, 3) uint8, "flow" chunks (n, H, W, 2) float32 pixels, as `flow.store.VideoStore` returns
them; every chunk holds the same frames for every stream. Chunks hold at most `CHUNK` (+1) frames. Frames from a
video file are what its store would hold: TV-L1 runs on the decoded frames, then both streams go through the stores'
JPEG and 8-bit flow (`InputSpec.stored_frames`), as extraction writes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from flow.store import VideoStore
from flow.stream import stream_flow
from flow.video import VideoReader, resized_shape
from i3d.data.spec import InputSpec

CHUNK = 16  # frames per chunk (and consecutive pairs per TV-L1 engine call)


def video_reader(path: str | Path, spec: InputSpec, max_frames: int | None = None) -> VideoReader:
    """The decoder of `path` at the spec's frame rate and short side (the stores' decoding)."""
    return VideoReader(path, fps=spec.fps, short_side=spec.short_side, max_frames=max_frames)


def count_frames(path: str | Path, spec: InputSpec, max_frames: int | None = None) -> tuple[int, tuple[int, int]]:
    """(frames, (H, W)) that `video_reader(path, spec, max_frames)` yields, from one decode pass that keeps no frame
    and skips the resize: for callers whose use of a frame depends on the video's length (test clips, windows)."""
    reader = VideoReader(path, fps=spec.fps, short_side=None, max_frames=max_frames)
    count = sum(1 for _ in reader)
    return count, resized_shape(reader.info["source_height"], reader.info["source_width"], spec.short_side)


def video_chunks(frames: Iterable[np.ndarray], spec: InputSpec, streams) -> Iterator[dict[str, np.ndarray]]:
    """Chunks of decoded RGB frames (a `video_reader`) with, when "flow" is in `streams`, their TV-L1 flow as
    `flow.extract` makes the stores' (`spec.flow_engine`, `spec.tvl1`, `spec.flow_convention`), both as the store
    gives them back (`spec.stored_frames`)."""
    if "flow" in streams:
        for rgb, flow in stream_flow(frames, spec.flow_engine, spec.tvl1, spec.flow_convention, CHUNK):
            yield spec.stored_frames({"rgb": rgb, "flow": flow} if "rgb" in streams else {"flow": flow})
        return
    chunk = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == CHUNK:
            yield spec.stored_frames({"rgb": np.stack(chunk)})
            chunk = []
    if chunk:
        yield spec.stored_frames({"rgb": np.stack(chunk)})


def store_chunks(path: str | Path, streams, size: int = CHUNK) -> Iterator[dict[str, np.ndarray]]:
    """Chunks of a store's frames (`flow.store.VideoStore`), `size` frames per read."""
    with VideoStore(path) as store:
        for start in range(0, store.num_frames, size):
            index = np.arange(start, min(start + size, store.num_frames))
            yield {s: store.read_rgb(index) if s == "rgb" else store.read_flow(index) for s in streams}


def array_chunks(frames: dict[str, np.ndarray], size: int = CHUNK) -> Iterator[dict[str, np.ndarray]]:
    """Chunks (views) of frames already in memory, {stream: (N, H, W, C)}."""
    n = len(next(iter(frames.values())))
    for start in range(0, n, size):
        yield {s: x[start : start + size] for s, x in frames.items()}


class FrameBuffer:
    """The frames [start, end) of a chunk stream, read ahead on demand and dropped from the front.

    `peak` is the most frames it ever held: what bounds the memory of its consumer.
    """

    def __init__(self, chunks: Iterable[dict[str, np.ndarray]]):
        self._chunks = iter(chunks)
        self._parts: list[dict[str, np.ndarray]] = []
        self.start = self.end = self.peak = 0
        self.finished = False

    def fill(self, end: int) -> int:
        """Read chunks until frame `end - 1` is held or the stream ends; returns the frames read so far."""
        while self.end < end and not self.finished:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.finished = True
                break
            self._parts.append(chunk)
            self.end += len(next(iter(chunk.values())))
            self.peak = max(self.peak, self.end - self.start)
        return self.end

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """{stream: frames} at absolute frame `indices` (all in [start, end)), a copy."""
        indices = np.asarray(indices, np.int64)
        if indices.size and (indices.min() < self.start or indices.max() >= self.end):
            raise IndexError(f"frames {indices.min()}-{indices.max()} wanted, frames {self.start}-{self.end - 1} held")
        if len(self._parts) > 1:  # one array per stream from now on (until more chunks arrive)
            self._parts = [{s: np.concatenate([p[s] for p in self._parts]) for s in self._parts[0]}]
        return {s: x[indices - self.start] for s, x in self._parts[0].items()}

    def drop(self, before: int) -> None:
        """Forget the frames before `before`."""
        while self._parts and before > self.start:
            n = len(next(iter(self._parts[0].values())))
            cut = min(before - self.start, n)
            if cut == n:
                self._parts.pop(0)
            else:
                self._parts[0] = {s: x[cut:].copy() for s, x in self._parts[0].items()}  # a view would keep it all
            self.start += cut

    def shape(self) -> tuple[int, int]:
        """(H, W) of the frames (after the first `fill`)."""
        return next(iter(self._parts[0].values())).shape[1:3]


def gather_frames(frames: Iterable[np.ndarray], spec: InputSpec, streams, wanted: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """{stream: (len(wanted), H, W, C)} of the frames at sorted unique indices `wanted`, in one pass over decoded
    RGB `frames`: only those frames are kept, and flow is computed only for them (each run of wanted frames with
    the one neighbour its first or last flow needs), so a long video costs no more memory than its test clips.
    The frames come back as the store would give them (`spec.stored_frames`, after TV-L1)."""
    wanted = np.asarray(wanted, np.int64)
    need = set(wanted.tolist())
    if "flow" in streams:  # the other frame of each wanted frame's pair
        need |= {t - 1 for t in need} if spec.flow_convention == "backward" else {t + 1 for t in need}
    kept, index, last = [], [], max(need)
    for i, frame in enumerate(frames):
        if i in need:
            kept.append(frame)
            index.append(i)
        if i >= last:
            break
    index = np.asarray(index, np.int64)
    rows = np.searchsorted(index, wanted)
    if not len(index) or rows.max() >= len(index) or not np.array_equal(index[rows], wanted):
        raise ValueError(f"frames up to {wanted.max()} were wanted from a video of {len(index) and index[-1] + 1} "
                         "frames")
    out = {"rgb": np.stack(kept)} if "rgb" in streams else {}
    if "flow" in streams:
        runs = np.split(np.arange(len(index)), np.flatnonzero(np.diff(index) != 1) + 1)
        # a run's end slot holds zero flow: right at the video's own end, and otherwise on the neighbour frame
        # kept only for its pair, which is not wanted
        out["flow"] = np.concatenate([f for run in runs for _, f in
                                      stream_flow([kept[i] for i in run], spec.flow_engine, spec.tvl1,
                                                  spec.flow_convention, CHUNK)])
    return spec.stored_frames({s: x[rows] for s, x in out.items()})
