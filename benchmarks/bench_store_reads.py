"""Random 64-frame reads (RGB + flow, decoded) from many small HDF5 stores: where should the stores live?

    python benchmarks/bench_store_reads.py --dir /tmp/store_reads --stores 500 --reads 300

Writes one store of `--frames` frames at 256x340 with `flow.store_writer.write_store` (textured RGB, smooth random
flow), copies it to `--stores` files (distinct files and inodes, same bytes), then evicts every file from the page
cache with posix_fadvise(DONTNEED) (no root needed; the kernel may keep pages it cannot drop) and reads `--reads` random
(store, start) clips of 64 frames: the "cold" pass. The same clips read again are the "warm" pass (page cache). The
difference is what the storage costs per clip; CPU time (JPEG decode, gunzip) is the same in both.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flow.store import VideoStore  # noqa: E402
from flow.store_writer import write_store  # noqa: E402


def make_store(path: Path, frames: int, height: int = 256, width: int = 340) -> int:
    rng = np.random.default_rng(0)
    noise = rng.random((height // 8 + 8, (width + 4 * frames) // 8 + 8, 3)).astype(np.float32)
    texture = cv2.resize(noise, (noise.shape[1] * 8, noise.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
    texture = np.clip(texture * 255, 0, 255).astype(np.uint8)
    rgb = np.stack([texture[:height, 2 * t : 2 * t + width] for t in range(frames)])
    field = rng.normal(0, 1, (frames, height // 16, width // 16, 2)).astype(np.float32)
    flow = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) * 4 for f in field])
    write_store(path, rgb, flow, {"algorithm": "synthetic"})
    return path.stat().st_size


def evict(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_pass(draws: list[tuple[Path, int]], length: int) -> dict:
    walls, cpus = [], []
    for path, start in draws:
        w, c = time.perf_counter(), time.process_time()
        with VideoStore(path) as store:
            frames = range(start, start + length)
            store.read_rgb(frames)
            store.read_flow(frames)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    walls, cpus = np.array(walls) * 1e3, np.array(cpus) * 1e3
    ms = lambda x: round(float(x), 1)  # noqa: E731
    return {"wall_ms_median": ms(np.median(walls)), "wall_ms_p90": ms(np.percentile(walls, 90)),
            "wall_ms_mean": ms(walls.mean()), "cpu_ms_mean": ms(cpus.mean())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, required=True, help="where the stores go (on the file system to measure)")
    p.add_argument("--stores", type=int, default=500)
    p.add_argument("--frames", type=int, default=128, help="frames per store (Kinetics: ~250, UCF101: ~190)")
    p.add_argument("--reads", type=int, default=300)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--keep", action="store_true", help="keep the stores (default: removed at the end)")
    args = p.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    size = make_store(args.dir / "s00000.h5", args.frames)
    paths = [args.dir / "s00000.h5"]
    for i in range(1, args.stores):
        paths.append(Path(shutil.copyfile(paths[0], args.dir / f"s{i:05d}.h5")))
    rng = np.random.default_rng(1)
    draws = [(paths[rng.integers(len(paths))], int(rng.integers(args.frames - args.length + 1)))
             for _ in range(args.reads)]
    try:
        evict(paths)
        cold = read_pass(draws, args.length)
        warm = read_pass(draws, args.length)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    result = {"stores": args.stores, "frames": args.frames, "store_bytes": size, "reads": args.reads,
              "clip_frames": args.length, "cold": cold, "warm": warm, "load": os.getloadavg()}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
