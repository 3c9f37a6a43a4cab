"""Optical flow as pictures: the colour-wheel coding of the Middlebury benchmark (Baker et al., IJCV 2011).

Hue is the direction of motion, saturation its speed: white is still, a saturated colour is the fastest motion in
the picture (or `max_magnitude`), and speeds beyond `max_magnitude` are drawn darker. With x right and y down:

    right -> red      down -> yellow      left -> cyan-blue      up -> violet

`colour_wheel_image()` draws the key. Pure numpy; the notebooks plot the results with matplotlib.
"""

from __future__ import annotations

import numpy as np

# The wheel's hue segments, going round from red: (steps, start colour). Each segment runs to the next one's start;
# the step counts (Baker et al.) give more room to the hues the eye tells apart best.
_SEGMENTS = (
    (15, (255, 0, 0)),  # red -> yellow
    (6, (255, 255, 0)),  # yellow -> green
    (4, (0, 255, 0)),  # green -> cyan
    (11, (0, 255, 255)),  # cyan -> blue
    (13, (0, 0, 255)),  # blue -> magenta
    (6, (255, 0, 255)),  # magenta -> red
)


def colour_wheel() -> np.ndarray:
    """The wheel's (55, 3) float64 RGB colours (0-255), evenly spaced in angle, starting at red."""
    rows = []
    for k, (steps, start) in enumerate(_SEGMENTS):
        end = np.asarray(_SEGMENTS[(k + 1) % len(_SEGMENTS)][1], np.float64)
        t = np.arange(steps)[:, None] / steps
        rows.append((1 - t) * np.asarray(start, np.float64) + t * end)
    return np.concatenate(rows)


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    """Speed in pixels per frame of (..., 2) flow."""
    flow = np.asarray(flow, np.float32)
    return np.hypot(flow[..., 0], flow[..., 1])


def flow_to_colour(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code flow (..., H, W, 2) (x right, y down, pixels) as uint8 RGB (..., H, W, 3).

    Args:
        flow: one field or a stack of them.
        max_magnitude: the speed drawn fully saturated; None uses the largest speed in `flow`, so one frame's
            colours are comparable across frames only with a fixed value (e.g. the store's bound, 20).
    """
    flow = np.asarray(flow, np.float32)
    if flow.ndim < 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow_to_colour wants (..., H, W, 2) flow, got shape {flow.shape}")
    if max_magnitude is not None and not max_magnitude > 0:
        raise ValueError(f"max_magnitude must be > 0 pixels, got {max_magnitude}")
    flow = np.nan_to_num(flow, nan=0.0)
    magnitude = flow_magnitude(flow)
    scale = max_magnitude if max_magnitude is not None else max(float(magnitude.max(initial=0.0)), 1e-9)
    radius = magnitude / np.float32(scale)

    wheel = colour_wheel() / 255.0
    n = len(wheel)
    angle = np.arctan2(-flow[..., 1], -flow[..., 0]) / np.pi  # (-1, 1]: -1/1 = right, -0.5 = down, 0 = left
    position = (angle + 1) / 2 * n % n  # 0 = red, going round the wheel
    k0 = np.floor(position).astype(np.int64) % n
    k1 = (k0 + 1) % n
    frac = (position - np.floor(position))[..., None]
    colour = (1 - frac) * wheel[k0] + frac * wheel[k1]  # (..., 3) in [0, 1]

    radius = radius[..., None]
    colour = np.where(radius <= 1, 1 - radius * (1 - colour), colour * 0.75)  # desaturate slow motion; dim overflow
    return np.clip(np.rint(colour * 255), 0, 255).astype(np.uint8)


def colour_wheel_image(size: int = 101) -> np.ndarray:
    """The key of `flow_to_colour`: (size, size, 3) uint8, the colour of the flow from the centre to each pixel,
    fully saturated on the inscribed circle, white outside it."""
    if size < 3:
        raise ValueError(f"colour wheel image size must be >= 3 pixels, got {size}")
    xs = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, xs), axis=-1)  # (y, x) -> flow (x, y): x right, y down
    image = flow_to_colour(grid, max_magnitude=1.0)
    image[flow_magnitude(grid) > 1.0] = 255
    return image
