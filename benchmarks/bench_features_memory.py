"""Peak memory and speed of tools/extract_features.py and tools/predict.py against video length: does memory grow?

    python benchmarks/bench_features_memory.py                                  # 800, 3,200, 12,800 frames
    python benchmarks/bench_features_memory.py --height 240 --width 320 --crop 224 --engine opencv

Synthetic videos of --frames frames (a random texture scrolling one pixel per frame, lossless FFV1 at 25 fps,
written a frame at a time) go through the tools as separate processes, as a user runs them:

    extract_features  --streams rgb flow, snippets of 16 at stride 16, TV-L1 (--engine) computed on the fly
    predict           a two-stream checkpoint whose spec takes the whole video (eval_num_frames=0): I3D in windows

Each process's peak resident memory comes from the kernel's accounting of that child (`os.wait4`, ru_maxrss), and
frames/s is frames over the process's wall time (start-up included). Random I3D weights unless --rgb-weights /
--flow-weights are given: neither memory nor speed depends on them. Frames keep their size (--short-side is the
video's), so the frame size sets the cost; `uptime` is printed because the machine may be shared.
"""

import argparse
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
from i3d.build import build_model_from_config
from i3d.config import config_to_dict, load_config
from i3d.data.spec import InputSpec
from i3d.models import InceptionI3d

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[800, 3200, 12800], help="video lengths")
    p.add_argument("--height", type=int, default=32)
    p.add_argument("--width", type=int, default=40)
    p.add_argument("--crop", type=int, default=32, help="the model's centre crop (at most the shorter side)")
    p.add_argument("--engine", default="numba", help="TV-L1 engine for the flow computed on the fly")
    p.add_argument("--rgb-weights", type=Path, help="I3D RGB weights for extract_features (default: random)")
    p.add_argument("--flow-weights", type=Path, help="I3D flow weights for extract_features (default: random)")
    p.add_argument("--tools", nargs="+", choices=("features", "predict"), default=["features", "predict"])
    p.add_argument("--work", type=Path, help="folder for the videos and outputs (default: a temporary one)")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def make_video(path: Path, frames: int, height: int, width: int) -> Path:
    """A texture scrolling right one pixel per frame, written without ever holding the video."""
    texture = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if not path.exists():
        write_video(path, (np.roll(texture, t, axis=1) for t in range(frames)), fps=25.0)
    return path


def random_weights(work: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    paths = {"rgb": work / "rgb.pt", "flow": work / "flow.pt"}
    for stream, channels in (("rgb", 3), ("flow", 2)):
        torch.save(InceptionI3d(num_classes=400, in_channels=channels).state_dict(), paths[stream])
    return paths


def whole_video_checkpoint(path: Path, short_side: int, crop: int, engine: str) -> Path:
    """A two-stream checkpoint in the trainer's format whose input spec takes whole videos."""
    cfg = load_config(None, ["model.num_classes=10", f"data.crop_size={crop}", "data.num_frames=64",
                             "data.eval_num_frames=0", "model.streams=rgb,flow"])
    torch.manual_seed(0)
    model = build_model_from_config(cfg)
    spec = InputSpec(short_side=short_side, crop_size=crop, flow_engine=engine, num_frames=64, eval_num_frames=0)
    torch.save({"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 1, "step": 1,
                "rng": {}, "config": config_to_dict(cfg), "classes": [f"class{i}" for i in range(10)],
                "input_spec": spec.to_dict()}, path)
    return path


def measure(cmd: list[str]) -> dict:
    """Run `cmd` from the repository; its peak RSS (MB) and wall seconds. A failure stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "seconds": seconds}  # ru_maxrss is in kB on Linux


def commands(tool: str, video: Path, work: Path, args: argparse.Namespace, weights: dict, checkpoint: Path):
    short = min(args.height, args.width)
    if tool == "features":
        out = work / f"features_{video.stem}"
        return [sys.executable, "tools/extract_features.py", "--videos", str(video), "--out", str(out),
                "--streams", "rgb", "flow", "--rgb-weights", str(weights["rgb"]), "--flow-weights",
                str(weights["flow"]), "--short-side", str(short), "--crop", str(args.crop), "--engine", args.engine,
                "--overwrite", "--no-progress", "--device", "cpu"]
    return [sys.executable, "tools/predict.py", str(video), "--checkpoint", str(checkpoint), "--device", "cpu"]


def main(args: argparse.Namespace) -> list[dict]:
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        weights = {"rgb": args.rgb_weights, "flow": args.flow_weights}
        if not all(weights.values()):
            weights = {**random_weights(work), **{s: w for s, w in weights.items() if w}}
        checkpoint = whole_video_checkpoint(work / "whole_video.pt", min(args.height, args.width), args.crop,
                                            args.engine)
        results = []
        for frames in args.frames:
            video = make_video(work / f"v{frames}.avi", frames, args.height, args.width)
            for tool in args.tools:
                row = {"tool": tool, "frames": frames, **measure(commands(tool, video, work, args, weights,
                                                                           checkpoint))}
                row["frames_per_s"] = frames / row["seconds"]
                results.append(row)
                print(f"{tool:9s} {frames:6d} frames of {args.width}x{args.height}: peak RSS {row['peak_rss_mb']:7.1f} "
                      f"MB, {row['seconds']:6.1f} s, {row['frames_per_s']:6.1f} frames/s", flush=True)
    for tool in args.tools:
        rows = [r for r in results if r["tool"] == tool]
        growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
        print(f"{tool}: peak RSS grows {growth:+.1f} MB from {rows[0]['frames']} to {rows[-1]['frames']} frames")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main(parse_args())
