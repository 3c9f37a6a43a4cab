"""The numba TV-L1 engine's image kernels: OpenCV's bilinear `resize` (the pyramid, the flow's upscaling), its
centred gradient, and the bicubic warp of I1 and its gradient by the flow (`remap` at the exact float coordinates,
zero outside the image) with the per-pixel constants the iterations read.
"""

import numpy as np
from numba import njit

_CUBIC_A = -0.75  # OpenCV's bicubic kernel


@njit(cache=True, inline="always")
def _source_pixel(d, scale, size):
    """INTER_LINEAR's source pixel and weight of output pixel d: coordinate (d + 0.5) * scale - 0.5, clamped."""
    f = (d + 0.5) * scale - 0.5
    s = int(np.floor(f))
    f -= s
    if s < 0:
        s, f = 0, 0.0
    if s >= size - 1:
        s, f = size - 1, 0.0
    return s, f


@njit(cache=True)
def resize_linear(src, out_h, out_w, scale_y, scale_x):
    """cv2.resize INTER_LINEAR of a float32 (H, W) array (pyramid levels, flow upscaling)."""
    h, w = src.shape
    out = np.empty((out_h, out_w), np.float32)
    x0 = np.empty(out_w, np.int64)
    x1 = np.empty(out_w, np.int64)
    ax = np.empty(out_w, np.float32)
    for dx in range(out_w):
        sx, fx = _source_pixel(dx, scale_x, w)
        x0[dx], x1[dx], ax[dx] = sx, min(sx + 1, w - 1), fx
    for dy in range(out_h):
        sy, fy = _source_pixel(dy, scale_y, h)
        sy1 = min(sy + 1, h - 1)
        for dx in range(out_w):
            a = ax[dx]
            top = src[sy, x0[dx]] * (1 - a) + src[sy, x1[dx]] * a
            bottom = src[sy1, x0[dx]] * (1 - a) + src[sy1, x1[dx]] * a
            out[dy, dx] = top * (1 - fy) + bottom * fy
    return out


@njit(cache=True)
def centered_gradient(src):
    """Central differences, one-sided (still halved) on the border rows and columns, as OpenCV."""
    h, w = src.shape
    dx = np.empty_like(src)
    dy = np.empty_like(src)
    for y in range(h):
        ym, yp = max(y - 1, 0), min(y + 1, h - 1)
        for x in range(w):
            xm, xp = max(x - 1, 0), min(x + 1, w - 1)
            dx[y, x] = np.float32(0.5) * (src[y, xp] - src[y, xm])
            dy[y, x] = np.float32(0.5) * (src[yp, x] - src[ym, x])
    return dx, dy


@njit(cache=True, inline="always")
def _cubic_weights(t):
    """Keys' bicubic weights of the four taps around a point at fraction t of its cell (OpenCV's a = -0.75)."""
    a = _CUBIC_A
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    return w0, w1, w2, 1 - w0 - w1 - w2


@njit(cache=True)
def warp(i0, i1, i1x, i1y, u1, u2, i1wx, i1wy, grad, rho_c):
    """Warp I1 and its gradient by u (bicubic, zero outside), then |grad I1w|^2 and rho's constant part."""
    h, w = i0.shape
    for y in range(h):
        for x in range(w):
            # the map is x + u in float32 (OpenCV's buildFlowMap); far-away points read zeros, so clamp them
            mx = min(max(np.float32(x) + u1[y, x], np.float32(-8.0)), np.float32(w + 8))
            my = min(max(np.float32(y) + u2[y, x], np.float32(-8.0)), np.float32(h + 8))
            fx, fy = np.floor(mx), np.floor(my)
            ix, iy = int(fx), int(fy)
            wx = _cubic_weights(mx - fx)
            wy = _cubic_weights(my - fy)
            s0 = np.float32(0.0)
            sx = np.float32(0.0)
            sy = np.float32(0.0)
            for j in range(4):
                yy = iy - 1 + j
                if yy < 0 or yy >= h:
                    continue
                for i in range(4):
                    xx = ix - 1 + i
                    if xx < 0 or xx >= w:
                        continue
                    c = np.float32(wy[j] * wx[i])
                    s0 += c * i1[yy, xx]
                    sx += c * i1x[yy, xx]
                    sy += c * i1y[yy, xx]
            i1wx[y, x] = sx
            i1wy[y, x] = sy
            grad[y, x] = sx * sx + sy * sy
            rho_c[y, x] = s0 - sx * u1[y, x] - sy * u2[y, x] - i0[y, x]
