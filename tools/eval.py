"""Centre-crop evaluation of a checkpoint: per-stream and fused top-1/top-5 and mean class accuracy, clip and video.

    python tools/eval.py --center-crop --checkpoint runs/ucf101/best.pt --out runs/ucf101/eval/results.json
    python tools/eval.py --center-crop --checkpoint CKPT --split test --num-frames 0 --fusion-weights 1 1.5 --out R.json

Writes results.json ({"rgb": {"top1", "top5", "mean_class_acc", ..., "clip": {...}}, "flow": ..., "fused": ...};
for a binary head (model.num_classes 1, e.g. DFDC) {"log_loss", "auc", "accuracy", ...} instead),
results_confusion.png (fused, video level) and results_predictions.npz (every clip's per-stream logits, to re-fuse
offline with i3d.evaluate.load_predictions). The dataset and stores come from the checkpoint's config, the input
(crop, clips, normalisation, flow bound) from its input spec; stores extracted otherwise are refused.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from common.cli import run_tool
from i3d import evaluate as ev
from i3d.checkpoint import model_from_checkpoint
from i3d.config import apply_overrides
from i3d.loaders import build_eval_loader, build_part_dataset


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="last.pt / best.pt of tools/train_two_stream.py")
    p.add_argument("--center-crop", action="store_true", default=True, help="centre crop (the only mode; default)")
    p.add_argument("--split", help="part of the index to evaluate (default: the run's data.val_subset)")
    p.add_argument("--index", help="another index file/folder (default: the run's data.val_index or data.index)")
    p.add_argument("--store-root", help="folder of the stores (default: the run's data.store_root)")
    p.add_argument("--num-frames", type=int, help="frames per clip; 0 = whole videos (default: the spec's)")
    p.add_argument("--num-clips", type=int, help="evenly spaced clips per video (default: the spec's)")
    p.add_argument("--fusion-weights", type=float, nargs=2, metavar=("RGB", "FLOW"), default=(1.0, 1.0))
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int, help="DataLoader workers (default: data.num_workers)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="data: override of the run's config, e.g. --set data.skip_missing=true")
    p.add_argument("--out", type=Path, required=True, help="results.json; the PNG and .npz go beside it")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, spec, classes, cfg, ckpt = model_from_checkpoint(args.checkpoint, device)
    pairs = {"data.val_subset": args.split, "data.val_index": args.index, "data.store_root": args.store_root,
             "data.eval_num_frames": args.num_frames, "data.eval_num_clips": args.num_clips,
             "train.batch_size": args.batch_size, "data.num_workers": args.workers}
    cfg = apply_overrides(cfg, [f"{k}={v}" for k, v in pairs.items() if v is not None] + args.overrides)
    spec = dataclasses.replace(spec, eval_num_frames=cfg.data.eval_num_frames, eval_num_clips=cfg.data.eval_num_clips)
    dataset, classes, _ = build_part_dataset(cfg, train=False, classes=ckpt.get("classes"), spec=spec)
    loader = build_eval_loader(cfg, dataset, pin_memory=device.type == "cuda")
    preds = ev.predict_clips(model, loader, device)
    weights = dict(zip(("rgb", "flow"), args.fusion_weights, strict=True))
    extra = {"checkpoint": str(args.checkpoint), "epoch": ckpt["epoch"], "split": cfg.data.val_subset,
             "center_crop": True, "num_frames": spec.eval_num_frames, "clips_per_video": spec.eval_num_clips,
             "input_spec": spec.to_dict()}
    results = ev.write_report(args.out, preds, weights, classes, extra)
    keys = ("log_loss", "auc", "accuracy") if ev.is_binary(preds.logits) else ("top1", "top5")
    print(json.dumps({s: {k: round(results[s][k], 4) for k in keys} for s in (*model.streams, "fused")}))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
