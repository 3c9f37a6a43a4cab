"""TV-L1 in PyTorch: OpenCV's Dual TV-L1 on a batch of frame pairs at once (GPU first; runs on the CPU too).

Same algorithm and parameters as OpenCV's `OpticalFlowDual_TVL1` (see flow/engines/numba_tvl1.py for the steps):
bilinear pyramid by `scale_step`, bicubic warping at exact float coordinates (OpenCV 5's remap) with zeros
outside, thresholding, divergence / forward-gradient dual updates with OpenCV's borders, a 5x5 median of the flow
at the start of every outer loop (3x3 also supported), the epsilon stopping rule and flow upscaling by
1 / scale_step.

Batching: every tensor is (n, H, W), n pairs of one video (same size) per kernel launch. Each pair keeps
OpenCV's own stopping rule through a mask: a pair whose error fell below epsilon^2 * H * W stops changing (its
u, p and error are kept by `torch.where`), exactly as OpenCV would have left the loop for it. A fixed budget
(always outer x inner iterations) would be simpler but gives a different, more converged answer than OpenCV's on
easy pairs, which is what we are validated against.

Converged pairs leave the batch: every `check_every` inner iterations (and at the start of every outer loop) the
unconverged pairs are counted, and if some have converged the others are gathered into smaller tensors
(`index_select`), iterate alone, and are scattered back at the end of the warp (each warp starts with every pair,
as OpenCV starts each warp with an infinite error). A batch then costs what its slow pairs cost instead of every
pair iterating as long as the slowest; between two counts a converged pair stays frozen by its mask. The count is
the only host sync (the error stays on the device otherwise): free on the CPU, where the count comes after every
iteration, a pipeline drain on a GPU, where it comes every 10 iterations. The flow is the same, bit for bit, as
when every pair stays in the batch (`drop_converged=False`): the iteration is elementwise per pair, and the error is
summed row by row, then over the rows, an order that does not depend on how many pairs are in the batch (a single
sum over H x W changes its order on a multi-threaded CPU when one pair is left).

`torch.compile` fuses the iteration (about 40 elementwise ops) into a few kernels; it is on by default on CUDA
and off on the CPU, and any failure to compile falls back to eager mode with a warning.
"""

import dataclasses
import functools
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from flow.tvl1 import TVL1Params, check_pairs, check_reimplementable, median_network

_FLT_EPSILON = float(np.finfo(np.float32).eps)
_CUBIC_A = -0.75  # OpenCV's bicubic kernel
_CHECK_EVERY, _CHECK_EVERY_GPU = 1, 10  # inner iterations between two counts of the unconverged pairs (host syncs)


