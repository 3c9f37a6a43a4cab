"""A store as pictures: its RGB frames beside their flow in the colour-wheel code, and how fast the flow is.

    preview = store_preview("runs/demo/h5/MoveRight/v_MoveRight_g01_c01.h5", "0:8")
    save_picture("store.png", preview.strip())          # frames in columns, RGB over flow, the wheel's key
    save_animation("store.gif", preview.frames(), 5)    # one frame at a time (.gif or .mp4)
    print(stats_table(preview))                         # per frame: mean and 99th-percentile speed, share clipped

The flow is coloured with the store's own bound (its `flow_bound` attribute) as the fully saturated speed, so colours
compare across the frames and stores of one bound; a dimmed colour is motion faster than the bound (the extraction
clipped each component at +-bound, so only oblique motion gets there; `flow_stats` counts the pixels at the bound).
Any store `VideoStore` reads (flow in gzip or Blosc2 LZ4HC) works; an RGB-only store shows its frames alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.files import write_atomic
from common.pictures import caption, hstack, resize_height, vstack
from flow.quantize import LEVELS, ZERO_CODE, dequantize_flow
from flow.store import VideoStore
from flow.video import write_video
from flow.viz import colour_wheel_image, flow_magnitude, flow_to_colour

STRIP_FRAMES = 8  # frames of a strip when none are asked for: spread evenly over the video
ANIMATION_FRAMES = 250  # the most frames of an animation when none are asked for: from the first
ANIMATIONS = (".gif", ".mp4")


@dataclass
class StorePreview:
    """The frames of one store to show: `rgb` (n, H, W, 3) and `flow` (n, H, W, 3) colour-coded (None without flow),
    at frame `indices`, with per-frame `stats` (`flow_stats`) and the store's `bound` and `format_version`."""

    path: Path
    indices: np.ndarray
    rgb: np.ndarray
    flow: np.ndarray | None
    bound: float | None
    stats: list[dict]
    format_version: int
    num_frames: int

    def title(self) -> str:
        h, w = self.rgb.shape[1:3]
        flow = f"flow bound {self.bound:g} px" if self.bound is not None else "no flow (an RGB-only store)"
        return f"{self.path.name}: {self.num_frames} frames of {h}x{w}, format {self.format_version}, {flow}"

    def tiles(self, t: int, height: int) -> list[np.ndarray]:
        """Frame t's RGB and flow tiles at `height` rows."""
        pictures = [self.rgb[t]] if self.flow is None else [self.rgb[t], self.flow[t]]
        return [resize_height(p, height) for p in pictures]

    def strip(self, height: int = 128) -> np.ndarray:
        """Every frame a column (RGB over flow, its index above), the wheel's key at the right, the title on top."""
        columns = [caption(vstack(self.tiles(t, height)), f"frame {i}") for t, i in enumerate(self.indices)]
        return caption(hstack([*columns, *self._legend(height)], gap=6), self.title())

    def frames(self, height: int = 128) -> list[np.ndarray]:
        """One picture per frame (RGB beside flow, the key at the right), for an animation."""
        return [caption(hstack([*self.tiles(t, height), *self._legend(height)]), f"{self.title()}\nframe {i}")
                for t, i in enumerate(self.indices)]

    def _legend(self, height: int) -> list[np.ndarray]:
        return [] if self.bound is None else [wheel_legend(self.bound, max(48, min(height, 96)))]


def wheel_legend(bound: float, size: int = 64) -> np.ndarray:
    """The colour wheel's key: hue = direction (x right, y down), the rim = `bound` pixels per frame."""
    return caption(colour_wheel_image(size), f"flow key\nrim: {bound:g} px\nwhite: still\ndim: > rim")


