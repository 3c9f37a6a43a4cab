"""Frames per second of each per-video job through its command-line tool, as a user runs it.

    python benchmarks/bench_jobs.py                                   # flow, faces, features; 4 videos, --workers 2
    python benchmarks/bench_jobs.py --jobs flow --videos 8 --frames 250 --size 240x320

Each tool (`tools/extract_flow.py`, `tools/extract_faces.py`, `tools/extract_features.py`) runs as a subprocess with
`--workers W` over generated videos: textured frames moving a pixel per frame for flow and features (TV-L1 on the
fly, Kinetics I3D's input: 25 fps, short side 256, 224 crop, random weights: the speed does not depend on them), a
real face (scikit-image's astronaut) for faces. Start-up (interpreter, imports, worker processes, models) is the
wall time of the same command on one 2-frame video and is reported apart; throughput is the frames of the run over
its wall time less that start-up. The load average is printed: the numbers mean something on an idle machine only.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from flow.video import write_video
from i3d.models import InceptionI3d

ROOT = Path(__file__).resolve().parents[1]


def textured_frames(*args, **kwargs):
    """The tests' moving texture (tests/helpers.py, loaded by path: tests/ on sys.path would shadow i3d)."""
    spec = importlib.util.spec_from_file_location("tests_helpers", ROOT / "tests" / "helpers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.textured_frames(*args, **kwargs)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", nargs="+", choices=("flow", "faces", "features"), default=["flow", "faces", "features"])
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--size", default="240x320", help="HxW of the flow and features videos")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    return p.parse_args(argv)


def write_job_videos(folder: Path, job: str, count: int, frames: int, size: tuple[int, int]) -> None:
    for i in range(count):
        if job == "faces":
            from i3d.synthetic.faces import astronaut_video

            video = astronaut_video(frames)[0]
        else:
            video = textured_frames(frames, *size, dx=1.0, dy=0.5, seed=i)
        write_video(folder / f"v{i}.avi", video, 25)


def job_args(job: str, tmp: Path) -> list[str]:
    if job == "flow":
        return []
    if job == "faces":
        return ["--split-frames", "0", "--min-frames", "2"]
    if not (tmp / "rgb.pt").exists():
        torch.save(InceptionI3d(num_classes=400, in_channels=3).state_dict(), tmp / "rgb.pt")
        torch.save(InceptionI3d(num_classes=400, in_channels=2).state_dict(), tmp / "flow.pt")
    return ["--rgb-weights", str(tmp / "rgb.pt"), "--flow-weights", str(tmp / "flow.pt"), "--device", "cpu",
            "--last", "pad"]  # the start-up run's 2-frame video: one padded snippet


def run(job: str, videos: Path, out: Path, args: list[str], workers: int) -> float:
    tool = ROOT / "tools" / f"extract_{job}.py"
    cmd = [sys.executable, str(tool), "--videos", str(videos), "--out", str(out), "--workers", str(workers),
           "--no-progress", *args]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main(args: argparse.Namespace) -> dict:
    size = tuple(int(x) for x in args.size.split("x"))
    results = {"load_before": os.getloadavg(), "cores": os.cpu_count(), "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for job in args.jobs:
            extra = job_args(job, tmp)
            write_job_videos(tmp / job / "one", job, 1, 2, size)
            write_job_videos(tmp / job / "many", job, args.videos, args.frames, size)
            startup = run(job, tmp / job / "one", tmp / job / "out_one", extra, args.workers)
            wall = run(job, tmp / job / "many", tmp / job / "out_many", extra, args.workers)
            frames = args.videos * args.frames
            results[job] = {"startup_s": startup, "wall_s": wall, "frames": frames,
                            "frames_per_s": frames / wall, "frames_per_s_after_startup": frames / (wall - startup)}
            r = results[job]
            print(f"{job:9s} start-up {startup:5.1f} s; {frames} frames in {wall:6.1f} s: {r['frames_per_s']:6.1f} "
                  f"frames/s, {r['frames_per_s_after_startup']:6.1f} after start-up; load {os.getloadavg()[0]:.2f}")
    results["load_after"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(parse_args())
