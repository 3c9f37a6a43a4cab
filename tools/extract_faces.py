"""Cut face-crop videos out of raw videos (DFDC): one clip per person and 150-frame half, before flow extraction.

    python tools/extract_faces.py --videos data/dfdc_train_part_0 --out runs/dfdc/faces --workers 8
    python tools/extract_faces.py --videos list.txt --out OUT --shard $SLURM_ARRAY_TASK_ID/50   # SLURM array
    python tools/extract_faces.py --videos data/dfdc --out OUT --backend dask --scheduler tcp://HOST:8786

Faces are detected (MTCNN) in every 10th frame, linked into tracks by IoU and cut through one square box per clip
(the union of the track's boxes plus a margin), resized to --size. With a DFDC metadata.json beside the videos, a
FAKE reuses its REAL original's boxes and OUT gets a metadata.json labelling the clips. Reruns skip finished videos.
OUT/report.json has every video's outcome and OUT/index.csv the finished ones; the exit status is 1 if any video
failed and 2, with one line on stderr and before any video is touched, for a bad option or no videos.
"""

import argparse
import sys

from common.cli import run_tool
from common.runner import add_run_arguments, overwrite_option, print_outcome
from common.videos import parse_shard
from faces.extract import extract_faces
from faces.options import FaceOptions

DEFAULTS = FaceOptions()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, "clips (<video_id>_<track>_<segment>.avi), metadata.json")
    p.add_argument("--stride", type=int, default=DEFAULTS.stride, help="detect faces in every N-th frame")
    p.add_argument("--detect-size", type=int, default=DEFAULTS.detect_size, help="longer side to detect at (0: full)")
    p.add_argument("--min-score", type=float, default=DEFAULTS.min_score, help="MTCNN face probability")
    p.add_argument("--min-face", type=int, default=DEFAULTS.min_face, help="smallest face (px at detection size)")
    p.add_argument("--min-iou", type=float, default=DEFAULTS.min_iou, help="IoU linking a detection to a track")
    p.add_argument("--max-missed", type=int, default=DEFAULTS.max_missed, help="sampled frames a track may miss")
    p.add_argument("--margin", type=float, default=DEFAULTS.margin, help="grow the clip box by this, per side")
    p.add_argument("--no-square", action="store_true", help="keep the box's own proportions")
    p.add_argument("--size", type=int, default=DEFAULTS.size, help="clips are SIZE x SIZE (0: the box's size)")
    p.add_argument("--split-frames", type=int, default=DEFAULTS.split_frames, help="segment length (0: whole video)")
    p.add_argument("--min-frames", type=int, default=DEFAULTS.min_frames, help="set shorter clips aside")
    p.add_argument("--no-reuse", action="store_true", help="detect in FAKE videos too instead of reusing boxes")
    p.add_argument("--device", default=DEFAULTS.device, help="cpu or cuda (MTCNN)")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    overwrite = overwrite_option(args.overwrite)
    opts = FaceOptions(stride=args.stride, detect_size=args.detect_size, min_score=args.min_score,
                       min_face=args.min_face, min_iou=args.min_iou, max_missed=args.max_missed, margin=args.margin,
                       square=not args.no_square, size=args.size, split_frames=args.split_frames,
                       min_frames=args.min_frames, reuse=not args.no_reuse, device=args.device,
                       overwrite=overwrite)
    shard = parse_shard(args.shard) if args.shard else None
    records, s = extract_faces(args.videos, args.out, opts, root=args.root, shard=shard, workers=args.workers,
                               backend=args.backend, scheduler=args.scheduler, progress=not args.no_progress)
    print_outcome(records, statuses=("failed", "no_face"))
    print(f"done {s['done']}, skipped {s['skipped']}, no face {s['no_face']}, failed {s['failed']}; {s['crops']} clips "
          f"written, {s['set_aside']} set aside, in {s['seconds']:.1f} s; report {s['report']}")
    return 1 if s["failed"] else 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