def select_frames(text: str | None, num_frames: int, default: int = STRIP_FRAMES, spread: bool = True) -> np.ndarray:
    """Frame indices from "A:B" or "A:B:STEP" (Python's slice rules: B excluded, negatives from the end) or "K".

    Args:
        text: the selection, or None for `default` frames: spread evenly over the video (`spread`) or the first ones.
    """
    if text is None:
        count = min(default, num_frames)
        if spread:
            return np.unique(np.linspace(0, num_frames - 1, count).round().astype(np.int64))
        return np.arange(count, dtype=np.int64)
    try:
        parts = [int(p) if p.strip() else None for p in text.split(":")]
        if len(parts) == 1:
            if not -num_frames <= parts[0] < num_frames:
                raise IndexError
            return np.array([parts[0] % num_frames], np.int64)
        indices = np.arange(num_frames, dtype=np.int64)[slice(*parts)]
    except (ValueError, TypeError, IndexError):
        raise ValueError(f"--frames {text!r}: use A:B, A:B:STEP or K within the store's {num_frames} frames") from None
    if not len(indices):
        raise ValueError(f"--frames {text!r} selects no frame of the store's {num_frames}")
    return indices


def flow_stats(codes: np.ndarray, bound: float) -> list[dict]:
    """Per frame of (n, 2, H, W) stored codes: `mean` and `p99` speed in pixels per frame, and `clipped`, the share of
    pixels with a component at the bound (the extraction clipped it there, or it was exactly that fast)."""
    px = dequantize_flow(codes, bound)
    speed = flow_magnitude(np.moveaxis(px, 1, -1)).reshape(len(codes), -1)
    at_bound = ((codes == ZERO_CODE - LEVELS) | (codes == ZERO_CODE + LEVELS)).any(axis=1).reshape(len(codes), -1)
    return [{"mean": float(s.mean()), "p99": float(np.percentile(s, 99)), "clipped": float(c.mean())}
            for s, c in zip(speed, at_bound, strict=True)]


def store_preview(path: str | os.PathLike, frames: str | None = None, *, animation: bool = False) -> StorePreview:
    """Read the frames `frames` selects (`select_frames`; by default 8 spread over the video, or for an animation
    its first `ANIMATION_FRAMES`) and colour their flow with the store's bound."""
    path = Path(path)
    with VideoStore(path) as store:
        n = store.num_frames
        indices = select_frames(frames, n, ANIMATION_FRAMES if animation else STRIP_FRAMES, spread=not animation)
        rgb = store.read_rgb(indices)
        flow, bound, stats = None, None, []
        if store.has_flow:
            bound = store.flow_bound
            codes = store.read_flow_codes(indices)
            flow = flow_to_colour(np.moveaxis(dequantize_flow(codes, bound), 1, -1), max_magnitude=bound)
            stats = flow_stats(codes, bound)
        return StorePreview(path, indices, rgb, flow, bound, stats, store.format_version, n)


def stats_table(preview: StorePreview) -> str:
    """The per-frame statistics as a table (one line per frame), under the store's title."""
    if not preview.stats:
        return f"{preview.title()}\n"
    lines = [preview.title(), f"{'frame':>6} {'mean px':>8} {'p99 px':>8} {'clipped':>8}"]
    lines += [f"{i:>6} {s['mean']:>8.3f} {s['p99']:>8.3f} {100 * s['clipped']:>7.2f}%"
              for i, s in zip(preview.indices, preview.stats, strict=True)]
    return "\n".join(lines) + "\n"


def save_animation(path: str | os.PathLike, frames: list[np.ndarray], fps: float) -> Path:
    """Write RGB pictures as a .gif (Pillow, looping) or .mp4 (OpenCV's mp4v), atomically. Returns the path."""
    path = Path(path)
    if path.suffix.lower() not in ANIMATIONS:
        raise ValueError(f"{path}: an animation is written as {' or '.join(ANIMATIONS)}")
    h, w = (2 * ((max(f.shape[k] for f in frames) + 1) // 2) for k in (0, 1))  # even sizes: encoders want them
    frames = [np.pad(f, ((0, h - f.shape[0]), (0, w - f.shape[1]), (0, 0)), constant_values=255) for f in frames]
    if path.suffix.lower() == ".mp4":
        write_video(path, frames, fps, fourcc="mp4v")
        return path
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = (Image.fromarray(f) for f in frames)
    write_atomic(path, lambda tmp: first.save(tmp, format="GIF", save_all=True, append_images=rest,
                                              duration=round(1000 / fps), loop=0))
    return path

