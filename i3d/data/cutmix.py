"""Video CutMix (Yun et al. 2019, extended to clips): paste a cuboid from another clip of the batch.

    clip i  (C, T, H, W)                    clip perm[i]
    +-----------------+                     +-----------------+
    |      +-----+    |   <- box from ---   |      +-----+    |
    |      | pasted   |                     |      |     |    |
    |      +-----+    |                     |      +-----+    |
    +-----------------+                     +-----------------+
    target_i = (1 - f) * y_i + f * y_perm[i],   f = box volume / (T * H * W), exactly as pasted

The box is a spatial rectangle over all frames ("spatial"), a window of whole frames ("temporal"), or both
("both"); "random" picks one of the three per batch. One box and one permutation per batch, applied to every
stream tensor given, so RGB and flow are cut at the same place and stay aligned. Inputs are left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

CUTMIX_MODES = ("spatial", "temporal", "both", "random")


@dataclass(frozen=True)
class Box:
    """A cuboid [t0, t1) x [y0, y1) x [x0, x1) of a (T, H, W) clip."""

    t0: int
    t1: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def volume(self) -> int:
        return (self.t1 - self.t0) * (self.y1 - self.y0) * (self.x1 - self.x0)

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return slice(self.t0, self.t1), slice(self.y0, self.y1), slice(self.x0, self.x1)


@dataclass
class CutMixResult:
    """What `cutmix` returns: the mixed streams, soft targets, and how they were made (for logging and tests)."""

    streams: dict[str, Tensor]
    targets: Tensor
    box: Box
    perm: Tensor
    fraction: float


def _span(size: int, length: int, rng: np.random.Generator) -> tuple[int, int]:
    """A window of `length` (at most `size`) around a uniformly drawn centre, clipped to [0, size) as CutMix does."""
    centre = int(rng.integers(size))
    lo, hi = int(np.clip(centre - length // 2, 0, size)), int(np.clip(centre + length - length // 2, 0, size))
    return lo, hi


def sample_box(shape: tuple[int, int, int], lam: float, mode: str, rng: np.random.Generator) -> Box:
    """Draw a box covering about `lam` of a (T, H, W) clip (less where it is clipped at the borders).

    Args:
        shape: (T, H, W) of the clips.
        lam: target fraction of the volume to paste, in [0, 1].
        mode: "spatial" (all frames, area lam), "temporal" (whole frames, lam of them), "both" (each side
            scaled by lam ** (1/3)) or "random" (one of the three, uniformly).
        rng: numpy generator.
    """
    if mode not in CUTMIX_MODES:
        raise ValueError(f"CutMix mode={mode!r} is not one of {CUTMIX_MODES}")
    if mode == "random":
        mode = CUTMIX_MODES[int(rng.integers(3))]
    t, h, w = shape
    if mode == "temporal":
        t0 = int(rng.integers(t - round(t * lam) + 1))
        return Box(t0, t0 + round(t * lam), 0, h, 0, w)
    side = np.sqrt(lam) if mode == "spatial" else np.cbrt(lam)
    t0, t1 = (0, t) if mode == "spatial" else _span(t, round(t * side), rng)
    y0, y1 = _span(h, round(h * side), rng)
    x0, x1 = _span(w, round(w * side), rng)
    return Box(t0, t1, y0, y1, x0, x1)


def mix_targets(labels: Tensor, perm: Tensor, fraction: float, num_classes: int | None) -> Tensor:
    """(1 - fraction) * y + fraction * y[perm], with integer class labels turned into one-hot rows first.

    Integer labels with `num_classes` > 1 give (B, num_classes) soft targets for `F.cross_entropy`; with
    `num_classes` == 1 (a binary head) they give (B, 1) float targets for `F.binary_cross_entropy_with_logits`.
    Float labels (already soft) are mixed as they are.
    """
    if labels.is_floating_point():
        y = labels
    elif num_classes is None:
        raise ValueError("integer labels need num_classes (1 for a binary BCE head) to build soft CutMix targets")
    elif num_classes == 1:
        y = labels.float().unsqueeze(1)
    else:
        y = F.one_hot(labels.long(), num_classes).float()
    return (1.0 - fraction) * y + fraction * y[perm]


def cutmix(
    streams: dict[str, Tensor],
    labels: Tensor,
    *,
    alpha: float = 1.0,
    mode: str = "both",
    num_classes: int | None = None,
    rng: np.random.Generator | None = None,
) -> CutMixResult:
    """Apply one CutMix box to every stream of a batch.

    Args:
        streams: e.g. {"rgb": (B, 3, T, H, W), "flow": (B, 2, T, H, W)}; all with the same B, T, H, W.
        labels: (B,) integer classes, or float targets (B,) / (B, K).
        alpha: lam ~ Beta(alpha, alpha) is the volume fraction aimed at (1.0: uniform, as in the paper).
        mode: "spatial", "temporal", "both" or "random" (see `sample_box`).
        num_classes: for integer labels, the classifier size (1 = binary head).
        rng: numpy generator (default: a fresh unseeded one).

    Returns:
        A `CutMixResult`; `targets` are mixed by the exact pasted volume fraction.
    """
    if not streams:
        raise ValueError("cutmix() got no stream tensors")
    shapes = {name: tuple(x.shape) for name, x in streams.items()}
    first = next(iter(shapes.values()))
    if any(len(s) != 5 or s[0] != first[0] or s[2:] != first[2:] for s in shapes.values()):
        raise ValueError(f"cutmix() needs (B, C, T, H, W) streams sharing B, T, H, W; got {shapes}")
    if len(labels) != first[0]:
        raise ValueError(f"cutmix() got {len(labels)} labels for a batch of {first[0]} clips")
    if alpha <= 0:
        raise ValueError(f"CutMix alpha={alpha} must be > 0")
    rng = rng if rng is not None else np.random.default_rng()
    t, h, w = first[2:]
    box = sample_box((t, h, w), float(rng.beta(alpha, alpha)), mode, rng)
    perm = torch.from_numpy(rng.permutation(first[0])).to(labels.device)
    ts, ys, xs = box.slices
    mixed = {}
    for name, x in streams.items():
        out = x.clone()
        out[:, :, ts, ys, xs] = x[perm.to(x.device), :, ts, ys, xs]
        mixed[name] = out
    fraction = box.volume / (t * h * w)
    return CutMixResult(mixed, mix_targets(labels, perm, fraction, num_classes), box, perm, fraction)
