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
"""

from pathlib import Path

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

_FLT_EPSILON = np.float32(np.finfo(np.float32).eps)
_CUBIC_A = -0.75  # OpenCV's bicubic kernel


@njit(cache=True)
def _resize_linear(src, out_h, out_w, scale_y, scale_x):
    """cv2.resize INTER_LINEAR: source coordinate (d + 0.5) * scale - 0.5, clamped to the image."""
    h, w = src.shape
    out = np.empty((out_h, out_w), np.float32)
    x0 = np.empty(out_w, np.int64)
    x1 = np.empty(out_w, np.int64)
    ax = np.empty(out_w, np.float32)
    for dx in range(out_w):
        fx = (dx + 0.5) * scale_x - 0.5
        sx = int(np.floor(fx))
        fx -= sx
        if sx < 0:
            sx, fx = 0, 0.0
        if sx >= w - 1:
            sx, fx = w - 1, 0.0
        x0[dx], x1[dx], ax[dx] = sx, min(sx + 1, w - 1), fx
    for dy in range(out_h):
        fy = (dy + 0.5) * scale_y - 0.5
        sy = int(np.floor(fy))
        fy -= sy
        if sy < 0:
            sy, fy = 0, 0.0
        if sy >= h - 1:
            sy, fy = h - 1, 0.0
        sy1 = min(sy + 1, h - 1)
        for dx in range(out_w):
            a = ax[dx]
            top = src[sy, x0[dx]] * (1 - a) + src[sy, x1[dx]] * a
            bottom = src[sy1, x0[dx]] * (1 - a) + src[sy1, x1[dx]] * a
            out[dy, dx] = top * (1 - fy) + bottom * fy
    return out


@njit(cache=True)
def _centered_gradient(src):
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
    a = _CUBIC_A
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    return w0, w1, w2, 1 - w0 - w1 - w2


@njit(cache=True)
def _warp(i0, i1, i1x, i1y, u1, u2, i1wx, i1wy, grad, rho_c):
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


def median5_source() -> str:
    """The text of `flow/engines/_median5.py`: the 5x5 median with `median_network(25)` written out line by line.

    Written out, the 25 values of a pixel live in registers and LLVM vectorises the loop over a row (16 pixels per
    AVX-512 instruction): 4x faster than running the same network as passes over rows in memory (`_median`), and
    Numba can cache it (it cannot cache a function made with exec). tests/flow/test_numba_tvl1.py checks that the
    file is this text.
    """
    lines = [
        '"""Generated by flow.engines.numba_tvl1.median5_source(); do not edit. To regenerate:',
        "",
        '    .venv/bin/python -c "import flow.engines.numba_tvl1 as m; m.write_median5()"',
        '"""',
        "",
        "import numpy as np",
        "from numba import njit",
        "",
        "",
        "@njit(cache=True, fastmath=True)",
        "def median5(src, dst):",
        '    """dst = cv2.medianBlur(src, 5) for float32 (H, W) arrays: replicated borders, 113 compare-exchanges."""',
        "    h, w = src.shape",
        "    pad = np.empty((h + 4, w + 4), np.float32)",
        "    for y in range(h + 4):",
        "        sy = min(max(y - 2, 0), h - 1)",
        "        for x in range(w + 4):",
        "            pad[y, x] = src[sy, min(max(x - 2, 0), w - 1)]",
        "    for y in range(h):",
        "        r0, r1, r2, r3, r4 = pad[y], pad[y + 1], pad[y + 2], pad[y + 3], pad[y + 4]",
        "        out = dst[y]",
        "        for x in range(w):",
    ]
    for dy in range(5):
        lines.append("            " + ", ".join(f"v{5 * dy + dx}" for dx in range(5)) + " = "
                     + ", ".join(f"r{dy}[x + {dx}]" for dx in range(5)))  # fmt: skip
    for a, b in median_network(25):
        lines.append(f"            v{a}, v{b} = min(v{a}, v{b}), max(v{a}, v{b})")
    lines.append("            out[x] = v12")
    return "\n".join(lines) + "\n"


def write_median5() -> None:
    """(Re)write flow/engines/_median5.py from `median5_source()`."""
    (Path(__file__).parent / "_median5.py").write_text(median5_source())


