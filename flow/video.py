"""Video decoding with OpenCV (frame-rate resampling by nearest timestamp, bilinear resize of the short side) and
the project's one video writer (`write_video`: a file that is either complete or absent).

Frames stream through `VideoReader` one at a time (a long video never sits in memory at source resolution);
`read_video` collects them for callers who want the whole array.
"""

import itertools
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from common.files import temp_path


class VideoError(Exception):
    """A video cannot be opened or decoded; the message names the file and the reason."""


def resized_shape(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(H, W) with the shorter side scaled to `short_side` and the aspect ratio kept; None or 0 keeps the size."""
    if not short_side:
        return height, width
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def source_index(k: int, native_fps: float, fps: float) -> int:
    """Source frame shown at output time k / fps: the one with the nearest timestamp i / native_fps (ties: later)."""
    return math.floor(k * native_fps / fps + 0.5)


class VideoReader:
    """Iterate a video's frames as (H, W, 3) uint8 RGB, resampled to `fps` and resized to `short_side`.

    `info` is filled while iterating and complete once the iteration ends: source path and size, header and decoded
    frame counts, native and sampled fps, the source index of every output frame, sizes, and `warnings` (such as
    a video that decodes to clearly fewer frames than its header claims).

    Args:
        path: the video file.
        fps: output frame rate; 0 or None keeps the native rate.
        short_side: output short side in pixels (bilinear); 0 or None keeps the native size.
        max_frames: stop after this many output frames (None: all).
    """

    def __init__(self, path, *, fps: float | None = 25.0, short_side: int | None = 256, max_frames: int | None = None):
        self.path = Path(path)
        if fps is not None and fps < 0:
            raise ValueError(f"fps must be >= 0 (0 keeps the native rate), got {fps}")
        self.fps, self.short_side, self.max_frames = fps or None, short_side or None, max_frames
        self.info: dict = {}

    def __iter__(self) -> Iterator[np.ndarray]:
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such file")
        if os.path.getsize(self.path) == 0:
            raise VideoError(f"{self.path}: empty file (0 bytes); re-download or drop it from the list")
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise VideoError(f"{self.path}: OpenCV cannot open it (not a video, or an unsupported codec)")
            yield from self._frames(cap)
        finally:
            cap.release()

    def _frames(self, cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
        native = cap.get(cv2.CAP_PROP_FPS)
        warnings = []
        if not (native > 0 and math.isfinite(native)):
            warnings.append(f"no frame rate in the header; frames used as if at {self.fps or 25.0} fps")
            native = 0.0
        fps = self.fps or native or 25.0
        rate = native or fps  # without a native rate there is nothing to resample
        info = self.info
        info.update(
            source_path=str(self.path.resolve()), source_size=os.path.getsize(self.path), native_fps=native,
            sampled_fps=fps, header_frames=int(max(cap.get(cv2.CAP_PROP_FRAME_COUNT), 0)), decoded_frames=0,
            source_frame_indices=[], warnings=warnings,
        )
        indices, k, i = info["source_frame_indices"], 0, 0
        wanted = source_index(0, rate, fps)
        while self.max_frames is None or len(indices) < self.max_frames:
            if not cap.grab():
                break
            info["decoded_frames"] = i + 1
            if wanted == i:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    break
                frame = self._convert(bgr)
                while wanted == i and (self.max_frames is None or len(indices) < self.max_frames):
                    indices.append(i)  # the same frame repeats when fps > native fps
                    yield frame
                    k += 1
                    wanted = source_index(k, rate, fps)
            i += 1
        self._check(info)

    def _convert(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        h, w = bgr.shape[:2]
        self.info.setdefault("source_height", h)
        self.info.setdefault("source_width", w)
        out_h, out_w = resized_shape(h, w, self.short_side)
        if (out_h, out_w) != (h, w):
            bgr = cv2.resize(bgr, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        self.info["height"], self.info["width"] = out_h, out_w
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _check(self, info: dict) -> None:
        if not info["source_frame_indices"]:
            raise VideoError(f"{self.path}: decoded no frames (empty, truncated or not a video)")
        header, decoded = info["header_frames"], info["decoded_frames"]
        stopped_early = self.max_frames is not None and len(info["source_frame_indices"]) >= self.max_frames
        if not stopped_early and header > 0 and decoded < header - max(2, 0.05 * header):
            info["truncated"] = True
            info["warnings"].append(f"decoded {decoded} frames but the header claims {header} (truncated file?)")
        else:
            info["truncated"] = False


def read_video(path, *, fps: float | None = 25.0, short_side: int | None = 256, max_frames: int | None = None):
    """Decode a whole video. Returns (frames (N, H, W, 3) uint8 RGB, info dict); see `VideoReader`."""
    reader = VideoReader(path, fps=fps, short_side=short_side, max_frames=max_frames)
    frames = np.stack(list(reader))
    return frames, reader.info


# ---------------------------------------------------------------- writing


class VideoWriteError(Exception):
    """OpenCV cannot write the video (codec or container unavailable) or a frame is unusable; the message says why."""


def _check_frame(frame: np.ndarray, shape: tuple[int, ...], index: int, path: Path) -> None:
    if frame.shape != shape or frame.dtype != np.uint8:
        raise VideoWriteError(
            f"{path}: frame {index} is {frame.dtype} {frame.shape}, expected uint8 {shape} like frame 0; "
            "nothing was written"
        )


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, *, fourcc: str = "FFV1") -> None:
    """Write uint8 RGB frames (H, W, 3) to `path` atomically: a temporary file in the same folder, then os.replace.

    A run killed midway never leaves a partial video at `path`, so "the file exists" means "the video is complete";
    on an error the temporary file is removed as well. The container follows the suffix (.avi, .mp4).

    Args:
        path: the video to write; missing parent folders are created, an existing file is replaced.
        frames: a (T, H, W, 3) array or any iterable of (H, W, 3) uint8 RGB frames, all of one shape.
        fps: frame rate stored in the file.
        fourcc: OpenCV codec code: "FFV1" (lossless, .avi) or "mp4v" (lossy, .mp4).

    Raises:
        VideoWriteError: no frames, a frame of another shape or dtype, or an encoder OpenCV cannot open.
    """
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise VideoWriteError(f"{path}: no frames to write")
    first = np.asarray(first)
    if first.ndim != 3 or first.shape[2] != 3:
        raise VideoWriteError(f"{path}: frames must be (H, W, 3) RGB, got {first.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)  # same suffix: OpenCV picks the container from it
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    try:
        if not writer.isOpened():
            raise VideoWriteError(
                f"OpenCV cannot write {fourcc} video to {path}: install opencv-contrib-python-headless "
                "(it bundles FFmpeg), or use fourcc='FFV1' with a .avi path"
            )
        for index, frame in enumerate(itertools.chain([first], frames)):
            frame = np.asarray(frame)
            _check_frame(frame, first.shape, index, path)
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV wants BGR
        writer.release()
        os.replace(tmp, path)
    except BaseException:
        writer.release()
        tmp.unlink(missing_ok=True)
        raise
