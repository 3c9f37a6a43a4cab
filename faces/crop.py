"""Face-crop clips: which frames of which track become one clip, the clip's one crop box, and the cutting.

The DFDC authors' recipe, each step an option of `faces.options.FaceOptions`:

- a video is split into segments of `split_frames` frames (150: a 300-frame DFDC video gives two halves); each
  track's frames within a segment make one clip, so a person seen throughout gives one clip per half;
- a clip's box is fixed for all its frames and as small as possible while holding the face in every one of them:
  the union of the track's boxes over the clip, grown by `margin` times its width and height on each side (context
  around the face, where a face swap's blending boundary lies), then squared around its centre (the longer side
  wins) so that resizing to `size` x `size` does not distort the face; where it leaves the frame, black is cut in;
- a clip shorter than `min_frames` (64) is set aside: it is reported, not written (a model sampling 64-frame clips
  cannot use it, and short tracks are mostly a detector's brief mistakes).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faces.track import Track, frame_boxes


@dataclass(frozen=True)
class CropPlan:
    """One clip: track `track`'s frames [start, end) in segment `segment`, cut through `box` (x0, y0, x1, y1)."""

    track: int
    segment: int
    start: int
    end: int
    box: tuple[int, int, int, int]

    @property
    def frames(self) -> int:
        return self.end - self.start


def segments(num_frames: int, split_frames: int) -> list[tuple[int, int]]:
    """[start, end) of each segment: consecutive runs of `split_frames` frames (0: the whole video as one)."""
    if not split_frames:
        return [(0, num_frames)]
    return [(s, min(s + split_frames, num_frames)) for s in range(0, num_frames, split_frames)]


def crop_box(boxes: np.ndarray, margin: float, square: bool = True) -> tuple[int, int, int, int]:
    """The clip's integer box: the union of `boxes` (L, 4), grown by `margin` of its size per side, squared."""
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    w, h = (x1 - x0) * (1 + 2 * margin), (y1 - y0) * (1 + 2 * margin)
    if square:
        w = h = max(w, h)
    w, h = max(1, int(np.ceil(w - 1e-6))), max(1, int(np.ceil(h - 1e-6)))  # whole pixels: a square stays square
    left, top = int(np.floor((x0 + x1 - w) / 2 + 0.5)), int(np.floor((y0 + y1 - h) / 2 + 0.5))
    return left, top, left + w, top + h


def plan_crops(tracks: list[Track], num_frames: int, *, stride: int, split_frames: int, margin: float,
               min_frames: int, square: bool = True) -> tuple[list[CropPlan], list[CropPlan]]:
    """(clips to write, clips set aside as shorter than `min_frames`), in (segment, track) order."""
    spans = [frame_boxes(track, num_frames, stride) for track in tracks]
    keep, aside = [], []
    for segment, (seg_start, seg_end) in enumerate(segments(num_frames, split_frames)):
        for index, (start, boxes) in enumerate(spans):
            lo, hi = max(seg_start, start), min(seg_end, start + len(boxes))
            if hi <= lo:
                continue
            plan = CropPlan(index, segment, lo, hi, crop_box(boxes[lo - start : hi - start], margin, square))
            (keep if plan.frames >= min_frames else aside).append(plan)
    return keep, aside


def cut(frame: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """frame[box] (black outside the frame), resized to size x size (INTER_AREA when shrinking); 0 keeps its size."""
    x0, y0, x1, y1 = box
    h, w = frame.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    if not size or out.shape[:2] == (size, size):
        return out
    shrinking = out.shape[0] > size or out.shape[1] > size
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
