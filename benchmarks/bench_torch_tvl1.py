"""Torch TV-L1 on the CPU: converged pairs leaving the batch against the whole batch iterating to its slowest pair.

    python benchmarks/bench_torch_tvl1.py --threads 1 --size 128 170 --repeats 3
    python benchmarks/bench_torch_tvl1.py --threads 1 --size 256 340 --repeats 2 --inputs mixed

Three settings of the same engine (`TorchTVL1`, eager, on the CPU) on the same batch of 8 pairs: `before`, every pair
stays in the batch frozen by its mask and the pairs are counted once per outer loop (the engine before pairs could
leave: `drop_converged=False`, `check_every` = inner iterations); `after`, the CPU's default (pairs leave, counted
after every iteration); `gpu_setting`, pairs leave but are counted every 10 iterations as on a GPU. The flows are
checked identical; pair-iterations (the sum of the batch sizes over all iterations) are counted on an extra,
untimed call of each setting; the timed calls take turns in a rotating order, so a shared machine's load falls on all
settings alike, and each repeat prints its own before/after ratios. Inputs: `bikes.mp4` / `bigbuckbunny.mp4`
(consecutive pairs, short side resized and centre cropped as in bench_flow.py) and `mixed`, bikes pairs alternating
with bigbuckbunny frames paired with themselves (a still shot: such pairs converge at once).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_flow import load_pairs  # noqa: E402

from flow.engines.torch_tvl1 import TorchTVL1  # noqa: E402

SETTINGS = {"before": (False, None), "after": (True, 1), "gpu_setting": (True, 10)}  # (drop_converged, check_every)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", nargs="+", default=["mixed", "bigbuckbunny.mp4", "bikes.mp4"])
    p.add_argument("--pairs", type=int, default=8, help="pairs per batch (one engine call)")
    p.add_argument("--size", type=int, nargs=2, default=[128, 170], metavar=("SHORT_SIDE", "CROP_WIDTH"))
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--repeats", type=int, default=3)
    return p.parse_args(argv)


def load_batch(name: str, pairs: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(prev, next) uint8 stacks of `pairs` pairs of input `name` (see the module docstring)."""
    if name != "mixed":
        return load_pairs(name, pairs, *size)
    prev, nxt = load_pairs("bikes.mp4", pairs, *size)
    still, _ = load_pairs("bigbuckbunny.mp4", pairs, *size)
    prev[1::2], nxt[1::2] = still[1::2], still[1::2]
    return prev, nxt


def make_engines() -> dict:
    engines = {}
    for key, (drop, every) in SETTINGS.items():
        engines[key] = TorchTVL1(device="cpu", compile=False, drop_converged=drop)
        engines[key].check_every = every or engines[key].params.inner_iterations
    return engines


def pair_iterations(engine: TorchTVL1, prev: np.ndarray, nxt: np.ndarray) -> tuple[np.ndarray, int]:
    """The flow, and the sum over all iterations of the number of pairs iterated (counted around the step)."""
    sizes, step = [], engine._step
    engine._step = lambda *args: sizes.append(len(args[1])) or step(*args)  # args[1]: the error, one per pair
    try:
        return engine.calc_pairs(prev, nxt), sum(sizes)
    finally:
        engine._step = step


def run_input(name: str, args: argparse.Namespace) -> None:
    prev, nxt = load_batch(name, args.pairs, tuple(args.size))
    engines = make_engines()
    counted = {key: pair_iterations(engine, prev, nxt) for key, engine in engines.items()}  # also the warm-up
    if not all(np.array_equal(counted["before"][0], flow) for flow, _ in counted.values()):
        sys.exit(f"{name}: the settings gave different flows")
    print(f"{name} {prev.shape[1]}x{prev.shape[2]}, {len(prev)} pairs, identical flows; pair-iterations "
          + ", ".join(f"{key} {n}" for key, (_, n) in counted.items()), flush=True)
    times = {key: [] for key in engines}
    keys = list(engines)
    for r in range(args.repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            wall, cpu = time.perf_counter(), time.process_time()
            engines[key].calc_pairs(prev, nxt)
            times[key].append((time.perf_counter() - wall, time.process_time() - cpu))
        last = {key: t[-1] for key, t in times.items()}
        print(f"  repeat {r}: " + ", ".join(f"{k} {w:.2f} s ({c:.2f} CPU-s)" for k, (w, c) in last.items())
              + f"; before/after wall {last['before'][0] / last['after'][0]:.2f}, "
              f"CPU {last['before'][1] / last['after'][1]:.2f}", flush=True)
    for key, t in times.items():
        wall, cpu = np.median(np.array(t), axis=0)
        print(f"  {key:11s} {len(prev) / wall:.3f} pairs/s, {len(prev) / cpu:.3f} pairs per CPU-s (medians)")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}", flush=True)
    for name in args.inputs:
        run_input(name, args)
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(parse_args())
