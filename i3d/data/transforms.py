"""Pure functions for clip sampling: frame indices, crop boxes, crop, flip and normalisation.

Frames are channels-last numpy arrays as `flow.store.VideoStore` returns them: RGB (T, H, W, 3) uint8 and flow
(T, H, W, 2) float32 pixels (x right, y down); `flow_codes_input` takes the stores' 8-bit flow codes instead.
Nothing here draws random numbers on its own: the random functions take a `numpy.random.Generator`, so the caller
decides what the draw depends on. The last two functions are the
torch counterparts for batches of `TwoStreamClipDataset(compact=True)`, normalised on the GPU.
"""

from __future__ import annotations

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
                      start: str = "centre") -> np.ndarray:  # fmt: skip
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
                 normalization: str = "i3d", flow_bound: float = 0.0, compact: bool = False) -> np.ndarray:  # fmt: skip
    """The one way from frames to model input: the dataset, predict and the ensemble all call this.

    Crop, mirror (flow x negated), channels first, normalise: RGB by `normalization`, flow as
    clip(px, -flow_bound, flow_bound) / flow_bound.

    Args:
        stream: "rgb" ((K*T, H, W, 3) uint8 frames) or "flow" ((K*T, H, W, 2) float32 pixels), the frames of `clips`
            clips of T frames each, already gathered at the clips' frame indices.
        y0, x0, size: the crop window in frame coordinates.
        compact: keep RGB uint8 and flow float16 (`TwoStreamClipDataset(compact=True)`; `expand_compact` finishes).

    Returns:
        (K, C, T, S, S) C-contiguous: float32 (or uint8 / float16 when compact).
    """
    if stream not in ("rgb", "flow"):
        raise ValueError(f"stream must be 'rgb' or 'flow', got {stream!r}")
    frames = crop(frames, y0, x0, size)
    if flip:
        frames = hflip_rgb(frames) if stream == "rgb" else hflip_flow(frames)
    frames = channels_first(frames.reshape(clips, -1, *frames.shape[1:]))  # (K, C, T, S, S), a view
    if stream == "rgb":
        frames = np.ascontiguousarray(frames)  # a uint8 copy: the transpose to channels-first is cheap on 1-byte values
        return frames if compact else _lookup(frames, rgb_table(normalization).T)
    if not flow_bound > 0:
        raise ValueError(f"flow_bound={flow_bound} must be > 0: pass the stores' bound (InputSpec.flow_bound)")
    return _half(normalize_flow(frames, flow_bound)) if compact else normalize_flow(frames, flow_bound)


def flow_codes_input(codes: np.ndarray, store_bound: float, *, clips: int = 1, flip: bool = False,
                     flow_bound: float = 0.0, compact: bool = False) -> np.ndarray:  # fmt: skip
    """`stream_input("flow", ...)` of the stores' 8-bit codes, already cut to the crop: the same values, bit for bit
    (a test checks it), in a fraction of the time, since every code's model input comes from one 256-entry table.

    Args:
        codes: (K*T, 2, S, S) uint8 codes as `VideoStore.read_flow_codes(indices, box)` returns them.
        store_bound: the bound the codes were quantised with (`VideoStore.flow_bound`).
        flow_bound: the model's bound (`InputSpec.flow_bound`); input = clip(px, -flow_bound, flow_bound) / flow_bound.

    Returns:
        (K, 2, T, S, S) C-contiguous float32 (float16 when compact).
    """
    if not flow_bound > 0:
        raise ValueError(f"flow_bound={flow_bound} must be > 0: pass the stores' bound (InputSpec.flow_bound)")
    if flip:
        codes = codes[..., ::-1]  # the x plane's sign flips through its table below
    n, _, h, w = codes.shape
    planes = np.ascontiguousarray(codes.reshape(clips, n // clips, 2, h, w).transpose(0, 2, 1, 3, 4))
    table = flow_code_table(store_bound, flow_bound)
    tables = (-table if flip else table, table)  # x, y: a mirror reverses horizontal motion
    return _lookup(planes, tables, dtype=np.float16 if compact else np.float32)


def flow_code_table(store_bound: float, flow_bound: float) -> np.ndarray:
    """(256,) float32: the model input of each code, normalize_flow(dequantize_flow(code, store_bound), flow_bound)."""
    return normalize_flow(dequantize_flow(np.arange(256, dtype=np.uint8), store_bound), flow_bound)


def rgb_table(kind: str) -> np.ndarray:
    """(256, 3) float32: `normalize_rgb` of each 0-255 value in each channel."""
    return normalize_rgb(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1), kind)


def _lookup(x: np.ndarray, tables, dtype=np.float32) -> np.ndarray:
    """Map contiguous uint8 (K, C, T, S, S) through `tables[c]`, 256 values for channel c (cv2.LUT: ~3x faster than
    numpy's cast and multiply, and exact: the tables hold what those compute)."""
    out = np.empty(x.shape, dtype)
    for k in range(x.shape[0]):
        for c in range(x.shape[1]):
            plane = x[k, c].reshape(-1, x.shape[-1])
            cv2.LUT(plane, np.ascontiguousarray(tables[c], dtype), dst=out[k, c].reshape(plane.shape))
    return out


def _half(x: np.ndarray) -> np.ndarray:
    """float32 -> float16, rounded as numpy's astype rounds; torch's conversion is ~15x faster than numpy's."""
    return torch.from_numpy(x).to(torch.float16).numpy()


def channels_first(frames: np.ndarray) -> np.ndarray:
    """(..., T, H, W, C) -> (..., C, T, H, W), the layout 3D convolutions take; a view (normalising copies it)."""
    return np.moveaxis(frames, -1, -4)


def to_channels_first(frames: np.ndarray) -> np.ndarray:
    """(..., T, H, W, C) -> a contiguous copy (..., C, T, H, W)."""
    return np.ascontiguousarray(channels_first(frames))


def normalize_rgb_tensor(x: torch.Tensor, kind: str = "i3d", channel_dim: int = -4) -> torch.Tensor:
    """`normalize_rgb` for a uint8 tensor on any device (channels on `channel_dim`); returns float32."""
    y = x.to(torch.float32)
    if kind == "i3d":
        return y.mul_(2.0 / 255.0).sub_(1.0)
    if kind in ("imagenet", "kinetics"):
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if kind == "imagenet" else (KINETICS_MEAN, KINETICS_STD)
        shape = [1] * y.ndim
        shape[channel_dim] = 3
        mean_t = torch.tensor(mean, dtype=torch.float32, device=y.device).view(shape)
        std_t = torch.tensor(std, dtype=torch.float32, device=y.device).view(shape)
        return y.mul_(1.0 / 255.0).sub_(mean_t).div_(std_t)
    if kind == "none":
        return y
    raise ValueError(f"unknown RGB normalization {kind!r}; choose one of {NORMALIZATIONS}")


def expand_compact(batch: dict, normalization: str = "i3d") -> dict:
    """A sample or batch of `TwoStreamClipDataset(compact=True)` -> float32 `rgb` (normalised) and `flow`.

    Works on any device; do it after `.to("cuda")` so the uint8/float16 tensors are what crosses the bus too.
    """
    out = dict(batch)
    if "rgb" in out:
        out["rgb"] = normalize_rgb_tensor(out["rgb"], normalization)
    if "flow" in out:
        out["flow"] = out["flow"].to(torch.float32)
    return out
