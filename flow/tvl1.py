"""TV-L1 parameters and the frame/flow alignment conventions shared by every engine."""

import dataclasses
from dataclasses import dataclass

import numpy as np

CONVENTIONS = ("backward", "forward")


@dataclass(frozen=True)
class TVL1Params:
    """Parameters of Zach et al.'s TV-L1 as in `cv2.optflow.DualTVL1OpticalFlow_create`; defaults are OpenCV's."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5
    use_initial_flow: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_attrs(self) -> dict:
        """Flat `tvl1_<field>` entries for the HDF5 attributes of a store."""
        return {f"tvl1_{k}": v for k, v in self.as_dict().items()}

    @classmethod
    def from_attrs(cls, attrs: dict) -> "TVL1Params":
        """Rebuild the parameters recorded by `to_attrs` (for re-running an extraction exactly)."""
        values = {f.name: f.type(attrs[f"tvl1_{f.name}"]) for f in dataclasses.fields(cls) if f"tvl1_{f.name}" in attrs}
        return cls(**values)


def align_flow(pair_flow: np.ndarray, num_frames: int, convention: str = "backward") -> np.ndarray:
    """Place the n-1 flows between consecutive frames into n slots, one per RGB frame.

    Args:
        pair_flow: (num_frames - 1, H, W, 2) where pair_flow[i] maps frame i -> frame i+1.
        num_frames: number of RGB frames.
        convention: "backward" (default): flow[t] is the motion t-1 -> t and flow[0] is zero, so flow[t] is the
            motion that produced frame t. "forward" (DeepMind's released flow): flow[t] is t -> t+1, last zero.

    Returns:
        (num_frames, H, W, 2) float32.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown flow convention {convention!r}; use one of {CONVENTIONS}")
    if len(pair_flow) != max(num_frames - 1, 0):
        raise ValueError(f"expected {num_frames - 1} pair flows for {num_frames} frames, got {len(pair_flow)}")
    h, w = pair_flow.shape[1:3]
    out = np.zeros((num_frames, h, w, 2), np.float32)
    if num_frames > 1:
        if convention == "backward":
            out[1:] = pair_flow
        else:
            out[:-1] = pair_flow
    return out


def check_pairs(prev: np.ndarray, nxt: np.ndarray, engine: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate an engine's input: two (n, H, W) uint8 stacks of one shape, H, W >= 3; return them C-contiguous."""
    prev, nxt = np.asarray(prev), np.asarray(nxt)
    if prev.ndim != 3 or prev.shape != nxt.shape or prev.dtype != np.uint8 or nxt.dtype != np.uint8:
        raise ValueError(
            f"{engine} engine: calc_pairs wants two (n, H, W) uint8 grayscale arrays of the same shape; got "
            f"{prev.shape} {prev.dtype} and {nxt.shape} {nxt.dtype} (convert with cv2.cvtColor(f, cv2.COLOR_RGB2GRAY))"
        )
    if min(prev.shape[1:]) < 3:
        raise ValueError(f"{engine} engine: frames of {prev.shape[1:]} are too small for TV-L1 (need 3x3 or more)")
    return np.ascontiguousarray(prev), np.ascontiguousarray(nxt)


def check_params(params: TVL1Params, engine: str) -> None:
    """Parameters that `engine` ("opencv", "numba" or "torch") can run and that mean something; a ValueError naming
    the first bad one by its command-line flag otherwise (checked once, before any video)."""
    p = params
    flag = {f.name: "--" + f.name.rstrip("_").replace("_", "-") for f in dataclasses.fields(TVL1Params)}
    for name in ("tau", "lambda_", "theta", "epsilon"):
        if not getattr(p, name) > 0:  # theta = 0 gives NaN flow; the others make TV-L1 meaningless
            raise ValueError(f"{flag[name]} {getattr(p, name)}: must be > 0")
    for name in ("nscales", "warps", "inner_iterations", "outer_iterations"):
        if getattr(p, name) < 1:
            raise ValueError(f"{flag[name]} {getattr(p, name)}: must be >= 1")
    if not p.gamma >= 0:
        raise ValueError(f"--gamma {p.gamma}: must be >= 0 (0: no illumination term)")
    if not 0 < p.scale_step <= 1:  # OpenCV's pyramid fails outside (0, 1]
        raise ValueError(f"--scale-step {p.scale_step}: must be in (0, 1]")
    if p.median_filtering not in (0, 1, 3, 5):  # what cv2.medianBlur does on float32 flow
        raise ValueError(f"--median-filtering {p.median_filtering}: must be 3 or 5, or 0/1 (off)")
    if engine != "opencv":
        check_reimplementable(p, engine)


def check_reimplementable(params: TVL1Params, engine: str) -> None:
    """The parameters our re-implementations of OpenCV's TV-L1 (numba, torch) support; a ValueError otherwise."""
    p = params
    if p.median_filtering not in (0, 1, 3, 5):
        raise ValueError(f"{engine}: median_filtering must be 3 or 5 (what cv2.medianBlur does on float32) or "
                         f"0/1 (off), got {p.median_filtering}")
    if p.use_initial_flow:
        raise ValueError(f"{engine} does not support use_initial_flow=True; use the 'opencv' engine")
    if p.nscales < 1 or not 0.0 < p.scale_step < 1.0:
        raise ValueError(f"{engine}: need nscales >= 1 and 0 < scale_step < 1, got {p.nscales}, {p.scale_step}")


def median_network(n: int = 25) -> np.ndarray:
    """Compare-exchange pairs (i, j), i < j, that leave the median of n values on wire n // 2 (min on i, max on j).

    Batcher's odd-even merge sort for the next power of two, minus the comparators touching padding wires (they
    would hold +inf and never move), minus those the middle wire does not depend on (113 of 140 for n = 25). Both
    re-implementations run it for the k x k median (n = k * k): exact, so the result is cv2.medianBlur's bit for bit.
    """
    size = 1 << (n - 1).bit_length()
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    needed, kept = {n // 2}, []
    for a, b in reversed(pairs):
        if a in needed or b in needed:
            kept.append((a, b))
            needed |= {a, b}
    return np.array(kept[::-1], np.int64).reshape(-1, 2)
