"""Pure functions for clip sampling: frame indices, crop boxes, crop, flip and normalisation.

Frames are channels-last numpy arrays as `flow.store.VideoStore` returns them: RGB (T, H, W, 3) uint8 and flow
(T, H, W, 2) float32 pixels (x right, y down); `flow_code_clip` takes the stores' 8-bit flow codes instead.
Nothing here draws random numbers on its own: the random functions take a `numpy.random.Generator`, so the caller
decides what the draw depends on.

Decoded frames become model input in one call (`stream_input`). The training data path sends 8-bit values instead,
4x fewer bytes through the DataLoader's shared memory and the bus: `rgb_clip` / `flow_code_clip` with a 256-entry
table per channel (`rgb_table`, `flow_code_tables`), looked up on the device by `model_input` / `expand_compact`.
The tables hold `stream_input`'s own values, so both paths give the same float32 input, bit for bit.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from flow.quantize import dequantize_flow

# Per-channel statistics of x / 255 (RGB order).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's video models (R3D, R(2+1)D, MC3) were trained on Kinetics with these.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
NORMALIZATIONS = ("i3d", "imagenet", "kinetics", "none")
EVAL_STARTS = ("centre", "first")  # where test clips start: centred in equal segments, or at frame 0
COMPACT_KEYS = ("rgb", "flow", "rgb_table", "flow_table")  # what `model_input` moves to the device


# ---------------------------------------------------------------- time


def clip_indices(num_video_frames: int, num_frames: int, start: int) -> np.ndarray:
    """`num_frames` consecutive frame indices from `start`, looping back to frame 0 past the end of the video.

    Returns:
        (num_frames,) int64.
    """
    if num_video_frames < 1:
        raise ValueError(f"cannot sample frames from a video with {num_video_frames} frames")
    return (start + np.arange(num_frames, dtype=np.int64)) % num_video_frames


def random_start(num_video_frames: int, num_frames: int, rng: np.random.Generator) -> int:
    """A uniform start frame such that the clip fits in the video; 0 when the video is shorter than the clip."""
    return int(rng.integers(0, max(num_video_frames - num_frames, 0) + 1))


def even_starts(num_video_frames: int, num_frames: int, num_clips: int = 1) -> np.ndarray:
    """Start frames of `num_clips` clips centred in `num_clips` equal segments of the video.

    `num_clips=1` gives the clip around the temporal centre. When the video is shorter than the clip every start is 0
    (the clip then loops, as in training).

    Returns:
        (num_clips,) int64.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    slack = max(num_video_frames - num_frames, 0)
    return (slack * (2 * np.arange(num_clips, dtype=np.int64) + 1)) // (2 * num_clips)


def eval_clip_indices(num_video_frames: int, num_frames: int, num_clips: int = 1, min_frames: int = 1,
                      start: str = "centre") -> np.ndarray:
    """Frame indices of the test clips: `num_clips` clips of `num_frames` centred in equal segments of the video, or
    with start="first" one clip from frame 0.

    `num_frames=0` takes the whole video as one clip, looped from frame 0 up to `min_frames` when it is shorter
    (the training clip length: a network trained on 64 frames is not fed 5). A video shorter than a clip loops.

    Returns:
        (num_clips, T) int64.
    """
    if start not in EVAL_STARTS:
        raise ValueError(f"start={start!r}: use one of {EVAL_STARTS}")
    length = num_frames or max(num_video_frames, min_frames)
    starts = even_starts(num_video_frames, length, num_clips) if start == "centre" else np.zeros(1, np.int64)
    return np.stack([clip_indices(num_video_frames, length, s) for s in starts])


# ---------------------------------------------------------------- space


def check_crop(height: int, width: int, size: int, where: str = "frame") -> None:
    """Raise a ValueError when an SxS crop does not fit in an HxW frame (we never pad: padding would hide a mistake)."""
    if size > height or size > width:
        raise ValueError(
            f"{where}: stored frames are {height}x{width}, smaller than crop_size={size}; "
            f"extract the stores with a short side >= {size} or lower crop_size"
        )


