"""TV-L1 on the CPU with Numba: OpenCV's Dual TV-L1, one fused sweep per iteration.

The algorithm, step by step, is the one of OpenCV's `OpticalFlowDual_TVL1::calc` (Zach, Pock and Bischof 2007 as
implemented by Sanchez et al.): a pyramid made with bilinear `resize` by `scale_step` (coarsest level at least 16
px), per level `warps` warpings of I1 and its centred gradient by the flow (bicubic remap at the exact float
coordinates, as OpenCV 5's remap does, zero outside the image), then outer loops (each starting with a 5x5 median
of the flow) of inner iterations:

    v = u + TH(rho(u))                        thresholding, rho = I1w + grad I1w . (u - u0) - I0
    u = v + theta * div(p)                    backward differences, zero outside
    error = sum |u_new - u_old|^2             stop when error <= epsilon^2 * H * W
    p = (p + tau/theta * grad u) / (1 + tau/theta * |grad u|)   forward differences, zero on the last row/col

OpenCV makes eight passes over the image per iteration. Here the first three lines are one pass and the dual
update runs one row behind it in the same sweep (it needs the new u of the next row), so an iteration reads each
array once. Rows are split into one chunk per thread; the dual update of each chunk's last row waits for a
second, one-row pass, because the next chunk's first row still reads the old p there.

Two ways to use several cores: over rows inside a pair (`parallel="rows"`), or over pairs with each pair on one
core (`parallel="pairs"`, the default). Over pairs wins whenever there are at least as many pairs as cores (always
the case for a video): no barrier per iteration (thousands per pair) and no idle threads on the small pyramid
levels. docs/PERFORMANCE.md has the measurement.

Numba's cache (`cache=True`) keys each kernel on its own file only: the cached `_calc_pair` and `_proc_one_scale`
hold compiled copies of the `_numba_*.py` kernels they call and do not see those files change. After editing one
of them, change this file too (or delete flow/engines/__pycache__), or the old kernels keep running.
"""

import numpy as np

from flow.tvl1 import TVL1Params, check_pairs, check_reimplementable, median_network

try:
    import numba
    from numba import njit, prange
except ImportError as exc:  # numba is an optional dependency (extra "fast")
    raise ImportError(
        "the 'numba' TV-L1 engine needs numba, which is not installed: pip install numba "
        "(or pip install -e .[fast]); the 'opencv' engine works without it"
    ) from exc

from flow.engines._median5 import median5  # noqa: E402  (after the check that numba is there)
from flow.engines._numba_iterate import error_above, iterate_rows, iterate_serial  # noqa: E402
from flow.engines._numba_median import median_rows  # noqa: E402
from flow.engines._numba_pyramid import centered_gradient, resize_linear, warp  # noqa: E402


@njit(cache=True)
def _proc_one_scale(i0, i1, u1, u2, u3, prm, network, chunks):
    """All warpings at one pyramid level, updating u1, u2 (and u3 when gamma != 0) in place."""
    tau, lambda_, theta, gamma, warps, epsilon, n_inner, n_outer, median = prm
    h, w = i0.shape
    scaled_eps = np.float32(epsilon * epsilon * h * w)
    coef = (np.float32(lambda_ * theta), np.float32(theta), np.float32(tau / theta), np.float32(gamma))
    i1x, i1y = centered_gradient(i1)
    i1wx, i1wy = np.empty_like(i0), np.empty_like(i0)
    grad, rho_c, tmp, sq = np.empty_like(i0), np.empty_like(i0), np.empty_like(i0), np.empty_like(i0)
    p = (np.zeros_like(i0), np.zeros_like(i0), np.zeros_like(i0), np.zeros_like(i0), np.zeros_like(i0),
         np.zeros_like(i0))
    warped, u = (i1wx, i1wy, grad, rho_c), (u1, u2, u3)
    window = np.empty((int(median) ** 2, w), np.float32)
    for _ in range(int(warps)):
        warp(i0, i1, i1x, i1y, u1, u2, i1wx, i1wy, grad, rho_c)
        above = True  # OpenCV starts each warp with error = FLT_MAX
        outer = 0
        while above and outer < n_outer:
            if median == 5:  # as cv::medianBlur on float32
                median5(u1, tmp)
                u1[:] = tmp
                median5(u2, tmp)
                u2[:] = tmp
            elif median == 3:
                median_rows(u1, tmp, window, network)
                u1[:] = tmp
                median_rows(u2, tmp, window, network)
                u2[:] = tmp
            inner = 0
            while above and inner < n_inner:
                if chunks > 1:
                    error = iterate_rows(chunks, warped, u, p, coef, sq)
                else:
                    error = iterate_serial(warped, u, p, coef, sq)
                above = error_above(error, sq, scaled_eps)
                inner += 1
            outer += 1


