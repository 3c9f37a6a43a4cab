"""The numba TV-L1 engine's inner iteration, fused into one sweep over the rows (see `flow.engines.numba_tvl1`):
thresholding and the primal update of row y, the dual update of row y - 1 in the same pass, and OpenCV's
stopping test on the squared changes.
"""

import numpy as np
from numba import njit, prange

_FLT_EPSILON = np.float32(np.finfo(np.float32).eps)


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


@njit(cache=True, fastmath=True, error_model="numpy")
def _sweep(r0, r1, warped, u, p, coef, sq):
    """One iteration on rows [r0, r1): primal update of row y, then the dual update of row y - 1 (lagging one row).

    warped = (I1wx, I1wy, |grad I1w|^2, rho_c), u = (u1, u2, u3), p = (p11, p12, p21, p22, p31, p32),
    coef = (lambda * theta, theta, tau / theta, gamma). The dual update of row r1 - 1 is left out: the chunk below
    still reads the old p there (the callers do it once every chunk is done). Each pixel's squared change goes to
    sq (H, W); returns their sum (float64, in any order: see `error_above` for the stopping decision).

    The row functions are inlined by Numba (inline="always"): as calls with a dozen array arguments they cost a
    quarter of an iteration on 64x80 frames. Inlined code takes this function's flags, hence fastmath here too, and
    error_model="numpy": with Python's, every division by `1 + taut * |grad u|` checks for zero and may leave the
    loop by raising, and LLVM does not vectorise a loop it can leave early (the dual update then ran scalar, half
    of an iteration's time). Nothing here divides by zero: `_threshold` divides only by g > FLT_EPSILON, the dual
    update by at least 1.
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
                              sq[y])
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
def error_above(fast, sq, scaled_eps):
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
def iterate_serial(warped, u, p, coef, sq):
    """One iteration over the whole image on this thread; returns the float64 sum of the squared changes."""
    h = u[0].shape[0]
    err = _sweep(0, h, warped, u, p, coef, sq)
    _dual_row(h - 1, u[0], u[1], u[2], p[0], p[1], p[2], p[3], p[4], p[5], coef[2], coef[3] != 0)
    return err


@njit(cache=True, parallel=True)
def iterate_rows(chunks, warped, u, p, coef, sq):
    """One iteration with the rows split into `chunks` bands run in parallel (each at least 8 rows); the dual update
    of each band's last row waits until every band is done."""
    h = u[0].shape[0]
    chunks = min(chunks, max(h // 8, 1))
    bounds = np.linspace(0, h, chunks + 1).astype(np.int64)
    errs = np.zeros(chunks, np.float64)
    for c in prange(chunks):
        errs[c] = _sweep(bounds[c], bounds[c + 1], warped, u, p, coef, sq)
    for c in prange(chunks):
        _dual_row(bounds[c + 1] - 1, u[0], u[1], u[2], p[0], p[1], p[2], p[3], p[4], p[5], coef[2], coef[3] != 0)
    return errs.sum()
