"""The parts a toy scene is drawn from: textures, colour pairs and anti-aliased shapes (`i3d.synthetic.toy`).

Pure functions of an injected `rng`: the same generator state gives the same pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

TEXTURES = ("noise", "stripes", "checker", "blobs")
SHAPES = ("disc", "square", "triangle", "polygon")
LUMA = np.array([0.299, 0.587, 0.114])  # grey level of an RGB colour, as cv2.COLOR_RGB2GRAY
HUE_SPREAD = 15.0  # degrees: the two colours of a colour family lie this close to its hue


def make_texture(rng: np.random.Generator, kind: str, height: int, width: int, scale: float) -> np.ndarray:
    """A (height, width) float32 pattern in [0, 1]; scale is its period (stripes, checker) or feature size in pixels."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if kind == "noise":
        tex = _smooth_noise(rng, height, width, scale / 2)
    elif kind == "stripes":  # wavy: straight stripes would leave the motion along them unobservable (aperture)
        wave = 3.0 * np.pi * (_smooth_noise(rng, height, width, 1.5 * scale) - 0.5)
        tex = np.tanh(2.5 * np.sin(2 * np.pi * u / scale + wave))
    elif kind == "checker":
        tex = np.tanh(3.0 * np.sin(2 * np.pi * u / scale) * np.sin(2 * np.pi * v / scale))
    elif kind == "blobs":  # signed impulses blurred at three radii: Gaussian blobs of mixed sizes
        tex = np.zeros((height, width), np.float32)
        for sigma in (0.15 * scale, 0.25 * scale, 0.4 * scale):
            impulses = np.zeros((height, width), np.float32)
            count = max(3, int(height * width / (4 * sigma) ** 2))
            impulses[rng.integers(0, height, count), rng.integers(0, width, count)] = rng.choice([-1.0, 1.0], count)
            tex += cv2.GaussianBlur(impulses, (0, 0), sigma) * sigma**2
    else:
        raise ValueError(f"unknown texture {kind!r}; choose from {TEXTURES}")
    # stretch between percentiles, not min/max: smooth noise and blobs would otherwise stay a low-contrast grey
    low, high = np.percentile(tex, [5, 95])
    return np.clip((tex - low) / max(float(high - low), 1e-6), 0, 1).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Uniform random values on a grid of `cell` pixels, cubic-interpolated: (height, width) float32."""
    cell = max(2.0, cell)
    coarse = rng.random((int(height / cell) + 2, int(width / cell) + 2)).astype(np.float32)
    return cv2.resize(coarse, None, fx=cell, fy=cell, interpolation=cv2.INTER_CUBIC)[:height, :width]


def random_colours(rng: np.random.Generator, min_contrast: float = 90.0, hue: float | None = None) -> np.ndarray:
    """Two RGB colours (2, 3) float32 in 0-255 whose grey levels differ by at least `min_contrast`.

    TV-L1 works on grey frames: two colours of similar luminance would make a texture it cannot track. With `hue`
    (degrees) both colours are saturated and within HUE_SPREAD of it (a colour family); without it, any colour.
    """
    while True:
        if hue is None:
            hsv = np.stack([rng.uniform(0, 360, 2), rng.uniform(0.1, 0.9, 2), rng.uniform(0.1, 1.0, 2)], axis=1)
        else:
            hues = (hue + rng.uniform(-HUE_SPREAD, HUE_SPREAD, 2)) % 360
            hsv = np.stack([hues, rng.uniform(0.6, 1.0, 2), rng.uniform(0.25, 1.0, 2)], axis=1)
        rgb = cv2.cvtColor(hsv[None].astype(np.float32), cv2.COLOR_HSV2RGB)[0] * 255.0
        if abs(float((rgb[0] - rgb[1]) @ LUMA)) >= min_contrast:
            return rgb


def colourise(texture: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map a [0, 1] texture onto the segment between two colours: (H, W) -> (H, W, 3) float32."""
    return colours[0] + texture[..., None] * (colours[1] - colours[0])


def shape_alpha(rng: np.random.Generator, kind: str, size: int, radius: float) -> np.ndarray:
    """Anti-aliased coverage (size, size) float32 in [0, 1] of a shape of outer radius centred in the patch."""
    canvas = np.zeros((size, size), np.uint8)
    centre = (size - 1) / 2
    shift = 4  # OpenCV draws with 1/16-px vertices
    if kind == "disc":
        c = int(round(centre * 2**shift))
        cv2.circle(canvas, (c, c), int(radius * 2**shift), 255, -1, cv2.LINE_AA, shift)
        return canvas.astype(np.float32) / 255
    if kind in ("square", "triangle"):
        n = 4 if kind == "square" else 3
        angles = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
        radii = np.full(n, radius)
    elif kind == "polygon":
        n = int(rng.integers(5, 9))  # jittered, not uniform, angles: uniform ones can make slivers
        angles = rng.uniform(0, 2 * np.pi) + (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * np.pi / n
        radii = rng.uniform(0.65, 1.0, n) * radius
    else:
        raise ValueError(f"unknown shape {kind!r}; choose from {SHAPES}")
    pts = np.stack([centre + radii * np.cos(angles), centre + radii * np.sin(angles)], axis=1)
    cv2.fillPoly(canvas, [np.round(pts * 2**shift).astype(np.int32)], 255, cv2.LINE_AA, shift)
    return canvas.astype(np.float32) / 255
