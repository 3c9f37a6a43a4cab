"""I3D forward and forward+backward throughput (clips/s) in fp32, channels_last_3d, bf16 autocast and torch.compile.

    python benchmarks/bench_model.py                                   # CPU, tiny defaults (B=1, 16x112x112)
    python benchmarks/bench_model.py --device cuda --batch 8 --frames 64 --size 224
    python benchmarks/bench_model.py --variants fp32 bf16 --no-backward

Every variant runs `--warmup` untimed steps (compilation, cuDNN autotuning) then `--steps` timed ones; CUDA
timings synchronise before reading the clock. Ratios are against fp32 measured in the same run. `uptime` is
printed because the machine may be shared.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from i3d.models.inception import InceptionI3d  # noqa: E402

VARIANTS = ("fp32", "channels_last", "bf16", "compile")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--in-channels", type=int, default=3, help="3: RGB stream, 2: flow stream")
    p.add_argument("--classes", type=int, default=400)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--no-backward", action="store_true", help="only time the forward pass")
    return p.parse_args(argv)


def build(variant: str, args: argparse.Namespace):
    """(model, input, autocast dtype or None) for one variant."""
    model = InceptionI3d(num_classes=args.classes, in_channels=args.in_channels).to(args.device)
    x = torch.randn(args.batch, args.in_channels, args.frames, args.size, args.size, device=args.device)
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    if variant == "compile":
        model = torch.compile(model)
    return model, x, torch.bfloat16 if variant == "bf16" else None


def time_steps(model, x, dtype, args: argparse.Namespace, backward: bool) -> float:
    """Seconds per step (mean over args.steps after args.warmup)."""
    device_type = torch.device(args.device).type
    model.train(backward)

    def step():
        with torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            if backward:
                model(x).float().logsumexp(dim=1).mean().backward()
            else:
                with torch.no_grad():
                    model(x)

    for _ in range(args.warmup):
        step()
    if device_type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device_type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / args.steps


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    cpu = f"cpu ({torch.get_num_threads()} threads)"
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu
    print(f"uptime before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"InceptionI3d in_channels={args.in_channels}, input {args.batch}x{args.in_channels}x{args.frames}x"
          f"{args.size}x{args.size}, {device}, torch {torch.__version__}")  # fmt: skip
    print("| variant | forward clips/s | x fp32 | forward+backward clips/s | x fp32 |")
    print("|---|---|---|---|---|", flush=True)
    base = None
    for variant in args.variants:  # one row at a time, so a slow torch.compile cannot lose the others
        try:
            model, x, dtype = build(variant, args)
            fwd = time_steps(model, x, dtype, args, backward=False)
            bwd = None if args.no_backward else time_steps(model, x, dtype, args, backward=True)
        except Exception as exc:  # e.g. torch.compile without a compiler, bf16 unsupported: report, go on
            print(f"| {variant} | failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} |")
            continue
        base = (fwd, bwd) if variant == "fp32" else base
        f_ratio = f"{base[0] / fwd:.2f}" if base else ""
        b_ratio = f"{base[1] / bwd:.2f}" if base and bwd and base[1] else ""
        bwd_text = f"{args.batch / bwd:.2f}" if bwd else ""
        print(f"| {variant} | {args.batch / fwd:.2f} | {f_ratio} | {bwd_text} | {b_ratio} |", flush=True)
    print(f"uptime after:  {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main(parse_args())
