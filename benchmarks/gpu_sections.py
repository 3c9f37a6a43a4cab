"""The sections of `benchmarks/gpu_check.py` (what each measures: its docstring), one function each.

Every section is `section(args, size) -> dict`: `args` are gpu_check's options (device, tiny, out, videos, and
deadline_at, the clock time after which no larger TV-L1 batch is tried), `size` its `sizes(tiny)`. A section measures
and returns plain numbers; gpu_check times it, records it in the JSON and prints the summary table.
"""

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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
    seconds = bench_model.seconds_per_call(lambda: b.copy_(a), device, steps=3 if args.tiny else 10, warmup=2)
    out["copy_gb_per_s"] = 2 * a.numel() * 4 / seconds / 1e9  # bytes read + bytes written
    return out


def run_tests(args, size) -> dict:
    """`pytest -q tests/gpu`: the tests that need CUDA (they skip, saying so, without it)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    log = Path(args.out).with_name("pytest_gpu.txt")  # the whole output beside the JSON: failures need it
    log.write_text(proc.stdout + proc.stderr)
    tail = proc.stdout.strip().splitlines()[-1:] or [proc.stderr.strip()[-300:]]
    print(proc.stdout[-3000:] if proc.returncode else "", end="")
    return {"returncode": proc.returncode, "summary": tail[0], "seconds": time.perf_counter() - start, "log": str(log)}


def load_gray_pairs(args, size) -> dict:
    """{video name: (prev, next)} uint8 grayscale pairs, bench_flow.py's way (short side, centre crop)."""
    import bench_flow

    if args.tiny:  # a textured square moving 1 px right and down per frame: no video file needed
        rng = np.random.default_rng(0)
        base = (rng.random((size["short_side"] + 8, size["crop_width"] + 8)) * 255).astype(np.uint8)
        frames = np.stack([base[4 - t : 4 - t + size["short_side"], 4 - t : 4 - t + size["crop_width"]]
                           for t in range(size["pairs"] + 1)])
        return {"synthetic": (frames[:-1], frames[1:])}
    return {Path(v).name: bench_flow.load_pairs(v, size["pairs"], size["short_side"], size["crop_width"])
            for v in args.videos}


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
    data = load_gray_pairs(args, size)
    k = size["epe_pairs"]
    jobs = [(name, i, seed) for name in data for i in range(k) for seed in (None, i)]
    spawn = multiprocessing.get_context("spawn")  # never fork a process that holds a CUDA context
    with ProcessPoolExecutor(min(len(jobs), os.cpu_count() or 1), mp_context=spawn) as pool:  # OpenCV on the CPU cores
        futures = {job: pool.submit(_opencv_flow, data[job[0]][0][job[1]], data[job[0]][1][job[1]], params, job[2])
                   for job in jobs}
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
                                "noise_floor_epe": out["videos"][name]["noise_floor_epe"]})
            print(f"  tvl1 {name} batch {batch}: {n / seconds:.1f} pairs/s, EPE {epe:.3f}", flush=True)
    return out


def model(args, size, variants=("fp32", "channels_last", "bf16", "bf16_channels_last")) -> dict:
    """bench_model.run_variants at the clip size: clips/s, GFLOP/s, % of the measured peak."""
    frames, crop = size["clip"]
    margs = bench_model.parse_args(["--device", args.device, "--batch", str(size["batch"]), "--frames", str(frames),
                                    "--size", str(crop), "--steps", "1" if args.tiny else "5", "--warmup",
                                    "0" if args.tiny else "2", "--variants", *variants])
    torch.backends.cudnn.benchmark = True
    result = bench_model.run_variants(margs)
    print(bench_model.variants_table(result), flush=True)
    return result


def _train_setup(args, size, amp: str, channels_last: bool = False):
    """(cfg, model, optimizer, scheduler, scaler, batch) for one step of the Kinetics recipe's two-stream I3D, the
    model in the layout `i3d.train.fit` gives it (channels_last_3d on CUDA with train.channels_last)."""
    from i3d.build import build_model_from_config, build_optimizer
    from i3d.config import load_config
    from i3d.train import memory_format

    frames, crop = size["clip"]
    cfg = load_config(ROOT / "configs" / "kinetics400_i3d_two_stream.yaml",
                      [f"train.amp={amp}", f"train.device={torch.device(args.device).type}", "train.progress=false",
                       f"train.channels_last={str(channels_last).lower()}",
                       f"data.num_frames={frames}", f"data.crop_size={crop}"])
    torch.manual_seed(0)
    device = torch.device(args.device)
    net = build_model_from_config(cfg).to(device, memory_format=memory_format(cfg, device))
    optimizer, scheduler = build_optimizer(cfg, net, steps_per_epoch=10)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16" and torch.device(args.device).type == "cuda")
    g = torch.Generator().manual_seed(1)
    b = size["train_batch"]
    batch = {"rgb": torch.randn(b, 3, frames, crop, crop, generator=g), "flow": torch.randn(b, 2, frames, crop, crop,
             generator=g), "label": torch.randint(0, cfg.model.num_classes, (b,), generator=g)}
    return cfg, net, optimizer, scheduler, scaler, batch