@njit(cache=True, nogil=True)
def _calc_pair(prev, nxt, prm, nscales, scale_step, network, chunks):
    """Flow (H, W, 2) float32 from prev to nxt (uint8), through the pyramid from the coarsest level."""
    i0s = [prev.astype(np.float32)]
    i1s = [nxt.astype(np.float32)]
    inv = 1.0 / scale_step
    for _ in range(1, nscales):
        h, w = i0s[-1].shape
        nh, nw = int(np.rint(h * scale_step)), int(np.rint(w * scale_step))
        if nh < 16 or nw < 16:
            break
        i0s.append(resize_linear(i0s[-1], nh, nw, inv, inv))
        i1s.append(resize_linear(i1s[-1], nh, nw, inv, inv))
    levels = len(i0s)
    u1 = np.zeros_like(i0s[-1])
    u2 = np.zeros_like(i0s[-1])
    u3 = np.zeros_like(i0s[-1])
    for s in range(levels - 1, -1, -1):
        _proc_one_scale(i0s[s], i1s[s], u1, u2, u3, prm, network, chunks)
        if s == 0:
            break
        h, w = u1.shape
        nh, nw = i0s[s - 1].shape
        u1 = resize_linear(u1, nh, nw, h / nh, w / nw) * np.float32(inv)
        u2 = resize_linear(u2, nh, nw, h / nh, w / nw) * np.float32(inv)
        u3 = resize_linear(u3, nh, nw, h / nh, w / nw)  # u3 is not a displacement: not rescaled
    out = np.empty(prev.shape + (2,), np.float32)
    out[..., 0] = u1
    out[..., 1] = u2
    return out


@njit(cache=True, parallel=True, nogil=True)
def _calc_pairs_parallel(prev, nxt, prm, nscales, scale_step, network):
    out = np.empty(prev.shape + (2,), np.float32)
    for i in prange(prev.shape[0]):
        out[i] = _calc_pair(prev[i], nxt[i], prm, nscales, scale_step, network, 1)
    return out


class NumbaTVL1:
    """OpenCV's Dual TV-L1 compiled with Numba (fused iterations, parallel over pairs or rows).

    The kernels release the GIL, so a thread can decode the next frames while they run. On one thread (a worker of
    a multi-process run) the pairs go one by one through the serial kernel: a process then never loads the
    parallel kernel or starts Numba's thread pool (part of its start-up), and the flow is the same bit for bit.

    Args:
        params: TV-L1 parameters (OpenCV's defaults if None). `use_initial_flow` is not supported.
        parallel: "pairs" (each pair on one core; best for many pairs) or "rows" (cores share one pair).
    """

    name = "numba"
    version = f"1.0+numba{numba.__version__}"

    def __init__(self, params: TVL1Params | None = None, parallel: str = "pairs"):
        self.params = params if params is not None else TVL1Params()
        p = self.params
        if parallel not in ("pairs", "rows"):
            raise ValueError(f"NumbaTVL1: parallel must be 'pairs' or 'rows', got {parallel!r}")
        check_reimplementable(p, "NumbaTVL1")
        self.parallel = parallel
        self._network = median_network(max(p.median_filtering, 1) ** 2)
        self._prm = (float(p.tau), float(p.lambda_), float(p.theta), float(p.gamma), float(p.warps),
                     float(p.epsilon), float(p.inner_iterations), float(p.outer_iterations), float(p.median_filtering))

    def calc_pairs(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow (n, H, W, 2) float32 for n pairs of (n, H, W) uint8 grayscale frames, prev[i] -> nxt[i]."""
        prev, nxt = check_pairs(prev, nxt, self.name)
        p = self.params
        threads = numba.get_num_threads()
        if self.parallel == "pairs" and threads > 1 and len(prev) > 1:
            return _calc_pairs_parallel(prev, nxt, self._prm, p.nscales, p.scale_step, self._network)
        if self.parallel == "pairs":  # one thread: the same kernel per pair, without loading the parallel one
            threads = 1
        out = np.empty(prev.shape + (2,), np.float32)
        for i in range(len(prev)):
            out[i] = _calc_pair(prev[i], nxt[i], self._prm, p.nscales, p.scale_step, self._network, threads)
        return out
