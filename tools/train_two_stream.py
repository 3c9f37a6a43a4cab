r"""Train two-stream I3D (RGB + TV-L1 flow) on HDF5 stores written by tools/extract_flow.py.

    python tools/train_two_stream.py --config configs/ucf101_i3d_two_stream.yaml --out runs/ucf101 \
        --set data.store_root=runs/ucf101/h5 --set data.index=data/ucfTrainTestlist
    python tools/train_two_stream.py --config configs/ucf101_i3d_two_stream.yaml --out runs/ucf101_rgb --streams rgb
    torchrun --nproc_per_node 8 tools/train_two_stream.py --config configs/kinetics400_i3d_two_stream.yaml \
        --out runs/k400
    python tools/train_two_stream.py --resume runs/ucf101            # continue exactly where it stopped

The run folder gets config.yaml (the resolved config), last.pt (every epoch), best.pt (best fused val top-1; the
lowest log loss for a binary head) and tb/ (TensorBoard: tensorboard --logdir RUN_DIR/tb).
"""

import argparse
import logging
import sys
from pathlib import Path

import torch.distributed as dist

from common.cli import run_tool
from i3d.checkpoint import config_of_checkpoint, load_checkpoint
from i3d.config import apply_overrides, load_config, validate
from i3d.train import NonFiniteLossError, fit


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="YAML file in configs/ (differences from i3d/config.py's defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, repeatable: --set optim.lr=0.01 --set train.epochs=10")
    p.add_argument("--out", type=Path, help="run folder (created)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue RUN_DIR from its last.pt")
    p.add_argument("--streams", help="rgb, flow or rgb,flow (same as --set model.streams=...)")
    args = p.parse_args(argv)
    if bool(args.resume) == bool(args.config) or (args.config and not args.out):
        p.error("give --config CONFIG --out RUN_DIR for a new run, or --resume RUN_DIR (with optional --set)")
    if args.resume and args.out and args.out != args.resume:
        p.error(f"--resume {args.resume} writes into that folder; drop --out {args.out}")
    return args


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = args.overrides + ([f"model.streams={args.streams}"] if args.streams else [])
    if args.resume:  # the run's own config; --set may change e.g. train.epochs to train longer
        cfg = validate(apply_overrides(config_of_checkpoint(load_checkpoint(args.resume / "last.pt")), overrides))
    else:
        if (args.out / "last.pt").exists():  # a new run must not overwrite a finished or interrupted one
            raise FileExistsError(f"{args.out} already holds a run (last.pt): continue it with --resume {args.out}, "
                                  "or give a new --out")
        cfg = load_config(args.config, overrides)
    out = args.resume or args.out
    try:
        _, history = fit(cfg, out, resume=bool(args.resume))
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if history and history[-1]["val"]:
        key = "log_loss" if "log_loss" in history[-1]["val"]["fused"] else "top1"  # a binary head: DFDC's metric
        print(key, {s: round(m[key], 4) for s, m in history[-1]["val"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