def train_step(args, size) -> dict:
    """One real `train_one_epoch` step per AMP mode and layout (after a warm-up step, except in a tiny run, which
    checks the code path only): seconds, clips/s, finite loss.

    Rows: fp32 in the default layout, then fp32, bf16 and fp16 in channels_last_3d (train.channels_last, on by
    default; on the CPU it changes nothing)."""
    from i3d.train import train_one_epoch

    device = torch.device(args.device)
    out = {}
    rows = {"fp32": ("none", False), "fp32_channels_last": ("none", True), "bf16_channels_last": ("bf16", True),
            "fp16_channels_last": ("fp16", True)}
    for row, (amp, channels_last) in rows.items():
        cfg, net, optimizer, scheduler, scaler, batch = _train_setup(args, size, amp, channels_last)
        before = next(net.parameters()).detach().clone()
        warmups = 0 if args.tiny else 1
        for step in range(warmups):
            train_one_epoch(net, [batch], optimizer, scheduler, scaler, cfg, epoch=0, step=step, device=device)
        bench_model.sync(device)
        start = time.perf_counter()
        stats = train_one_epoch(net, [batch], optimizer, scheduler, scaler, cfg, epoch=0, step=warmups, device=device)
        bench_model.sync(device)
        seconds = time.perf_counter() - start
        moved = float((next(net.parameters()).detach() - before).abs().max())
        loss = float(sum(v for k, v in stats.items() if k.startswith("loss")))
        out[row] = {"seconds": seconds, "clips_per_s": size["train_batch"] / seconds, "loss": loss,
                    "finite": bool(np.isfinite(loss)), "param_moved": moved}
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
                              LOCAL_RANK="0")
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
    from i3d.data.transforms import expand_compact, flow_code_tables, rgb_table

    device = torch.device(args.device)
    frames, crop = size["clip"]
    b = size["batch"]
    g = torch.Generator().manual_seed(2)
    batch = {"rgb": torch.randint(0, 256, (b, 3, frames, crop, crop), dtype=torch.uint8, generator=g),
             "flow": torch.randint(1, 256, (b, 2, frames, crop, crop), dtype=torch.uint8, generator=g),
             "rgb_table": torch.from_numpy(rgb_table("i3d").T.copy()).expand(b, 3, 256).clone(),
             "flow_table": torch.from_numpy(flow_code_tables(20.0, 20.0, True)).expand(b, 2, 256).clone()}
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
    compact_s = bench_model.seconds_per_call(compact_path, device, steps, warmup=2)
    float_s = bench_model.seconds_per_call(float_path, device, steps, warmup=2)
    bytes_compact = sum(v.numel() * v.element_size() for v in batch.values())
    bytes_float = sum(v.numel() * v.element_size() for v in expected.values())
    return {"max_abs_diff": diff, "equal": diff == 0.0, "compact_ms": 1e3 * compact_s, "float32_copy_ms": 1e3 * float_s,
            "bytes_compact": bytes_compact, "bytes_float32": bytes_float}


def compile_model(args, size) -> dict:
    """`model` for fp32 and torch.compile alone and with bf16 + channels_last (fp32 again: ratios within one run)."""
    if not size["compile"]:
        return {"skipped": "not in a tiny run (compiling I3D on a CPU takes minutes)"}
    return model(args, size, variants=("fp32", "compile", "compile_bf16_channels_last"))


# the order they run in: cheap and certain first; torch.compile (minutes of compilation on a GPU) last
RUNNERS = {
    "ceilings": ceilings,
    "tests": run_tests,
    "model": model,
    "train_step": train_step,
    "ddp": ddp,
    "compact": compact,
    "tvl1": tvl1,
    "compile": compile_model,
}
