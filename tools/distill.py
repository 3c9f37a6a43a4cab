"""Train an RGB-only student from a frozen teacher (knowledge distillation), then evaluate it on RGB alone.

    python tools/distill.py --config configs/distill_mars_toy.yaml --teacher runs/toy_flow/best.pt --out runs/mars
    python tools/distill.py --config configs/distill_kd_toy.yaml --teacher runs/toy/best.pt --out runs/kd \
        --set distill.temperature=2 --set optim.lr=0.02
    torchrun --nproc_per_node=8 tools/distill.py --config configs/distill_mars_ucf101.yaml --teacher T.pt --out R

The teacher is any checkpoint of tools/train_two_stream.py (flow, RGB or two-stream; distill.teacher_stream picks
what it sees). The student's checkpoints (OUT/last.pt, OUT/best.pt) are ordinary RGB-only checkpoints: evaluate
them with tools/eval.py like any other. --resume continues OUT/last.pt.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without `pip install -e .`

from i3d.distill_train import fit_distill, load_distill_config, load_teacher  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="YAML: the student's run + a distill: section")
    p.add_argument("--teacher", type=Path, required=True, help="checkpoint of the teacher (tools/train_two_stream.py)")
    p.add_argument("--out", type=Path, required=True, help="run folder (last.pt, best.pt, tb/, ...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. optim.lr=0.01 or distill.kd=1.0 (repeatable)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run_cfg, cfg = load_distill_config(args.config, args.set)
    if args.resume and not (args.out / "last.pt").is_file():
        raise SystemExit(f"--resume: {args.out / 'last.pt'} not found; run once without --resume first")
    teacher = load_teacher(args.teacher, cfg, run_cfg.model.num_classes)
    _, history = fit_distill(run_cfg, cfg, teacher, args.out, resume=args.resume, teacher_path=str(args.teacher))
    if history:
        print(json.dumps({"epoch": history[-1]["epoch"], "val": history[-1]["val"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