def random_crop_origin(height: int, width: int, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner (y0, x0) of a uniform random SxS window inside an HxW frame."""
    check_crop(height, width, size)
    return int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))


def center_crop_origin(height: int, width: int, size: int) -> tuple[int, int]:
    """Top-left corner (y0, x0) of the centred SxS window (rounded towards the top-left)."""
    check_crop(height, width, size)
    return (height - size) // 2, (width - size) // 2


def crop(frames: np.ndarray, y0: int, x0: int, size: int) -> np.ndarray:
    """The SxS window at (y0, x0) of channels-last frames (..., H, W, C); a view, no copy."""
    return frames[..., y0 : y0 + size, x0 : x0 + size, :]


def hflip_rgb(frames: np.ndarray) -> np.ndarray:
    """Mirror channels-last RGB frames (..., H, W, 3) left-right; a view."""
    return frames[..., ::-1, :]


def hflip_flow(flow: np.ndarray) -> np.ndarray:
    """Mirror flow (..., H, W, 2) left-right. Mirroring reverses horizontal motion, so x is negated; y is kept."""
    flipped = flow[..., ::-1, :].copy()
    flipped[..., 0] *= -1
    return flipped


# ---------------------------------------------------------------- values


def normalize_rgb(frames: np.ndarray, kind: str = "i3d", channel_axis: int = -1) -> np.ndarray:
    """uint8 RGB -> C-contiguous float32 of the same shape (whatever the memory layout of `frames`).

    Args:
        frames: uint8 values 0-255 with the 3 colour channels on `channel_axis` (last by default); may be a strided
            view such as `channels_first(crop(...))`: the transposing copy and the scaling are then one pass.
        kind: "i3d": x / 255 * 2 - 1 in [-1, 1] (DeepMind's I3D); "imagenet" / "kinetics": (x / 255 - mean) / std
            with the ImageNet or torchvision-video Kinetics statistics; "none": the raw 0-255 values as float.
        channel_axis: where the channels are, e.g. -4 for (3, T, H, W).
    """
    x = np.empty(frames.shape, np.float32)
    if kind == "i3d":
        np.multiply(frames, np.float32(2.0 / 255.0), out=x)
        x -= 1.0
    elif kind in ("imagenet", "kinetics"):
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if kind == "imagenet" else (KINETICS_MEAN, KINETICS_STD)
        shape = [1] * x.ndim
        shape[channel_axis] = 3
        np.multiply(frames, np.float32(1.0 / 255.0), out=x)
        x -= np.asarray(mean, np.float32).reshape(shape)
        x /= np.asarray(std, np.float32).reshape(shape)
    elif kind == "none":
        x[...] = frames
    else:
        raise ValueError(f"unknown RGB normalization {kind!r}; choose one of {NORMALIZATIONS}")
    return x


def denormalize_rgb(x: np.ndarray, kind: str = "i3d", channel_axis: int = -1) -> np.ndarray:
    """Inverse of `normalize_rgb`: model input back to uint8 0-255 (rounded, clipped), the same shape, to look at."""
    x = np.asarray(x, np.float32)
    if kind == "i3d":
        x = (x + 1.0) * 127.5
    elif kind in ("imagenet", "kinetics"):
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if kind == "imagenet" else (KINETICS_MEAN, KINETICS_STD)
        shape = [1] * x.ndim
        shape[channel_axis] = 3
        x = (x * np.asarray(std, np.float32).reshape(shape) + np.asarray(mean, np.float32).reshape(shape)) * 255.0
    elif kind != "none":
        raise ValueError(f"unknown RGB normalization {kind!r}; choose one of {NORMALIZATIONS}")
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def normalize_flow(flow_px: np.ndarray, bound: float) -> np.ndarray:
    """Flow in pixels -> C-contiguous float32 clip(flow, -bound, bound) / bound in [-1, 1] (any input layout).

    `bound` is the one the stores were written with (`InputSpec.flow_bound`, from the store attributes).
    """
    x = np.clip(flow_px, -bound, bound, out=np.empty(flow_px.shape, np.float32))
    x /= np.float32(bound)
    return x


def stream_input(stream: str, frames: np.ndarray, y0: int, x0: int, size: int, *, clips: int = 1, flip: bool = False,
                 normalization: str = "i3d", flow_bound: float = 0.0) -> np.ndarray:
    """The one way from decoded frames to model input: predict, the ensemble and the features call this, and the
    dataset's 8-bit path (`rgb_clip`, `flow_code_clip` and their tables) gives the same values, bit for bit.

    Crop, mirror (flow x negated), channels first, normalise: RGB by `normalization`, flow as
    clip(px, -flow_bound, flow_bound) / flow_bound.

    Args:
        stream: "rgb" ((K*T, H, W, 3) uint8 frames) or "flow" ((K*T, H, W, 2) float32 pixels), the frames of `clips`
            clips of T frames each, already gathered at the clips' frame indices.
        y0, x0, size: the crop window in frame coordinates.

    Returns:
        (K, C, T, S, S) C-contiguous float32.
    """
    if stream not in ("rgb", "flow"):
        raise ValueError(f"stream must be 'rgb' or 'flow', got {stream!r}")
    frames = crop(frames, y0, x0, size)
    if stream == "rgb":
        return _lookup(rgb_clip(frames, clips=clips, flip=flip), rgb_table(normalization).T)
    if not flow_bound > 0:
        raise ValueError(f"flow_bound={flow_bound} must be > 0: pass the stores' bound (InputSpec.flow_bound)")
    frames = hflip_flow(frames) if flip else frames
    return normalize_flow(channels_first(frames.reshape(clips, -1, *frames.shape[1:])), flow_bound)


def rgb_clip(frames: np.ndarray, *, clips: int = 1, flip: bool = False) -> np.ndarray:
    """Cropped RGB frames (K*T, S, S, 3) uint8 -> (K, 3, T, S, S) C-contiguous uint8, mirrored when `flip`.

    The values stay 0-255: `rgb_table(normalization)` holds the model input of each (the transpose to channels-first
    is cheap on 1-byte values, and a quarter of float32's bytes go on to the DataLoader's shared memory).
    """
    frames = hflip_rgb(frames) if flip else frames
    return np.ascontiguousarray(channels_first(frames.reshape(clips, -1, *frames.shape[1:])))


def flow_code_clip(codes: np.ndarray, *, clips: int = 1, flip: bool = False) -> np.ndarray:
    """The stores' 8-bit flow codes cut to the crop, (K*T, 2, S, S) as `VideoStore.read_flow_codes(indices, box)`
    returns them -> (K, 2, T, S, S) C-contiguous uint8, columns mirrored when `flip`.

    A mirror also negates the x component: that is done by `flow_code_tables(..., flip=True)`, not on the codes.
    """
    codes = codes[..., ::-1] if flip else codes
    n, _, h, w = codes.shape
    return np.ascontiguousarray(codes.reshape(clips, n // clips, 2, h, w).transpose(0, 2, 1, 3, 4))


def flow_code_tables(store_bound: float, flow_bound: float, flip: bool = False) -> np.ndarray:
    """(2, 256) float32: the model input of each code in the x and the y plane (x negated when mirrored),
    normalize_flow(dequantize_flow(code, store_bound), flow_bound): `stream_input("flow", ...)` of the pixels.

    Args:
        store_bound: the bound the codes were quantised with (`VideoStore.flow_bound`).
        flow_bound: the model's bound (`InputSpec.flow_bound`); input = clip(px, -flow_bound, flow_bound) / flow_bound.
    """
    if not flow_bound > 0:
        raise ValueError(f"flow_bound={flow_bound} must be > 0: pass the stores' bound (InputSpec.flow_bound)")
    table = normalize_flow(dequantize_flow(np.arange(256, dtype=np.uint8), store_bound), flow_bound)
    return np.stack([-table if flip else table, table])


def rgb_table(kind: str) -> np.ndarray:
    """(256, 3) float32: `normalize_rgb` of each 0-255 value in each channel."""
    return normalize_rgb(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1), kind)


def _lookup(x: np.ndarray, tables, out: np.ndarray | None = None) -> np.ndarray:
    """Map contiguous uint8 (K, C, ..., W) through `tables[c]`, 256 values for channel c, into float32 `out` (cv2.LUT:
    on the CPU faster than numpy's cast and multiply or torch's gather, docs/PERFORMANCE.md "Loader"; and exact: the
    tables hold what those compute)."""
    out = np.empty(x.shape, np.float32) if out is None else out
    for k in range(x.shape[0]):
        for c in range(x.shape[1]):
            plane = x[k, c].reshape(-1, x.shape[-1])
            cv2.LUT(plane, np.ascontiguousarray(tables[c], np.float32), dst=out[k, c].reshape(plane.shape))
    return out


def channels_first(frames: np.ndarray) -> np.ndarray:
    """(..., T, H, W, C) -> (..., C, T, H, W), the layout 3D convolutions take; a view (normalising copies it)."""
    return np.moveaxis(frames, -1, -4)


def expand_compact(batch: dict) -> dict:
    """A sample or batch of `TwoStreamClipDataset(compact=True)` -> the same dict with float32 model input: each
    8-bit stream through its table (`rgb_table`, `flow_table`: (..., C, 256), one per sample), which leaves the dict.

    The values are the tables' own, so they equal `stream_input`'s bit for bit on any device. Call it after moving the
    batch to the GPU (`model_input`), so that the 8-bit tensors are what crosses the bus. A dict without tables
    (already float) comes back as it is.
    """
    out = dict(batch)
    for stream in ("rgb", "flow"):
        table = out.pop(f"{stream}_table", None)
        if table is not None:
            out[stream] = lookup_tensor(out[stream], table.to(out[stream].device))
    return out


def model_input(batch: dict, device: torch.device | str) -> dict:
    """`batch` with its streams moved to `device` (non-blocking: from pinned memory the copy overlaps) and expanded
    there (`expand_compact`): what the trainer, the evaluation and distillation feed the model."""
    moved = {key: value.to(device, non_blocking=True) if key in COMPACT_KEYS else value for key, value in batch.items()}
    return expand_compact(moved)


def lookup_tensor(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """uint8 (*lead, [K,] C, T, H, W) -> float32 of the same shape, value v of channel c in sample n -> table[n, c, v].

    Args:
        table: (*lead, C, 256) float32 on x's device: `lead` is () for one sample, (B,) for a batch.
    """
    same = x.shape[: table.ndim - 2] == table.shape[:-2] and x.ndim >= 4 and x.shape[-4] == table.shape[-2]
    if x.dtype != torch.uint8 or table.shape[-1] != 256 or not same:
        raise ValueError(f"need uint8 values and (..., C, 256) tables of the same samples and channels: got {x.dtype} "
                         f"{tuple(x.shape)} and {tuple(table.shape)}")
    channels = table.shape[-2]
    # (N samples, K clips, C, T*H, W)
    planes = x.contiguous().view(table[..., 0, 0].numel(), -1, channels, math.prod(x.shape[-3:-1]), x.shape[-1])
    tables = table.reshape(planes.shape[0], channels, 256).to(torch.float32)
    out = torch.empty(planes.shape, dtype=torch.float32, device=x.device)
    if x.device.type == "cpu":
        for sample, t, dst in zip(planes.numpy(), tables.numpy(), out.numpy(), strict=True):
            _lookup(sample, t, out=dst)
        return out.view(x.shape)
    for n in range(planes.shape[0]):  # one clip at a time: the int64 index is a clip's size, not a batch's
        for k in range(planes.shape[1]):
            torch.gather(tables[n], 1, planes[n, k].view(channels, -1).long(), out=out[n, k].view(channels, -1))
    return out.view(x.shape)
