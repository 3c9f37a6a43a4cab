r"""Train an RGB-only student from a frozen teacher (knowledge distillation), then evaluate it on RGB alone.

    python tools/distill.py --config configs/distill_mars_toy.yaml --teacher runs/toy_flow/best.pt --out runs/mars
    python tools/distill.py --config configs/distill_kd_toy.yaml --teacher runs/toy/best.pt --out runs/kd \
        --set distill.temperature=2 --set optim.lr=0.02
    torchrun --nproc_per_node=8 tools/distill.py --config configs/distill_mars_ucf101.yaml --teacher T.pt --out R
    python tools/distill.py --resume runs/mars --set train.epochs=20   # continue, as tools/train_two_stream.py

The teacher is any checkpoint of tools/train_two_stream.py (flow, RGB or two-stream; distill.teacher_stream picks
what it sees). The student's checkpoints (OUT/last.pt, OUT/best.pt) are ordinary RGB-only checkpoints: evaluate
them with tools/eval.py like any other.

--resume RUN_DIR continues RUN_DIR/last.pt with the settings saved in it (the student's config, the distill:
section and the teacher path; --set goes on top, --teacher replaces a teacher that has moved). The older form,
--config C --teacher T --out RUN_DIR --resume (no folder), still works and reads the settings from C instead.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import torch.distributed as dist

from common.cli import run_tool
from i3d.checkpoint import CheckpointError
from i3d.distill import DistillError
from i3d.distill_train import fit_distill, load_distill_config, load_distill_run, load_teacher


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="YAML: the student's run + a distill: section (new runs)")
    p.add_argument("--teacher", type=Path, help="checkpoint of the teacher (tools/train_two_stream.py)")
    p.add_argument("--out", type=Path, help="run folder (last.pt, best.pt, tb/, ...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. optim.lr=0.01 or distill.kd=1.0 (repeatable)")
    p.add_argument("--resume", nargs="?", const=True, type=Path, metavar="RUN_DIR",
                   help="continue RUN_DIR/last.pt with its saved settings (alone: continue --out)")
    args = p.parse_args(argv)
    folder = args.resume if isinstance(args.resume, Path) else None
    if folder and args.out and args.out != folder:
        p.error(f"--resume {folder} writes into that folder; drop --out {args.out}")
    args.out = folder or args.out
    if not args.out or not (folder or args.config) or (args.config and not args.teacher):
        p.error("give --config CONFIG --teacher CKPT --out RUN_DIR for a new run, or --resume RUN_DIR")
    return args


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.resume and not (args.out / "last.pt").is_file():
        raise CheckpointError(f"--resume: {args.out / 'last.pt'} not found; run once without --resume first")
    if not args.resume and (args.out / "last.pt").exists():  # a new run must not overwrite an earlier one
        raise FileExistsError(f"{args.out} already holds a run (last.pt): continue it with --resume {args.out}, "
                              "or give a new --out")
    if args.config:
        run_cfg, cfg = load_distill_config(args.config, args.set)
        teacher_path = args.teacher
    else:  # --resume RUN_DIR: the settings the run was started with
        run_cfg, cfg, saved_teacher = load_distill_run(args.out, args.set)
        if not (args.teacher or saved_teacher):
            raise DistillError(f"{args.out / 'last.pt'} records no teacher path; pass --teacher CKPT")
        teacher_path = args.teacher or Path(saved_teacher)
    teacher, teacher_spec = load_teacher(teacher_path, cfg, run_cfg.model.num_classes)
    try:
        _, history = fit_distill(run_cfg, cfg, teacher, args.out, resume=bool(args.resume),
                                 teacher_path=str(teacher_path), teacher_spec=teacher_spec)
    finally:  # under torchrun: a process group left alive can abort the exit ("terminate called ...")
        if dist.is_initialized():
            dist.destroy_process_group()
    if history:
        print(json.dumps({"epoch": history[-1]["epoch"], "val": history[-1]["val"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
