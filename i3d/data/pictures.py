"""Model input as pictures: a clip's RGB frames over its flow in the colour-wheel code, as the network receives them.

The inverse of `transforms.stream_input`'s values: RGB back to 0-255 by the normalisation it was made with
(`transforms.denormalize_rgb`), flow (clip(px, -bound, bound) / bound) coloured with 1, the bound, as the fully
saturated speed (`flow.viz.flow_to_colour`). Crop and flip are the input's own: a mirrored clip shows mirrored RGB
and flow whose horizontal hues are swapped (right is red, left cyan-blue), in both streams alike.

    picture = batch_picture(batch, "i3d")    # a DataLoader batch: the trainer's TensorBoard "inputs/clips"
    picture = clip_picture({"rgb": x_rgb, "flow": x_flow}, "i3d", title="v_X: clip 1")   # (C, T, S, S) each
"""

from __future__ import annotations

import numpy as np
import torch

from common.pictures import caption, hstack, resize_height, vstack
from flow.viz import flow_to_colour
from i3d.data import transforms as T
from i3d.data.dataset import STREAMS


def _numpy(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)


def rgb_frames(x, normalization: str = "i3d") -> np.ndarray:
    """(3, T, S, S) RGB model input -> (T, S, S, 3) uint8 frames."""
    return T.denormalize_rgb(np.moveaxis(_numpy(x), 0, -1), normalization)


def flow_frames(x) -> np.ndarray:
    """(2, T, S, S) flow model input (1 = the bound) -> (T, S, S, 3) uint8 colour-wheel frames."""
    return flow_to_colour(np.moveaxis(_numpy(x), 0, -1), max_magnitude=1.0)


def spread(num_frames: int, count: int) -> np.ndarray:
    """Up to `count` frame indices spread evenly over `num_frames`, first and last included."""
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(np.int64))


def clip_picture(inputs: dict, normalization: str = "i3d", *, frames: int = 8, height: int | None = None,
                 title: str = "") -> np.ndarray:
    """One clip: a row per stream present in `inputs` ({"rgb": (3, T, S, S), "flow": (2, T, S, S)}), `frames` of
    its T frames spread evenly in columns, each `height` rows high (default: the input's own), under `title`."""
    streams = [s for s in STREAMS if s in inputs]
    num_frames = inputs[streams[0]].shape[1]
    chosen = spread(num_frames, frames)
    rows = []
    for s in streams:
        x = inputs[s][:, chosen]
        pictures = rgb_frames(x, normalization) if s == "rgb" else flow_frames(x)
        rows.append(hstack([resize_height(p, height or p.shape[0]) for p in pictures]))
    label = f"{' / '.join(streams)}: frames {', '.join(str(int(t)) for t in chosen)} of {num_frames}"
    return caption(vstack(rows), f"{title}\n{label}" if title else label)


def batch_picture(batch: dict, normalization: str = "i3d", *, clips: int = 4, frames: int = 8,
                  height: int | None = None) -> np.ndarray:
    """The first `clips` clips of a `TwoStreamClipDataset` batch (rgb (B, 3, T, S, S), flow (B, 2, T, S, S),
    video_id, crop, flip), one above the other, each titled with its video, crop corner and flip."""
    streams = [s for s in STREAMS if s in batch]
    count = min(clips, len(batch[streams[0]]))
    pictures = []
    for k in range(count):
        title = str(batch["video_id"][k]) if "video_id" in batch else f"clip {k}"
        if "crop" in batch:
            y0, x0 = (int(v) for v in batch["crop"][k])
            title += f", crop at y {y0} x {x0}"
        if "flip" in batch and bool(batch["flip"][k]):
            title += ", mirrored"
        pictures.append(clip_picture({s: batch[s][k] for s in streams}, normalization, frames=frames, height=height,
                                     title=title))
    return vstack(pictures, gap=8)
