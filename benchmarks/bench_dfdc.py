"""Seconds per raw DFDC video through `tools/predict_ensemble.py --faces` with the seven-model ensemble.

    python benchmarks/bench_dfdc.py                                  # 3 videos, 300 frames, 1920x1080, CPU
    python benchmarks/bench_dfdc.py --device cuda --videos 10 --json benchmarks/results/dfdc_gpu.json
    python benchmarks/bench_dfdc.py --videos 1 --frames 16 --size 240x320 --crop 16 --clip-frames 4 \
        --face-size 32 --min-frames 8                                # a few seconds (tests/benchmarks)

The competition's budget was 4,000 test videos (1920x1080, about 300 frames at 30 fps) in 9 hours on one GPU: about
8 s per video for face detection and the whole ensemble. This benchmark measures that path as a user runs it:

- the ensemble: one checkpoint per `configs/dfdc_*.yaml` (the seven members of jphdotam/DFDC's solution: I3D, I3D
  with CutMix, ResNet3D-34, MC3-18 at 112 and 224 px, R(2+1)D-18 at 112 px, with and without CutMix), built from the
  config with random weights (speed does not depend on them) and saved as training saves it: model, config, classes
  and the input spec of face-clip stores made by the README's recipe (`extract_flow.py --short-side 0`, its default
  frame rate);
- the videos: a real face (scikit-image's astronaut) moving over a photograph without a face, written as MPEG-4
  (.mp4, lossy, as DFDC's are) at 30 fps, generated into a temporary folder;
- the run: `tools/predict_ensemble.py --faces --model CKPT ... --device D` in a subprocess; the tool's report holds
  each video's seconds per stage (`i3d.inference.ensemble.STAGES`: decode both passes of the raw video, detect,
  crop, read_clips, inputs, forward:<member>) and each member's loading time.

Start-up (interpreter, imports, building the models and loading their weights) is the tool's wall time less its
videos' seconds, reported apart from the per-video numbers. The first video also pays one-time costs (MTCNN's
weights, the first forward passes' kernel choices), so the steady state is the mean of the videos after it. Face
options other than the recipe's (--face-size, --min-frames, for small runs) cut one video with them first and pass
that folder as --faces-like, as a user matching training clips would. The load average is printed: on a machine
shared with other jobs the numbers are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from faces.extract import cut_faces
from faces.options import FaceOptions
from flow.extract import ExtractOptions
from flow.video import write_video
from i3d.build import build_model_from_config
from i3d.checkpoint import save_checkpoint
from i3d.config import config_to_dict, load_config
from i3d.loaders import spec_for_run
from i3d.synthetic.faces import load_photo

ROOT = Path(__file__).resolve().parents[1]
# the seven members, as the configs number them
CONFIGS = ("dfdc_i3d", "dfdc_res34", "dfdc_mc3_112", "dfdc_mc3_224", "dfdc_r2p1_112", "dfdc_i3d_cutmix",
           "dfdc_r2p1_112_cutmix")
FPS = 30.0  # DFDC's videos


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=3, help="videos to score (the first one carries the warm-up)")
    p.add_argument("--frames", type=int, default=300, help="frames per video (DFDC: about 300)")
    p.add_argument("--size", default="1080x1920", help="HxW of the raw videos (DFDC: 1080x1920)")
    p.add_argument("--device", default="cpu", help="cpu or cuda, passed to the tool")
    p.add_argument("--members", nargs="+", choices=CONFIGS, default=list(CONFIGS), help="configs of the ensemble")
    p.add_argument("--crop", type=int, default=0, help="shrink every model's crop to this (0: the configs' own)")
    p.add_argument("--clip-frames", type=int, default=0, help="frames per model clip (0: the configs' own)")
    p.add_argument("--face-size", type=int, default=FaceOptions.size, help="face clips' side in pixels")
    p.add_argument("--min-frames", type=int, default=FaceOptions.min_frames, help="shortest face clip kept")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    return p.parse_args(argv)


# -- inputs ------------------------------------------------------------------------------------------------------
def make_checkpoints(folder: Path, members=CONFIGS, crop: int = 0, clip_frames: int = 0) -> list[Path]:
    """One checkpoint per DFDC config, random weights, saved with its config, classes and input spec."""
    extraction = {"fps": ExtractOptions().fps, "short_side": 0}  # face-clip stores: the clips' own size
    sets = ["model.rgb.pretrained="]
    if crop:
        sets.append(f"data.crop_size={crop}")
    if clip_frames:
        sets += [f"data.num_frames={clip_frames}", f"data.eval_num_frames={clip_frames}"]
    paths = []
    for name in members:
        cfg = load_config(ROOT / "configs" / f"{name}.yaml", sets)
        model = build_model_from_config(cfg)
        state = {"model": model.state_dict(), "config": config_to_dict(cfg), "classes": ["REAL", "FAKE"],
                 "input_spec": spec_for_run(cfg, extraction).to_dict()}
        paths.append(save_checkpoint(folder / f"{name}.pt", state))
    return paths


def face_frames(num_frames: int, size: tuple[int, int], seed: int = 0):
    """(H, W, 3) uint8 RGB frames: the astronaut's photo (face about 14 % of the frame's height) moving across a
    panning photograph without a face."""
    h, w = size
    side = round(0.7 * h)
    face = cv2.resize(load_photo("astronaut"), (side, side), interpolation=cv2.INTER_AREA)
    pad = max(8, h // 10)
    back = cv2.resize(load_photo("coffee"), (w + 2 * pad, h + 2 * pad), interpolation=cv2.INTER_LINEAR)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    for t in range(num_frames):
        a = 2 * np.pi * t / max(num_frames, 1) + phase
        frame = back[pad + round(pad * np.sin(a)) :, pad + round(pad * np.cos(a)) :][:h, :w].copy()
        x = round((w - side) / 2 + 0.25 * (w - side) * np.sin(a))
        y = round((h - side) * (0.6 + 0.3 * np.cos(2 * a)))
        frame[y : y + side, x : x + side] = face
        yield frame


def write_face_videos(folder: Path, count: int, frames: int, size: tuple[int, int]) -> list[Path]:
    paths = [folder / f"v{i}.mp4" for i in range(count)]
    for i, path in enumerate(paths):
        write_video(path, face_frames(frames, size, seed=i), FPS, fourcc="mp4v")
    return paths


def faces_like(folder: Path, video: Path, opts: FaceOptions) -> Path:
    """A folder of face clips cut with `opts` (what `--faces-like` reads the options from)."""
    record = cut_faces(video.stem, video, out=folder, opts=opts)
    if not record["crops"]:
        raise SystemExit(f"error: no face clip cut from {video} with {opts}: {record['warnings']}")
    return folder


# -- the run -----------------------------------------------------------------------------------------------------
def run_ensemble_tool(checkpoints: list[Path], videos: Path, out: Path, device: str, like: Path | None
                      ) -> tuple[float, dict]:
    """(wall seconds, the tool's report) of predict_ensemble --faces over `videos`."""
    cmd = [sys.executable, str(ROOT / "tools" / "predict_ensemble.py"), "--faces", "--videos", str(videos),
           "--out", str(out), "--device", device]
    for path in checkpoints:
        cmd += ["--model", str(path)]
    if like is not None:
        cmd += ["--faces-like", str(like)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"error: predict_ensemble exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    report = json.loads(out.with_name(f"{out.stem}_report.json").read_text())
    if report["no_face"]:
        raise SystemExit(f"error: the detector found no face in {report['no_face']}; the numbers would not count it")
    return wall, report


def stage_summary(wall: float, report: dict) -> dict:
    """Per-stage seconds per video (first video, mean of the rest), forward passes named by config, start-up."""
    names = {m["name"]: Path(m["checkpoint"]).stem for m in report["members"]}
    per_video = [{_stage_name(s, names): t for s, t in v.items()} for v in report["seconds"].values()]
    for v in per_video:
        v["other"] = max(0.0, v["total"] - sum(t for s, t in v.items() if s != "total"))
    stages = list(per_video[0])
    steady = per_video[1:] or per_video
    return {"startup_s": wall - sum(v["total"] for v in per_video), "wall_s": wall,
            "load_s": {names[m["name"]]: m["load_seconds"] for m in report["members"]},
            "first_video_s": per_video[0], "steady_videos": len(steady),
            "per_video_s": {s: float(np.mean([v.get(s, 0.0) for v in steady])) for s in stages},
            "videos": per_video}


def _stage_name(stage: str, names: dict) -> str:
    kind, _, member = stage.partition(":")
    return f"forward:{names[member]}" if kind == "forward" else stage


def print_table(res: dict) -> None:
    steady, first = res["per_video_s"], res["first_video_s"]
    total = steady["total"]
    print(f"\n| stage | s/video (mean of {res['steady_videos']}) | share | first video |\n|---|---:|---:|---:|")
    for stage in [s for s in steady if s != "total"] + ["total"]:
        print(f"| {stage} | {steady[stage]:.2f} | {100 * steady[stage] / total:.0f} % | {first.get(stage, 0):.2f} |")
    loads = ", ".join(f"{k.removeprefix('dfdc_')} {v:.2f}" for k, v in res["load_s"].items())
    print(f"\nstart-up {res['startup_s']:.1f} s (tool wall {res['wall_s']:.1f} s less its videos); models built and "
          f"loaded in {sum(res['load_s'].values()):.1f} s ({loads})")
    top = max((s for s in steady if s not in ("total",)), key=steady.get)
    print(f"dominant stage: {top} ({100 * steady[top] / total:.0f} %); load average now {os.getloadavg()[0]:.2f}")


def main(args: argparse.Namespace) -> dict:
    size = tuple(int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        res = {"device": args.device, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "torch": torch.__version__, "args": {k: str(v) for k, v in vars(args).items()},
               "load_before": os.getloadavg()}
        if args.device.startswith("cuda"):
            res["gpu"] = torch.cuda.get_device_name(0)
        tick = time.perf_counter()
        checkpoints = make_checkpoints(work / "models", args.members, args.crop, args.clip_frames)
        videos = write_face_videos(work / "videos", args.videos, args.frames, size)
        like = None
        if (args.face_size, args.min_frames) != (FaceOptions.size, FaceOptions.min_frames):
            opts = FaceOptions(size=args.face_size, min_frames=args.min_frames)
            like = faces_like(work / "faces_like", videos[0], opts)
        print(f"inputs made in {time.perf_counter() - tick:.1f} s: {len(checkpoints)} checkpoints, {len(videos)} "
              f"videos of {args.frames} frames at {args.size}; load {os.getloadavg()[0]:.2f}")
        submission = work / "out" / "submission.csv"
        wall, report = run_ensemble_tool(checkpoints, work / "videos", submission, args.device, like)
        res.update(stage_summary(wall, report))
        res["clips_per_video"] = len(list((work / "out" / "faces").glob("*.avi"))) / args.videos
    res["load_after"] = os.getloadavg()
    print_table(res)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main(parse_args())
