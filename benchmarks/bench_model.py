"""I3D throughput (clips/s) and achieved GFLOP/s against a peak measured in the same run.

    python benchmarks/bench_model.py                                   # CPU, B=1, 16x112x112, every variant
    python benchmarks/bench_model.py --device cuda --batch 8 --frames 64 --size 224
    python benchmarks/bench_model.py --variants fp32 bf16 --no-backward

Variants: fp32, channels_last (channels_last_3d memory format), bf16 (autocast), bf16_channels_last, compile
(torch.compile of the fp32 model) and compile_bf16_channels_last (all three). Every variant runs `--warmup` untimed
steps (compilation, cuDNN autotuning) then `--steps` timed ones; CUDA timings synchronise before reading the clock.

FLOPs are counted once with `torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts 2), forward and
forward+backward separately, so "GFLOP/s" is the useful arithmetic the network asked for, whatever the variant
computed. The peak is the faster of a large matmul and a large I3D-like conv3d (3x3x3, 192 channels) timed in the
same process, per arithmetic type: fp32 (on CUDA cuDNN and matmuls may use TF32, as PyTorch's defaults for
convolutions do), bf16. `uptime` is printed because the machine may be shared.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from i3d.models.inception import InceptionI3d  # noqa: E402

VARIANTS = ("fp32", "channels_last", "bf16", "bf16_channels_last", "compile", "compile_bf16_channels_last")


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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn, device: torch.device, steps: int, warmup: int) -> float:
    """Seconds per call of `fn` (mean over `steps` after `warmup` untimed calls)."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def measure_peak(device: torch.device, dtype: torch.dtype, small: bool = False) -> dict:
    """Achieved GFLOP/s of a large matmul and a large conv3d in `dtype` on `device`; "peak" is the faster.

    Sizes: CUDA matmul 8192^3, conv3d 8x192x16x56x56 -> 192, 3x3x3; CPU 2048^3 and 1x192x16x28x28 (each well over
    the caches, a few hundred ms per call); `small` (tests): 256^3 and 1x32x4x14x14, which measure nothing useful.
    """
    if small:
        n, shape, channels, steps = 256, (1, 32, 4, 14, 14), 32, 2
    elif device.type == "cuda":
        n, shape, channels, steps = 8192, (8, 192, 16, 56, 56), 192, 10
    else:
        n, shape, channels, steps = 2048, (1, 192, 16, 28, 28), 192, 3
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    matmul_s = seconds_per_call(lambda: a @ b, device, steps=steps, warmup=2)
    x = torch.randn(*shape, device=device, dtype=dtype)
    conv = torch.nn.Conv3d(channels, channels, 3, padding=1, bias=False).to(device, dtype)
    with torch.no_grad():
        conv_s = seconds_per_call(lambda: conv(x), device, steps=steps, warmup=2)
    conv_flops = 2 * x.numel() * channels * 27  # same padding: output positions = input positions
    out = {"matmul_gflops": 2 * n**3 / matmul_s / 1e9, "conv3d_gflops": conv_flops / conv_s / 1e9}
    out["peak_gflops"] = max(out.values())
    return out


def count_flops(model, x, backward: bool) -> int:
    """FLOPs of one forward (and backward) pass of `model` on `x` (a multiply-add counts 2)."""
    counter = FlopCounterMode(display=False)
    with counter:
        if backward:
            model(x).float().logsumexp(dim=1).mean().backward()
        else:
            with torch.no_grad():
                model(x)
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def build(variant: str, args: argparse.Namespace):
    """(model, input, autocast dtype or None) for one variant."""
    model = InceptionI3d(num_classes=args.classes, in_channels=args.in_channels).to(args.device)
    x = torch.randn(args.batch, args.in_channels, args.frames, args.size, args.size, device=args.device)
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    if variant.startswith("compile"):
        model = torch.compile(model)
    return model, x, torch.bfloat16 if "bf16" in variant else None


