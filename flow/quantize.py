"""8-bit symmetric flow quantisation: clip to +-bound, 255 levels centred on code 128 so 0.0 round-trips exactly.

Code q in [1, 255] decodes to (q - 128) * bound / 127 pixels; code 0 is never written. The step is bound / 127
(0.157 px at bound 20), so the round-trip error inside +-bound is at most half a step (0.079 px).
"""

import numpy as np

DEFAULT_BOUND = 20.0
ZERO_CODE = 128
LEVELS = 127  # codes on each side of zero


def quantize_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Clip flow (pixels) to +-bound and map it to uint8 codes; 0.0 maps to code 128.

    Args:
        flow: float array of any shape, in pixels. NaN is treated as 0 (TV-L1 never yields it; a bad engine might).
        bound: clipping bound in pixels.
    """
    if not bound > 0:
        raise ValueError(f"flow bound must be > 0 pixels, got {bound}")
    scaled = np.nan_to_num(np.asarray(flow, dtype=np.float32), nan=0.0) * (LEVELS / bound)
    codes = np.rint(np.clip(scaled, -LEVELS, LEVELS)) + ZERO_CODE
    return codes.astype(np.uint8)


def dequantize_flow(codes: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Inverse of `quantize_flow`: uint8 codes -> float32 pixels; code 128 gives exactly 0.0."""
    return (np.asarray(codes).astype(np.float32) - ZERO_CODE) * np.float32(bound / LEVELS)


def max_error(bound: float = DEFAULT_BOUND) -> float:
    """Worst-case round-trip error (pixels) for flow inside +-bound: half a quantisation step."""
    return 0.5 * bound / LEVELS