@njit(cache=True, fastmath=True)
def _median(src, dst, window, network):
    """k x k median with replicated borders (cv2.medianBlur(src, k) on float32), row by row; used for k = 3 (k = 5,
    OpenCV's default, has the faster `median5`).

    The k * k neighbours of every pixel of a row go to `window` (k * k, W); the selection network then runs as
    vectorisable min/max passes over the row (113 for k = 5) instead of a branchy sort per pixel.
    """
    h, w = src.shape
    r = int(np.sqrt(window.shape[0])) // 2
    for y in range(h):
        k = 0
        for dy in range(-r, r + 1):
            row = src[min(max(y + dy, 0), h - 1)]
            for dx in range(-r, r + 1):
                for x in range(w):
                    window[k, x] = row[min(max(x + dx, 0), w - 1)]
                k += 1
        for c in range(network.shape[0]):
            a, b = window[network[c, 0]], window[network[c, 1]]
            for x in range(w):
                lo, hi = min(a[x], b[x]), max(a[x], b[x])
                a[x], b[x] = lo, hi
        dst[y] = window[window.shape[0] // 2]


@njit(cache=True, fastmath=True, inline="always")
def _dual_row(y, u1, u2, u3, p11, p12, p21, p22, p31, p32, taut, use_gamma):
    """p <- (p + taut * grad u) / (1 + taut * |grad u|) on row y, forward differences, zero past the last row/col.

    Plain 2-D indexing and a peeled last column keep the loop free of branches, so LLVM vectorises it.
    """
    h, w = u1.shape
    yb = y + 1 if y < h - 1 else y  # on the last row u[yb] - u[y] = 0
    for x in range(w - 1):
        u1x, u1y = u1[y, x + 1] - u1[y, x], u1[yb, x] - u1[y, x]
        u2x, u2y = u2[y, x + 1] - u2[y, x], u2[yb, x] - u2[y, x]
        ng1 = 1 + taut * np.sqrt(u1x * u1x + u1y * u1y)
        ng2 = 1 + taut * np.sqrt(u2x * u2x + u2y * u2y)
        p11[y, x] = (p11[y, x] + taut * u1x) / ng1
        p12[y, x] = (p12[y, x] + taut * u1y) / ng1
        p21[y, x] = (p21[y, x] + taut * u2x) / ng2
        p22[y, x] = (p22[y, x] + taut * u2y) / ng2
    x = w - 1  # last column: the x-difference is zero
    u1y, u2y = u1[yb, x] - u1[y, x], u2[yb, x] - u2[y, x]
    ng1, ng2 = 1 + taut * abs(u1y), 1 + taut * abs(u2y)
    p11[y, x], p12[y, x] = p11[y, x] / ng1, (p12[y, x] + taut * u1y) / ng1
    p21[y, x], p22[y, x] = p21[y, x] / ng2, (p22[y, x] + taut * u2y) / ng2
    if use_gamma:
        for x in range(w):
            u3x = u3[y, x + 1] - u3[y, x] if x < w - 1 else 0.0
            u3y = u3[yb, x] - u3[y, x]
            ng3 = 1 + taut * np.sqrt(u3x * u3x + u3y * u3y)
            p31[y, x] = (p31[y, x] + taut * u3x) / ng3
            p32[y, x] = (p32[y, x] + taut * u3y) / ng3


@njit(cache=True, fastmath=True, inline="always")
def _threshold(rho, g, l_t):
    """OpenCV's TH step: the multiple of grad I1w added to u (clamped to +-lambda*theta)."""
    fi = -rho / g if g > _FLT_EPSILON else np.float32(0.0)
    fi = l_t if rho < -l_t * g else fi
    return -l_t if rho > l_t * g else fi


@njit(cache=True, fastmath=True, inline="always")
def _primal_row(y, i1wx, i1wy, grad, rho_c, u1, u2, p11, p12, p21, p22, l_t, theta, sq):
    """Thresholding, u = v + theta * div(p) on row y; the squared change of every pixel goes to `sq`.

    div(p) uses backward differences with p = 0 above row 0 and left of column 0 (column 0 is peeled).
    """
    w = u1.shape[1]
    ya = y - 1 if y > 0 else y
    top = np.float32(1.0 if y > 0 else 0.0)
    a1, a2 = u1[y, 0], u2[y, 0]
    fi = _threshold(rho_c[y, 0] + i1wx[y, 0] * a1 + i1wy[y, 0] * a2, grad[y, 0], l_t)
    n1 = a1 + fi * i1wx[y, 0] + theta * (p11[y, 0] + p12[y, 0] - top * p12[ya, 0])
    n2 = a2 + fi * i1wy[y, 0] + theta * (p21[y, 0] + p22[y, 0] - top * p22[ya, 0])
    u1[y, 0], u2[y, 0] = n1, n2
    sq[0] = (n1 - a1) * (n1 - a1) + (n2 - a2) * (n2 - a2)
    for x in range(1, w):
        gx, gy = i1wx[y, x], i1wy[y, x]
        a1, a2 = u1[y, x], u2[y, x]
        fi = _threshold(rho_c[y, x] + gx * a1 + gy * a2, grad[y, x], l_t)
        n1 = a1 + fi * gx + theta * (p11[y, x] - p11[y, x - 1] + p12[y, x] - top * p12[ya, x])
        n2 = a2 + fi * gy + theta * (p21[y, x] - p21[y, x - 1] + p22[y, x] - top * p22[ya, x])
        u1[y, x], u2[y, x] = n1, n2
        sq[x] = (n1 - a1) * (n1 - a1) + (n2 - a2) * (n2 - a2)


@njit(cache=True)
def _primal_row_gamma(y, i1wx, i1wy, grad, rho_c, u1, u2, u3, p11, p12, p21, p22, p31, p32, l_t, theta, gamma, sq):
    """`_primal_row` with OpenCV's third (illumination) variable u3, used when gamma != 0 (not on the fast path)."""
    w = u1.shape[1]
    for x in range(w):
        gx, gy, g = i1wx[y, x], i1wy[y, x], grad[y, x]
        a1, a2, a3 = u1[y, x], u2[y, x], u3[y, x]
        fi = _threshold(rho_c[y, x] + gx * a1 + gy * a2 + gamma * a3, g, l_t)
        div1 = p11[y, x] - (p11[y, x - 1] if x > 0 else 0.0) + p12[y, x] - (p12[y - 1, x] if y > 0 else 0.0)
        div2 = p21[y, x] - (p21[y, x - 1] if x > 0 else 0.0) + p22[y, x] - (p22[y - 1, x] if y > 0 else 0.0)
        div3 = p31[y, x] - (p31[y, x - 1] if x > 0 else 0.0) + p32[y, x] - (p32[y - 1, x] if y > 0 else 0.0)
        n1, n2, n3 = a1 + fi * gx + theta * div1, a2 + fi * gy + theta * div2, a3 + fi * gamma + theta * div3
        u1[y, x], u2[y, x], u3[y, x] = n1, n2, n3
        sq[x] = (n1 - a1) ** 2 + (n2 - a2) ** 2 + (n3 - a3) ** 2


@njit(cache=True, fastmath=True)
def _sweep(r0, r1, warped, u, p, coef, sq):
    """One iteration on rows [r0, r1): primal update of row y, then the dual update of row y - 1 (lagging one row).

    warped = (I1wx, I1wy, |grad I1w|^2, rho_c), u = (u1, u2, u3), p = (p11, p12, p21, p22, p31, p32),
    coef = (lambda * theta, theta, tau / theta, gamma). The dual update of row r1 - 1 is left out: the chunk below
    still reads the old p there (the callers do it once every chunk is done). Each pixel's squared change goes to
    sq (H, W); returns their sum (float64, in any order: see `_error_above` for the stopping decision).

    The row functions are inlined by Numba (inline="always"): as calls with a dozen array arguments they cost a
    quarter of an iteration on 64x80 frames. Inlined code takes this function's flags, hence fastmath here too.
    """
    i1wx, i1wy, grad, rho_c = warped
    u1, u2, u3 = u
    p11, p12, p21, p22, p31, p32 = p
    l_t, theta, taut, gamma = coef
    use_gamma = gamma != 0
    err = 0.0
    for y in range(r0, r1):
        if use_gamma:
            _primal_row_gamma(y, i1wx, i1wy, grad, rho_c, u1, u2, u3, p11, p12, p21, p22, p31, p32, l_t, theta, gamma,
                              sq[y])  # fmt: skip
        else:
            _primal_row(y, i1wx, i1wy, grad, rho_c, u1, u2, p11, p12, p21, p22, l_t, theta, sq[y])
        err += _sum64(sq[y])
        if y > r0:
            _dual_row(y - 1, u1, u2, u3, p11, p12, p21, p22, p31, p32, taut, use_gamma)
    return err


@njit(cache=True, fastmath=True, inline="always")
def _sum64(row):
    """Sum of a float32 row in float64, vectorised (fastmath lets LLVM reorder the additions)."""
    total = 0.0
    for x in range(row.shape[0]):
        total += row[x]
    return total


@njit(cache=True)
def _error_above(fast, sq, scaled_eps):
    """OpenCV's test `error > scaled_eps`, where its error is the squared changes `sq` added up in one float32, pixel
    after pixel (the stopping decisions, and so the flow on real video, follow OpenCV only with that rounding).

    That sum is one long chain of dependent additions (5-8% of a 256x340 pair's time). `fast` (a float64 sum in any
    order, exact to ~1e-12) decides alone when it is clear of the threshold by more than twice the float32 sum's
    worst-case relative error, n * 2^-24 for n non-negative terms; only within that band (about +-1% at 256x340)
    is the float32 sum done as OpenCV does it, so every decision is OpenCV's.
    """
    margin = 2.0 * sq.size * 2.0**-24
    if fast > scaled_eps * (1.0 + margin):
        return True
    if fast < scaled_eps * (1.0 - margin):
        return False
    err = np.float32(0.0)
    for y in range(sq.shape[0]):
        for x in range(sq.shape[1]):
            err += sq[y, x]
    return err > scaled_eps


@njit(cache=True)
def _iterate_serial(warped, u, p, coef, sq):
    h = u[0].shape[0]
    err = _sweep(0, h, warped, u, p, coef, sq)
    _dual_row(h - 1, u[0], u[1], u[2], p[0], p[1], p[2], p[3], p[4], p[5], coef[2], coef[3] != 0)
    return err


@njit(cache=True, parallel=True)
def _iterate_rows(chunks, warped, u, p, coef, sq):
    h = u[0].shape[0]
    chunks = min(chunks, max(h // 8, 1))
    bounds = np.linspace(0, h, chunks + 1).astype(np.int64)
    errs = np.zeros(chunks, np.float64)
    for c in prange(chunks):
        errs[c] = _sweep(bounds[c], bounds[c + 1], warped, u, p, coef, sq)
    for c in prange(chunks):
        _dual_row(bounds[c + 1] - 1, u[0], u[1], u[2], p[0], p[1], p[2], p[3], p[4], p[5], coef[2], coef[3] != 0)
    return errs.sum()


@njit(cache=True)
def _proc_one_scale(i0, i1, u1, u2, u3, prm, network, chunks):
    """All warpings at one pyramid level, updating u1, u2 (and u3 when gamma != 0) in place."""
    tau, lambda_, theta, gamma, warps, epsilon, n_inner, n_outer, median = prm
    h, w = i0.shape
    scaled_eps = np.float32(epsilon * epsilon * h * w)
    coef = (np.float32(lambda_ * theta), np.float32(theta), np.float32(tau / theta), np.float32(gamma))
    i1x, i1y = _centered_gradient(i1)
    i1wx, i1wy = np.empty_like(i0), np.empty_like(i0)
    grad, rho_c, tmp, sq = np.empty_like(i0), np.empty_like(i0), np.empty_like(i0), np.empty_like(i0)
    p = (np.zeros_like(i0), np.zeros_like(i0), np.zeros_like(i0), np.zeros_like(i0), np.zeros_like(i0),
         np.zeros_like(i0))
    warped, u = (i1wx, i1wy, grad, rho_c), (u1, u2, u3)
    window = np.empty((int(median) ** 2, w), np.float32)
    for _ in range(int(warps)):
        _warp(i0, i1, i1x, i1y, u1, u2, i1wx, i1wy, grad, rho_c)
        above = True  # OpenCV starts each warp with error = FLT_MAX
        outer = 0
        while above and outer < n_outer:
            if median == 5:  # as cv::medianBlur on float32
                median5(u1, tmp)
                u1[:] = tmp
                median5(u2, tmp)
                u2[:] = tmp
            elif median == 3:
                _median(u1, tmp, window, network)
                u1[:] = tmp
                _median(u2, tmp, window, network)
                u2[:] = tmp
            inner = 0
            while above and inner < n_inner:
                if chunks > 1:
                    error = _iterate_rows(chunks, warped, u, p, coef, sq)
                else:
                    error = _iterate_serial(warped, u, p, coef, sq)
                above = _error_above(error, sq, scaled_eps)
                inner += 1
            outer += 1


@njit(cache=True)
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
        i0s.append(_resize_linear(i0s[-1], nh, nw, inv, inv))
        i1s.append(_resize_linear(i1s[-1], nh, nw, inv, inv))
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
        u1 = _resize_linear(u1, nh, nw, h / nh, w / nw) * np.float32(inv)
        u2 = _resize_linear(u2, nh, nw, h / nh, w / nw) * np.float32(inv)
        u3 = _resize_linear(u3, nh, nw, h / nh, w / nw)  # u3 is not a displacement: not rescaled
    out = np.empty(prev.shape + (2,), np.float32)
    out[..., 0] = u1
    out[..., 1] = u2
    return out


@njit(cache=True, parallel=True)
def _calc_pairs_parallel(prev, nxt, prm, nscales, scale_step, network):
    out = np.empty(prev.shape + (2,), np.float32)
    for i in prange(prev.shape[0]):
        out[i] = _calc_pair(prev[i], nxt[i], prm, nscales, scale_step, network, 1)
    return out


class NumbaTVL1:
    """OpenCV's Dual TV-L1 compiled with Numba (fused iterations, parallel over pairs or rows).

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
        if self.parallel == "pairs":
            return _calc_pairs_parallel(prev, nxt, self._prm, p.nscales, p.scale_step, self._network)
        out = np.empty(prev.shape + (2,), np.float32)
        threads = numba.get_num_threads()
        for i in range(len(prev)):
            out[i] = _calc_pair(prev[i], nxt[i], self._prm, p.nscales, p.scale_step, self._network, threads)
        return out