def time_steps(model, x, dtype, args: argparse.Namespace, backward: bool) -> float:
    """Seconds per step (mean over args.steps after args.warmup)."""
    device = torch.device(args.device)
    model.train(backward)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            if backward:
                model(x).float().logsumexp(dim=1).mean().backward()
            else:
                with torch.no_grad():
                    model(x)

    return seconds_per_call(step, device, args.steps, args.warmup)


def run_variants(args: argparse.Namespace) -> dict:
    """{"flops": ..., "peaks": ..., "rows": [...]}: every variant's clips/s, GFLOP/s and % of the measured peak.

    A variant that fails (torch.compile without a compiler, bf16 unsupported) is reported and the others go on.
    """
    device = torch.device(args.device)
    model, x, _ = build("fp32", args)
    flops = {"forward": count_flops(model, x, backward=False)}
    if not args.no_backward:
        flops["forward_backward"] = count_flops(model, x, backward=True)
    del model, x
    small = args.frames * args.size * args.size <= 8 * 64 * 64  # tiny runs (tests) time tiny peaks too
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        try:
            peaks[name] = measure_peak(device, dtype, small=small)
        except Exception as exc:  # bf16 unsupported on this CPU, ...
            peaks[name] = {"error": f"{type(exc).__name__}: {exc}"}
    rows, base = [], None
    for variant in args.variants:  # one row at a time, so a slow torch.compile cannot lose the others
        row = {"variant": variant}
        try:
            model, x, dtype = build(variant, args)
            row["forward_s"] = time_steps(model, x, dtype, args, backward=False)
            if not args.no_backward:
                row["forward_backward_s"] = time_steps(model, x, dtype, args, backward=True)
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            rows.append(row)
            continue
        peak = peaks["bf16" if "bf16" in variant else "fp32"].get("peak_gflops")
        for kind in ("forward", "forward_backward"):
            if f"{kind}_s" in row:
                seconds = row[f"{kind}_s"]
                row[f"{kind}_clips_per_s"] = args.batch / seconds
                row[f"{kind}_gflops"] = flops[kind] / seconds / 1e9
                row[f"{kind}_pct_peak"] = 100 * row[f"{kind}_gflops"] / peak if peak else None
                if base and f"{kind}_s" in base:
                    row[f"{kind}_x_fp32"] = base[f"{kind}_s"] / seconds
        base = row if variant == "fp32" else base
        rows.append(row)
    return {"flops": flops, "peaks": peaks, "rows": rows}


def variants_table(result: dict) -> str:
    """Markdown table of `run_variants`' rows."""

    def cell(row, key, fmt):
        value = row.get(key)
        return "" if value is None else format(value, fmt)

    lines = ["| variant | fwd clips/s | fwd GFLOP/s | % peak | x fp32 | fwd+bwd clips/s | fwd+bwd GFLOP/s | % peak "
             "| x fp32 |", "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"| {row['variant']} | failed: {row['error']} |")
            continue
        cells = [row["variant"]]
        for kind in ("forward", "forward_backward"):
            cells += [cell(row, f"{kind}_clips_per_s", ".2f"), cell(row, f"{kind}_gflops", ".1f"),
                      cell(row, f"{kind}_pct_peak", ".1f"), cell(row, f"{kind}_x_fp32", ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    peaks = ", ".join(f"{k} {v['peak_gflops']:.1f} GFLOP/s (matmul {v['matmul_gflops']:.1f}, conv3d "
                      f"{v['conv3d_gflops']:.1f})" if "peak_gflops" in v else f"{k} {v['error']}"
                      for k, v in result["peaks"].items())
    gflop = ", ".join(f"{k} {v / 1e9:.1f} GFLOP" for k, v in result["flops"].items())
    return "\n".join(lines + [f"measured peaks: {peaks}", f"work per batch: {gflop}"])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    cpu = f"cpu ({torch.get_num_threads()} threads)"
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu
    print(f"uptime before: {uptime()}")
    print(f"InceptionI3d in_channels={args.in_channels}, input {args.batch}x{args.in_channels}x{args.frames}x"
          f"{args.size}x{args.size}, {device}, torch {torch.__version__}", flush=True)
    print(variants_table(run_variants(args)))
    print(f"uptime after:  {uptime()}")


if __name__ == "__main__":
    main(parse_args())
