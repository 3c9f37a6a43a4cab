"""Two-stream loader throughput: clips/s per worker for 64x224 clips cut from 256x340 stores, and where the time goes.

    .venv/bin/python benchmarks/bench_loader.py [--frames 80] [--clips 20] [--workers 2]

Writes a synthetic 256x340 store of `--frames` frames with `flow.store_writer.write_store` (JPEG q95 RGB + 8-bit flow in
`--compression`, by default the codec `tools/extract_flow.py` writes) into a temporary folder, then times
1. `TwoStreamClipDataset.__getitem__` in this process (= one DataLoader worker),
2. its parts on the same clips: JPEG decode of the crop (`read_rgb`), flow codes of the crop (`read_flow_codes`:
   HDF5 read + decompression + fletcher32), and the conversion of each to model input (`transforms`),
3. a DataLoader with `--workers` workers (collate and shared-memory transfer included).
Workers are set up with `i3d.data.worker_init_fn` unless `--no-worker-init`. The machine may be shared: CPU seconds
(per clip, and clips per CPU-second = what one worker does on a core of its own) are the numbers to compare; wall
clips/s only hold for an idle machine.
The synthetic frames carry fine detail and the flow is smooth, so JPEG and gzip see realistic sizes.
"""

import argparse
import contextlib
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without `pip install -e .`

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from flow.store import VideoStore
from flow.store_writer import FLOW_CODEC, FLOW_CODECS, write_store
from i3d.data import TwoStreamClipDataset, worker_init_fn
from i3d.data import transforms as T


def synthetic_video(num_frames: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames panning over a multi-scale noise texture, and a smooth flow field of a few pixels."""
    rng = np.random.default_rng(seed)
    big = (height + num_frames * 2 + 16, width + num_frames * 3 + 16)
    texture = np.zeros((*big, 3), np.float32)
    for cell in (32, 8, 2):  # coarse shapes, edges and fine grain
        noise = rng.random((big[0] // cell + 1, big[1] // cell + 1, 3)).astype(np.float32)
        texture += cv2.resize(noise, big[::-1], interpolation=cv2.INTER_CUBIC)[: big[0], : big[1]] / 3
    texture = np.clip(texture * 255, 0, 255).astype(np.uint8)
    rgb = np.stack([texture[2 * t : 2 * t + height, 3 * t : 3 * t + width] for t in range(num_frames)])
    coarse = rng.normal(0, 3, (num_frames, height // 16 + 1, width // 16 + 1, 2)).astype(np.float32)
    flow = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in coarse])
    return rgb, flow


class Stopwatch:
    """`with watch("stage"): ...` accumulates the wall and CPU seconds spent per stage."""

    def __init__(self):
        self.seconds: dict[str, np.ndarray] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = np.array([time.perf_counter(), time.process_time()])
        yield
        spent = np.array([time.perf_counter(), time.process_time()]) - start
        self.seconds[stage] = self.seconds.get(stage, 0.0) + spent


def breakdown(ds: TwoStreamClipDataset, path: Path, clips: int) -> dict[str, np.ndarray]:
    """(wall, CPU) seconds per clip of each stage, on the same draws as the dataset's, one clip at a time."""
    watch, s = Stopwatch(), ds.crop_size
    with VideoStore(path) as store:
        for i in range(clips):
            plan = ds.plan(i, store.num_frames, store.height, store.width)
            box = (plan.y0, plan.x0, s, s)
            with watch("jpeg_decode"):
                rgb = store.read_rgb(plan.indices[0], box)
            with watch("flow_read"):
                codes = store.read_flow_codes(plan.indices[0], box)
            with watch("rgb_to_input"):
                x = T.rgb_clip(rgb, flip=plan.flip)
                if not ds.compact:
                    T.expand_compact({"rgb": torch.from_numpy(x), "rgb_table": torch.from_numpy(ds._rgb_table)})
            with watch("flow_to_input"):
                x = T.flow_code_clip(codes, flip=plan.flip)
                table = T.flow_code_tables(store.flow_bound, ds.flow_bound, plan.flip)
                if not ds.compact:
                    T.expand_compact({"flow": torch.from_numpy(x), "flow_table": torch.from_numpy(table)})
    return {stage: seconds / clips for stage, seconds in watch.seconds.items()}


def loader_rates(ds: TwoStreamClipDataset, workers: int, init) -> None:
    """A real DataLoader (collate and shared-memory transfer included): clips/s, and clips per worker CPU-second."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    batches = iter(DataLoader(ds, batch_size=1, num_workers=workers, worker_init_fn=init))
    count = sum(1 for _ in batches)
    wall = time.perf_counter() - start
    del batches  # shuts the workers down, so their CPU time lands in RUSAGE_CHILDREN
    gc.collect()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    print(f"DataLoader, {workers} workers, {count} clips: {count / wall:.1f} clips/s wall (start included), "
          f"{count / cpu:.1f} clips per worker CPU-second")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--clips", type=int, default=20, help="clips timed per measurement")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the total-throughput line")
    parser.add_argument("--num-frames", type=int, default=64)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument(
        "--compact", action="store_true", help="TwoStreamClipDataset(compact=True): 8-bit RGB and flow codes"
    )
    parser.add_argument("--no-worker-init", action="store_true", help="measure without i3d.data.worker_init_fn")
    parser.add_argument("--compression", default=FLOW_CODEC, choices=FLOW_CODECS, help="flow codec")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    cv2.setNumThreads(1)  # one worker = one core: OpenCV's colour conversion would otherwise spread out
    if not args.no_worker_init:
        worker_init_fn(0)  # this process plays one worker
    with tempfile.TemporaryDirectory() as tmp:
        rgb, flow = synthetic_video(args.frames, 256, 340)
        path = write_store(Path(tmp) / "bench.h5", rgb, flow, {"source": "synthetic"}, compression=args.compression)
        print(f"store: {args.frames} frames 256x340, {args.compression} flow, {os.path.getsize(path) / 2**20:.1f} MiB")
        ds = TwoStreamClipDataset(
            [(path, 0)] * args.clips, num_frames=args.num_frames, crop_size=args.crop, compact=args.compact
        )
        ds[0]  # warm the page cache and imports
        watch = Stopwatch()
        with watch("total"):
            for i in range(args.clips):
                ds[i]
        wall, cpu = watch.seconds["total"] / args.clips
        print(f"one worker, {args.num_frames}x{args.crop}: {1 / wall:.1f} clips/s wall ({wall * 1000:.0f} ms/clip), "
              f"{1 / cpu:.1f} clips per CPU-second ({cpu * 1000:.0f} ms CPU/clip)")  # fmt: skip
        print(f"  {'stage':<20} {'wall ms':>8} {'CPU ms':>8} {'of CPU':>7}")
        for stage, (s_wall, s_cpu) in breakdown(ds, path, args.clips).items():
            print(f"  {stage:<20} {s_wall * 1000:8.0f} {s_cpu * 1000:8.0f} {s_cpu / cpu:7.0%}")
        if args.workers > 0:
            loader_rates(ds, args.workers, None if args.no_worker_init else worker_init_fn)
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs; wall numbers shrink when others share them")


if __name__ == "__main__":
    main()
