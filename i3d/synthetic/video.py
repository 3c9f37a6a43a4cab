"""The one video writer of the synthetic generators: frames -> a file that is either complete or absent."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np


class VideoWriteError(Exception):
    """OpenCV cannot write the video (codec or container unavailable) or a frame is unusable; the message says why."""


def _temp_path(path: Path) -> Path:
    # Same folder, so os.replace is an atomic rename; same suffix, because OpenCV picks the container from it.
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


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
    tmp = _temp_path(path)
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
