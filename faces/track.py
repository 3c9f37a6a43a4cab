"""Linking per-frame face detections into tracks (one per person) and giving each track a box in every frame.

Faces are detected every `stride`-th frame only (the DFDC authors' every 10th). A detection joins the track whose
latest box overlaps it most (IoU at least `min_iou`, with the latest box or with that box moved on at the track's
velocity; greedy, best pairs first, so two people side by side never swap: their boxes barely overlap); a detection
that no track takes starts a new one, and a track that finds no detection for more than `max_missed` sampled frames
in a row ends. Between its detections a track's box is interpolated linearly, and the last detection holds for the
`stride - 1` frames after it, because a detection at frame k stands for frames k..k+stride-1 (so a 300-frame video
detected at 0, 10, ..., 290 gives a track of all 300 frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Track:
    """One person's detections: the sampled frame indices and their (x0, y0, x1, y1, score) rows."""

    frames: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    missed: int = 0  # sampled frames since the last detection (while linking)

    def to_json(self) -> dict:
        return {"frames": list(self.frames), "boxes": [[round(float(v), 2) for v in b] for b in self.boxes]}

    @classmethod
    def from_json(cls, data: dict) -> Track:
        return cls(frames=[int(f) for f in data["frames"]], boxes=[list(map(float, b)) for b in data["boxes"]])


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` (N, >=4) with every box in `b` (M, >=4): an (N, M) array."""
    a, b = np.asarray(a, np.float64)[:, None, :4], np.asarray(b, np.float64)[None, :, :4]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def link_tracks(detections: list[tuple[int, np.ndarray]], min_iou: float = 0.3, max_missed: int = 1) -> list[Track]:
    """Link detections into tracks, in the order of their first frame.

    Args:
        detections: (frame index, (N, 5) boxes) for every sampled frame, in frame order (N may be 0).
        min_iou: least overlap between a track's latest box and a detection to join them.
        max_missed: sampled frames in a row without a detection that a track survives (its box is interpolated
            across the gap).
    """
    active: list[Track] = []
    finished: list[Track] = []
    for frame, boxes in detections:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
        taken = _match(active, boxes, frame, min_iou)
        for track_index, track in enumerate(active):
            if track_index in taken:
                track.frames.append(frame)
                track.boxes.append(boxes[taken[track_index]].tolist())
                track.missed = 0
            else:
                track.missed += 1
        finished += [t for t in active if t.missed > max_missed]
        active = [t for t in active if t.missed <= max_missed]
        claimed = set(taken.values())
        active += [Track([frame], [box.tolist()]) for i, box in enumerate(boxes) if i not in claimed]
    return sorted(finished + active, key=lambda t: (t.frames[0], t.boxes[0][0]))


def _match(tracks: list[Track], boxes: np.ndarray, frame: int, min_iou: float) -> dict[int, int]:
    """Greedy assignment, highest IoU first: {track index: detection index}. A track's overlap is the better of its
    latest box's and of that box moved on at the track's last velocity (a steady pan moves a face farther between
    sampled frames than its box overlaps)."""
    if not tracks or not len(boxes):
        return {}
    overlap = np.maximum(iou(np.array([t.boxes[-1] for t in tracks]), boxes),
                         iou(np.array([_predict(t, frame) for t in tracks]), boxes))
    taken: dict[int, int] = {}
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        t, d = divmod(int(flat), len(boxes))
        if overlap[t, d] < min_iou:
            break
        if t not in taken and d not in taken.values():
            taken[t] = d
    return taken


def _predict(track: Track, frame: int) -> np.ndarray:
    """The track's box at `frame`, extrapolated from its last two detections (its latest box if it has one)."""
    last = np.asarray(track.boxes[-1][:4])
    if len(track.frames) < 2:
        return last
    velocity = (last - np.asarray(track.boxes[-2][:4])) / (track.frames[-1] - track.frames[-2])
    return last + velocity * (frame - track.frames[-1])


def track_span(track: Track, num_frames: int, stride: int) -> tuple[int, int]:
    """[start, end) frames a track covers: its first detection to its last plus `stride - 1`, within the video."""
    return track.frames[0], min(track.frames[-1] + stride, num_frames)


def frame_boxes(track: Track, num_frames: int, stride: int) -> tuple[int, np.ndarray]:
    """(start, (L, 4) boxes): the track's box in each frame of its span, interpolated linearly between detections."""
    start, end = track_span(track, num_frames, stride)
    known = np.asarray(track.boxes, np.float64)[:, :4]
    frames = np.arange(start, end)
    # np.interp holds the last detection's box after it (the frames that detection stands for)
    boxes = np.stack([np.interp(frames, track.frames, known[:, k]) for k in range(4)], axis=1)
    return start, boxes
