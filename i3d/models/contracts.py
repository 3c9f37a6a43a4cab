"""Input contracts: the one place that says how each zoo model wants its frames prepared.

The DFDC ensemble mixes networks trained with different input conventions, and feeding one model another's
normalisation fails silently (the logits are merely worse). So the dataset, the trainer and every tool read crop
size, resize, normalisation and clip length from `contract_for(name)` and never hard-code them.

    name          crop  short side  normalization  value range of the prepared input     min frames
    i3d           224   256         i3d            [-1, 1]                                64
    res34         224   256         none           [0, 255]                               32
    mc3_112       112   128         imagenet       [-2.118, 2.640] (ImageNet mean/std)    32
    mc3_224       224   256         imagenet       [-2.118, 2.640]                        32
    r2p1_112      112   128         imagenet       [-2.118, 2.640]                        32
    r3d_18        112   128         kinetics       [-1.895, 2.873] (torchvision video)    16
    mc3_18        112   128         kinetics       [-1.895, 2.873]                        16
    r2plus1d_18   112   128         kinetics       [-1.895, 2.873]                        16

The normalisation arithmetic itself lives in `i3d.data.transforms.normalize_rgb`, shared with the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from i3d.data.transforms import normalize_rgb, to_channels_first

NORMALIZATIONS = ("i3d", "imagenet", "kinetics", "none")


@dataclass(frozen=True)
class InputContract:
    """What a model expects as input.

    Attributes:
        crop_size: side of the square crop fed to the network.
        short_side: frames are resized so their shorter side is this many pixels before cropping.
        normalization: "i3d" (x/255*2-1), "imagenet", "kinetics" (torchvision video mean/std) or "none" (0-255).
        in_channels: 3 for RGB (a flow stream uses `dataclasses.replace(contract, in_channels=2)`).
        min_frames: the clip length the model is trained and evaluated with; shorter videos are looped up to it.
    """

    crop_size: int
    short_side: int
    normalization: str
    in_channels: int = 3
    min_frames: int = 32

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization={self.normalization!r} is not one of {NORMALIZATIONS}")
        if not 0 < self.crop_size <= self.short_side:
            raise ValueError(f"crop_size={self.crop_size} must be in (0, short_side={self.short_side}]")
        if self.in_channels < 1 or self.min_frames < 1:
            raise ValueError(f"in_channels={self.in_channels} and min_frames={self.min_frames} must be >= 1")


CONTRACTS: dict[str, InputContract] = {
    "i3d": InputContract(crop_size=224, short_side=256, normalization="i3d", min_frames=64),
    # Hara et al.'s ResNet3D-34 fine-tuned on raw pixel values (the DFDC author found it trained only that way)
    "res34": InputContract(crop_size=224, short_side=256, normalization="none", min_frames=32),
    "mc3_112": InputContract(crop_size=112, short_side=128, normalization="imagenet", min_frames=32),
    "mc3_224": InputContract(crop_size=224, short_side=256, normalization="imagenet", min_frames=32),
    "r2p1_112": InputContract(crop_size=112, short_side=128, normalization="imagenet", min_frames=32),
    # torchvision's own Kinetics recipe: resize to 128 x 171, centre crop 112, 16-frame clips
    "r3d_18": InputContract(crop_size=112, short_side=128, normalization="kinetics", min_frames=16),
    "mc3_18": InputContract(crop_size=112, short_side=128, normalization="kinetics", min_frames=16),
    "r2plus1d_18": InputContract(crop_size=112, short_side=128, normalization="kinetics", min_frames=16),
}


def contract_for(name: str) -> InputContract:
    """The input contract of zoo model `name`."""
    if name not in CONTRACTS:
        raise ValueError(f"no input contract for model {name!r}; known models: {sorted(CONTRACTS)}")
    return CONTRACTS[name]


def training_contract(name: str, crop_size: int, normalization: str, num_frames: int,
                      short_side: int | None = None) -> InputContract | None:  # fmt: skip
    """The contract of model `name` trained on `crop_size` crops of `num_frames` frames (saved in its checkpoints).

    Args:
        short_side: the frames the training and validation crops were cut from (min(H, W) of the stores); None:
            the zoo contract's short side scaled by crop_size / its crop.

    Returns:
        None for a model without a zoo contract (a custom backbone).
    """
    base = CONTRACTS.get(name)
    if base is None:
        return None
    short_side = short_side or max(crop_size, round(base.short_side * crop_size / base.crop_size))
    return InputContract(crop_size, max(short_side, crop_size), normalization, min_frames=num_frames)


def loop_frames(frames: np.ndarray, num_frames: int) -> np.ndarray:
    """Repeat a clip from its start until it has at least `num_frames` frames (longer clips are returned as is)."""
    if len(frames) == 0:
        raise ValueError("cannot loop an empty clip (0 frames decoded?)")
    if len(frames) >= num_frames:
        return frames
    return frames[np.arange(num_frames) % len(frames)]


def resize_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """Resize (T, H, W, 3) frames so min(H, W) == short_side, keeping the aspect ratio."""
    h, w = frames.shape[1:3]
    if min(h, w) == short_side:
        return frames
    scale = short_side / min(h, w)
    if h <= w:
        new_h, new_w = short_side, max(short_side, round(w * scale))
    else:
        new_h, new_w = max(short_side, round(h * scale)), short_side
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR  # area averaging avoids aliasing when shrinking
    return np.stack([cv2.resize(f, (new_w, new_h), interpolation=interp) for f in frames])


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Central size x size window of (T, H, W, C) frames (the top-left pixel of the window is ((H-size)//2, ...))."""
    h, w = frames.shape[1:3]
    y0, x0 = (h - size) // 2, (w - size) // 2
    return frames[:, y0 : y0 + size, x0 : x0 + size]


def prepare(frames_uint8: np.ndarray, contract: InputContract) -> torch.Tensor:
    """Turn decoded RGB frames into one model-ready clip, exactly as `contract` says.

    Loops clips shorter than `contract.min_frames` (never trims: temporal sampling is the caller's choice), resizes
    the short side to `contract.short_side`, centre-crops `contract.crop_size` and normalises.

    Args:
        frames_uint8: (T, H, W, 3) uint8 RGB frames.
        contract: the model's input contract (`contract_for(name)`).

    Returns:
        float32 tensor (3, T', S, S) with T' = max(T, min_frames) and S = crop_size, in the contract's value range.
    """
    if not isinstance(frames_uint8, np.ndarray) or frames_uint8.dtype != np.uint8:
        raise TypeError(f"prepare() wants a uint8 numpy array of RGB frames, got {type(frames_uint8).__name__} "
                        f"of dtype {getattr(frames_uint8, 'dtype', None)}")
    if frames_uint8.ndim != 4 or frames_uint8.shape[-1] != 3:
        raise ValueError(f"prepare() wants (T, H, W, 3) RGB frames, got shape {frames_uint8.shape}")
    if contract.in_channels != 3:
        raise ValueError(f"prepare() makes RGB input but the contract asks for {contract.in_channels} channels; "
                         "flow inputs come from the flow store via i3d.data")
    frames = loop_frames(frames_uint8, contract.min_frames)
    frames = center_crop(resize_short_side(frames, contract.short_side), contract.crop_size)
    return torch.from_numpy(to_channels_first(normalize_rgb(frames, contract.normalization)))  # (3, T, S, S)