def _linear_taps(out_size: int, in_size: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv2.resize INTER_LINEAR along one axis: source (d + 0.5) * scale - 0.5, clamped to the image."""
    f = (np.arange(out_size) + 0.5) * scale - 0.5
    i0 = np.floor(f).astype(np.int64)
    a = (f - i0).astype(np.float32)
    low, high = i0 < 0, i0 >= in_size - 1
    i0[low], a[low] = 0, 0.0
    i0[high], a[high] = in_size - 1, 0.0
    return i0, np.minimum(i0 + 1, in_size - 1), a


@functools.lru_cache(maxsize=64)
def _resize_plan(in_hw: tuple, out_hw: tuple, scale_hw: tuple, device: torch.device):
    plans = []
    for n_out, n_in, scale in zip(out_hw, in_hw, scale_hw, strict=True):
        i0, i1, a = _linear_taps(n_out, n_in, scale)
        plans.append((torch.from_numpy(i0).to(device), torch.from_numpy(i1).to(device), torch.from_numpy(a).to(device)))
    return plans


def resize_linear(x: torch.Tensor, out_hw: tuple[int, int], scale_hw: tuple[float, float]) -> torch.Tensor:
    """Resize (n, H, W) like cv2.resize(..., INTER_LINEAR) with source/destination scales `scale_hw`."""
    (y0, y1, ay), (x0, x1, ax) = _resize_plan(tuple(x.shape[1:]), tuple(out_hw), tuple(scale_hw), x.device)
    x = x.index_select(2, x0) * (1 - ax) + x.index_select(2, x1) * ax  # horizontal pass first, as OpenCV
    return x.index_select(1, y0) * (1 - ay[:, None]) + x.index_select(1, y1) * ay[:, None]


def centered_gradient(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences; on the borders OpenCV takes the one-sided difference, still halved (= replicate pad)."""
    pad = F.pad(img[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    return 0.5 * (pad[:, 1:-1, 2:] - pad[:, 1:-1, :-2]), 0.5 * (pad[:, 2:, 1:-1] - pad[:, :-2, 1:-1])


def _cubic_weights(t: torch.Tensor) -> list[torch.Tensor]:
    a = _CUBIC_A
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    return [w0, w1, w2, 1 - w0 - w1 - w2]


def warp_bicubic(images: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """images (n, C, H, W) sampled at (x + u1, y + u2): cv2.remap INTER_CUBIC, BORDER_CONSTANT 0."""
    n, c, h, w = images.shape
    ys = torch.arange(h, device=u1.device, dtype=u1.dtype)[:, None]
    xs = torch.arange(w, device=u1.device, dtype=u1.dtype)
    # clamp far-away coordinates (they read zeros anyway) so the integer conversion cannot overflow
    mx, my = (xs + u1).clamp(-8, w + 8), (ys + u2).clamp(-8, h + 8)
    fx, fy = torch.floor(mx), torch.floor(my)
    ix, iy = fx.to(torch.int64), fy.to(torch.int64)
    wx, wy = _cubic_weights(mx - fx), _cubic_weights(my - fy)
    flat = images.reshape(n, c, h * w)
    out = torch.zeros_like(flat)
    for j in range(4):
        yy = iy + (j - 1)
        y_ok = (yy >= 0) & (yy < h)
        for i in range(4):
            xx = ix + (i - 1)
            ok = y_ok & (xx >= 0) & (xx < w)
            index = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(n, 1, h * w).expand(n, c, h * w)
            weight = (wy[j] * wx[i] * ok).reshape(n, 1, h * w)
            out += flat.gather(2, index) * weight
    return out.reshape(n, c, h, w)


def median_blur(u: torch.Tensor, k: int) -> torch.Tensor:
    """k x k median with replicated borders (cv2.medianBlur(u, k) on float32, k = 3 or 5) of (n, H, W), bit for bit.

    A selection network (`flow.tvl1.median_network`: 113 compare-exchanges for k = 5) over the k * k shifted views of
    the padded flow: elementwise min/max only, which torch.compile fuses into one kernel that keeps each pixel's
    window in registers. It replaces `unfold` + `torch.median`, which took over half of the engine's device time
    (docs/PERFORMANCE.md, "On a GPU").
    """
    n, h, w = u.shape
    r = k // 2
    padded = F.pad(u[:, None], (r, r, r, r), mode="replicate")[:, 0]
    v = [padded[:, dy : dy + h, dx : dx + w] for dy in range(k) for dx in range(k)]
    for a, b in median_network(k * k).tolist():
        v[a], v[b] = torch.minimum(v[a], v[b]), torch.maximum(v[a], v[b])
    return v[k * k // 2].contiguous()


def masked_median(keep: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The median step of an outer loop: `median_blur` of u1 and u2 for the pairs whose `keep` (n, 1, 1) is set."""
    return torch.where(keep, median_blur(u1, k), u1), torch.where(keep, median_blur(u2, k), u2)


def _forward_diff(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences, zero on the last column (x) and the last row (y)."""
    return F.pad(u[:, :, 1:] - u[:, :, :-1], (0, 1)), F.pad(u[:, 1:] - u[:, :-1], (0, 0, 0, 1))


def _divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward differences with p = 0 left of column 0 and above row 0."""
    return px - F.pad(px[:, :, :-1], (1, 0)) + py - F.pad(py[:, :-1], (0, 0, 1, 0))


def _dual(p1, p2, u, taut):
    ux, uy = _forward_diff(u)
    ng = 1 + taut * torch.sqrt(ux * ux + uy * uy)
    return (p1 + taut * ux) / ng, (p2 + taut * uy) / ng


def tvl1_step(active, error, warped, u, p, coef):
    """One TV-L1 iteration for every pair whose `active` flag (n,) is set; the others keep u, p and error.

    warped = (I1wx, I1wy, |grad I1w|^2, rho_c); u = (u1, u2, u3); p = (p11, p12, p21, p22, p31, p32);
    coef = (lambda * theta, theta, tau / theta, gamma). u3 and p3* are None when gamma == 0.
    """
    i1wx, i1wy, grad, rho_c = warped
    u1, u2, u3 = u
    l_t, theta, taut, gamma = coef
    rho = rho_c + i1wx * u1 + i1wy * u2
    if u3 is not None:
        rho = rho + gamma * u3
    fi = torch.where(grad > _FLT_EPSILON, -rho / grad, torch.zeros_like(rho))
    fi = torch.where(rho < -l_t * grad, torch.full_like(rho, l_t), fi)
    fi = torch.where(rho > l_t * grad, torch.full_like(rho, -l_t), fi)
    new_u = [u1 + fi * i1wx + theta * _divergence(p[0], p[1]), u2 + fi * i1wy + theta * _divergence(p[2], p[3])]
    if u3 is not None:
        new_u.append(u3 + fi * gamma + theta * _divergence(p[4], p[5]))
    # rows first, then the rows' sums: the same order for a pair whatever the batch size (see the module docstring)
    new_error = sum(((a - b) ** 2).sum(dim=2).sum(dim=1) for a, b in zip(new_u, u[: len(new_u)], strict=True))
    new_p = [*_dual(p[0], p[1], new_u[0], taut), *_dual(p[2], p[3], new_u[1], taut)]
    if u3 is not None:
        new_p += _dual(p[4], p[5], new_u[2], taut)
    keep = active[:, None, None]
    u_out = [torch.where(keep, a, b) for a, b in zip(new_u, u[: len(new_u)], strict=True)]
    p_out = [torch.where(keep, a, b) for a, b in zip(new_p, p[: len(new_p)], strict=True)]
    if u3 is None:  # keep the (u1, u2, u3) and (p11, ..., p32) layouts
        u_out, p_out = u_out + [None], p_out + [None, None]
    return torch.where(active, new_error, error), tuple(u_out), tuple(p_out)


def _compiled_or_eager(fn):
    """torch.compile(fn), falling back to `fn` with a warning when compiling fails, now or at the first call."""
    # dynamic=None (automatic dynamic shapes): pairs leaving the batch change its size from one count to the next,
    # and each scale changes H and W; the first change of a dimension recompiles once with that dimension symbolic,
    # so this costs a few compiles per function (plus a batch of one: sizes 0 and 1 are specialised), not one per size
    # as static shapes would, and no padding of the batch to fixed bucket sizes is needed.
    try:
        compiled = torch.compile(fn, dynamic=None)
    except Exception as exc:  # torch.compile missing or unsupported here
        warnings.warn(f"TorchTVL1: torch.compile unavailable ({exc}); running eager", stacklevel=3)
        return fn
    current = [compiled]

    def call(*args):
        try:
            return current[0](*args)
        except Exception as exc:  # compilation happens at the first call: no compiler, no Triton, ...
            if current[0] is fn:
                raise
            warnings.warn(f"TorchTVL1: torch.compile failed ({type(exc).__name__}: {exc}); running eager",
                          stacklevel=2)
            current[0] = fn
            return fn(*args)

    return call


class TorchTVL1:
    """OpenCV's Dual TV-L1 on batches of pairs with PyTorch.

    Args:
        params: TV-L1 parameters (OpenCV's defaults if None); `use_initial_flow` is not supported.
        device: "cuda", "cpu", ... (default: CUDA when available).
        batch_size: pairs per batch (None: all pairs of a call at once).
        compile: fuse the iteration with torch.compile (default: on CUDA only); falls back to eager on failure.
        drop_converged: converged pairs leave the batch (False: they stay in it, frozen by their mask, and cost as
            much as the others; the flow is the same).
    """

    name = "torch"
    version = f"1.0+torch{torch.__version__}"

    def __init__(self, params: TVL1Params | None = None, device: str | None = None, batch_size: int | None = None,
                 compile: bool | None = None, drop_converged: bool = True):
        self.params = params if params is not None else TVL1Params()
        p = self.params
        check_reimplementable(p, "TorchTVL1")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"TorchTVL1: batch_size must be >= 1 or None, got {batch_size}")
        self.batch_size = batch_size
        self.drop_converged = drop_converged
        self.check_every = _CHECK_EVERY if self.device.type == "cpu" else _CHECK_EVERY_GPU
        self._step, self._median = tvl1_step, masked_median
        if compile if compile is not None else self.device.type == "cuda":
            self._step, self._median = _compiled_or_eager(tvl1_step), _compiled_or_eager(masked_median)

    @torch.no_grad()
    def calc_pairs(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow (n, H, W, 2) float32 for n pairs of (n, H, W) uint8 grayscale frames, prev[i] -> nxt[i]."""
        prev, nxt = check_pairs(prev, nxt, self.name)
        n = len(prev)
        size = self.batch_size or max(n, 1)
        pin = self.device.type == "cuda"
        frames = torch.from_numpy(np.stack([prev, nxt], axis=1))  # (n, 2, H, W) uint8
        if pin:
            frames = frames.pin_memory()
        outs = []
        for start in range(0, n, size):
            # non_blocking: the next batch's upload is queued behind this batch's work, not waited for
            batch = frames[start : start + size].to(self.device, non_blocking=pin).float()
            outs.append(self._solve(batch[:, 0], batch[:, 1]))
        out = torch.cat(outs) if outs else torch.empty((0,) + prev.shape[1:] + (2,))
        return out.cpu().numpy()

    def _solve(self, i0: torch.Tensor, i1: torch.Tensor) -> torch.Tensor:
        """(n, H, W, 2) flow for float (n, H, W) frames in 0..255, coarse to fine."""
        p = self.params
        i0s, i1s = [i0], [i1]
        for _ in range(1, p.nscales):
            h, w = i0s[-1].shape[1:]
            size = (round(h * p.scale_step), round(w * p.scale_step))  # Python rounds half to even, as cvRound
            if min(size) < 16:
                break
            inv = (1 / p.scale_step, 1 / p.scale_step)
            i0s.append(resize_linear(i0s[-1], size, inv))
            i1s.append(resize_linear(i1s[-1], size, inv))
        u1 = torch.zeros_like(i0s[-1])
        u2 = torch.zeros_like(u1)
        u3 = torch.zeros_like(u1) if p.gamma != 0 else None
        for s in range(len(i0s) - 1, -1, -1):
            u1, u2, u3 = self._one_scale(i0s[s], i1s[s], u1, u2, u3)
            if s > 0:
                h, w = u1.shape[1:]
                size = tuple(i0s[s - 1].shape[1:])
                scale = (h / size[0], w / size[1])
                u1 = resize_linear(u1, size, scale) / p.scale_step
                u2 = resize_linear(u2, size, scale) / p.scale_step
                u3 = resize_linear(u3, size, scale) if u3 is not None else None  # not a displacement
        return torch.stack([u1, u2], dim=-1)

    def _one_scale(self, i0, i1, u1, u2, u3):
        p = self.params
        h, w = i0.shape[1:]
        scaled_eps = p.epsilon * p.epsilon * h * w
        coef = (p.lambda_ * p.theta, p.theta, p.tau / p.theta, p.gamma)
        i1x, i1y = centered_gradient(i1)
        dual = tuple(torch.zeros_like(i0) for _ in range(4 if u3 is None else 6)) + ((None, None) if u3 is None else ())
        u = (u1, u2, u3)
        for _ in range(p.warps):
            i1w, i1wx, i1wy = warp_bicubic(torch.stack([i1, i1x, i1y], dim=1), u[0], u[1]).unbind(1)
            warped = (i1wx, i1wy, i1wx * i1wx + i1wy * i1wy, i1w - i1wx * u[0] - i1wy * u[1] - i0)
            u, dual = self._iterate(warped, u, dual, coef, scaled_eps)
        return u

    def _iterate(self, warped, u, dual, coef, scaled_eps):
        """The outer and inner loops of one warp, every pair starting unconverged; returns (u, dual) of all pairs."""
        p = self.params
        pairs = _Pairs(warped, u, dual, torch.full((len(u[0]),), float("inf"), device=u[0].device))
        for _ in range(p.outer_iterations):
            if not self._still_iterating(pairs, scaled_eps):
                break
            if p.median_filtering > 1:
                keep = (pairs.error > scaled_eps)[:, None, None]
                pairs.u = (*self._median(keep, pairs.u[0], pairs.u[1], p.median_filtering), pairs.u[2])
            for i in range(p.inner_iterations):
                if i and i % self.check_every == 0 and not self._still_iterating(pairs, scaled_eps):
                    break
                step = self._step(pairs.error > scaled_eps, pairs.error, pairs.warped, pairs.u, pairs.dual, coef)
                pairs.error, pairs.u, pairs.dual = step
        return pairs.result()

    def _still_iterating(self, pairs: "_Pairs", scaled_eps: float) -> bool:
        """Whether any pair is still above epsilon; with `drop_converged`, the others leave `pairs` here."""
        active = pairs.error > scaled_eps
        count = int(active.sum())  # a host sync (see the module docstring)
        if self.drop_converged and 0 < count < len(active):
            pairs.keep(active, count)
        return count > 0


@dataclasses.dataclass
class _Pairs:
    """The pairs of a batch still iterating in a warp: their inputs and state, and where they sit in the batch.

    `whole` is the batch's (u, dual) as it was when pairs first left; `rows` the positions there of the pairs still
    here (both None while every pair is here). Pairs that leave are written back to `whole`, the others at the end.
    """

    warped: tuple
    u: tuple
    dual: tuple
    error: torch.Tensor
    whole: tuple | None = None
    rows: torch.Tensor | None = None

    def keep(self, active: torch.Tensor, count: int) -> None:
        """Keep the `count` pairs whose `active` is set (nonzero_static: the sizes are known, so no second sync)."""
        stay = torch.nonzero_static(active, size=count)[:, 0]
        if self.whole is None:
            self.whole, self.rows = (self.u, self.dual), torch.arange(len(active), device=active.device)
        else:
            leave = torch.nonzero_static(~active, size=len(active) - count)[:, 0]
            _put(self.whole, self.rows.index_select(0, leave), (_take(self.u, leave), _take(self.dual, leave)))
        self.rows, self.error = self.rows.index_select(0, stay), self.error.index_select(0, stay)
        self.u, self.dual, self.warped = _take(self.u, stay), _take(self.dual, stay), _take(self.warped, stay)

    def result(self) -> tuple:
        """(u, dual) of every pair of the batch, in its order."""
        if self.whole is None:
            return self.u, self.dual
        _put(self.whole, self.rows, (self.u, self.dual))
        return self.whole


def _take(tensors: tuple, index: torch.Tensor) -> tuple:
    """The pairs `index` of every tensor of `tensors` (None entries stay None)."""
    return tuple(None if t is None else t.index_select(0, index) for t in tensors)


def _put(whole: tuple, index: torch.Tensor, parts: tuple) -> None:
    """Write `parts` (tuples of tensors shaped like `whole`'s) into the pairs `index` of `whole`, in place."""
    for wholes, partials in zip(whole, parts, strict=True):
        for dst, src in zip(wholes, partials, strict=True):
            if dst is not None:
                dst.index_copy_(0, index, src)
