"""The two helpers of `make demo`: does an earlier training run match the recipe, and the RGB / flow / fused table.

    python tools/demo_report.py same-config runs/demo/train/last.pt configs/toy_i3d_two_stream.yaml --set KEY=VALUE
        exit 0 when the checkpoint was trained with exactly that config (then `make demo` resumes it: a no-op for a
        finished run), 1 when it is missing or differs (then `make demo` trains afresh), printing which keys differ
    python tools/demo_report.py table runs/demo/results.json
        prints top-1 / top-5 / mean class accuracy of each stream and of their fusion (tools/eval.py's results.json),
        and how far the fused top-1 is above (or below) the better stream's
"""

import argparse
import json
import sys
from pathlib import Path

from common.cli import run_tool
from i3d.checkpoint import CheckpointError, load_checkpoint
from i3d.config import ConfigError, config_from_dict, config_to_dict, load_config


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    same = sub.add_parser("same-config", help="exit 0 if CHECKPOINT was trained with CONFIG + --set overrides")
    same.add_argument("checkpoint", type=Path)
    same.add_argument("config", type=Path)
    same.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    table = sub.add_parser("table", help="print the accuracy table of a results.json")
    table.add_argument("results", type=Path)
    return p.parse_args(argv)


def config_differences(found: dict, wanted: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts ("a.b: found -> wanted")."""
    out = []
    for key in sorted(set(found) | set(wanted)):
        a, b = found.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def format_table(results: dict) -> str:
    """Rows rgb / flow / fused (those present) of video-level top-1, top-5 and mean class accuracy."""
    head = (f"{results.get('split', '?')} split: {results.get('num_videos', '?')} videos, centre crop, "
            f"{'whole videos' if results.get('num_frames') == 0 else str(results.get('num_frames')) + ' frames'}")
    lines = [head, f"{'stream':<8}{'top-1':>8}{'top-5':>8}{'mean class':>12}"]
    for stream in ("rgb", "flow", "fused"):
        if stream in results:
            m = results[stream]
            lines.append(f"{stream:<8}{m['top1']:>8.3f}{m['top5']:>8.3f}{m['mean_class_acc']:>12.3f}")
    if all(stream in results for stream in ("rgb", "flow", "fused")):  # what the demo is for: does fusion help?
        best = max(("rgb", "flow"), key=lambda stream: results[stream]["top1"])
        gain = results["fused"]["top1"] - results[best]["top1"]
        lines.append(f"fused top-1 {gain:+.3f} over the best single stream ({best})")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.command == "table":
        if not args.results.is_file():
            raise FileNotFoundError(f"{args.results} not found; run tools/eval.py --out {args.results} first")
        print(format_table(json.loads(args.results.read_text())))
        return 0
    if not args.checkpoint.is_file():
        print(f"{args.checkpoint}: no earlier run; training from scratch")
        return 1
    try:
        wanted = config_to_dict(load_config(args.config, args.overrides))
        ckpt = load_checkpoint(args.checkpoint)
        found = config_to_dict(config_from_dict(ckpt["config"]))  # keys added since then: their defaults
    except (ConfigError, CheckpointError) as e:
        print(f"{args.checkpoint}: not reusable ({e}); training from scratch")
        return 1
    diff = config_differences(found, wanted)
    if diff:
        print(f"{args.checkpoint} was trained with another config ({'; '.join(diff)}); training from scratch")
        return 1
    print(f"{args.checkpoint}: same config; resuming it (nothing to do if it finished)")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
