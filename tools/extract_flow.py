"""Extract RGB frames and TV-L1 optical flow of many videos into one HDF5 store per video (OUT/<video_id>.h5).

    python tools/extract_flow.py --videos data/UCF-101 --out runs/ucf101_flow --workers 8
    python tools/extract_flow.py --videos list.txt --out OUT --shard $SLURM_ARRAY_TASK_ID/50   # SLURM array
    python tools/extract_flow.py --videos 'clips/**/*.mp4' --out OUT --backend dask --scheduler tcp://HOST:8786

Reruns skip finished stores (--verify reads them all first and redoes the damaged ones). OUT/report.json and
OUT/index.csv are updated as each video finishes. The exit status is 1 if any video failed (see OUT/report.json for
why) and 2, with one line `error: ...` on stderr and before any video is touched, for a bad option or no videos
(`--debug` shows the traceback instead).
"""

import argparse
import dataclasses
import sys

from common.cli import run_tool
from common.runner import add_run_arguments, overwrite_option, print_outcome
from common.videos import parse_shard
from flow.extract import ExtractOptions, extract_all
from flow.store_writer import JPEG_QUALITY
from flow.tvl1 import TVL1Params


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, "stores (<video_id>.h5)")
    p.add_argument("--verify", action="store_true", help="read every finished store fully; redo those that fail")
    p.add_argument("--fps", type=float, default=25.0, help="output frame rate; 0 keeps the native rate")
    p.add_argument("--short-side", type=int, default=256, help="resize the short side to this (0: native size)")
    p.add_argument("--max-frames", type=int, help="only the first N frames of each video (quick looks)")
    p.add_argument("--convention", choices=("backward", "forward"), default="backward",
                   help="backward: flow[t] = t-1 -> t, flow[0] = 0; forward (DeepMind): t -> t+1, last 0")
    p.add_argument("--engine", choices=("opencv", "numba", "torch"), default="opencv", help="TV-L1 implementation")
    p.add_argument("--bound", type=float, default=ExtractOptions.bound,
                   help="flow is clipped to +-bound pixels before 8-bit storage (and divided by it as model input)")
    p.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY)
    p.add_argument("--batch", type=int, default=ExtractOptions.batch, help="frame pairs per engine call")
    p.add_argument("--prefetch", type=int, default=ExtractOptions.prefetch,
                   help="batches decoded ahead while the engine works (0: off)")
    tvl1 = p.add_argument_group("TV-L1 parameters (OpenCV's defaults)")
    for f in dataclasses.fields(TVL1Params):
        flag = "--" + f.name.rstrip("_").replace("_", "-")
        if f.type is bool:
            tvl1.add_argument(flag, dest=f.name, action="store_true")
        else:
            tvl1.add_argument(flag, dest=f.name, type=f.type, default=f.default, help=f"default {f.default}")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    # Every option is checked before any video (ExtractOptions, parse_shard, extract_all's check_run): a ValueError
    # of one line, which run_tool prints as `error: ...` with exit status 2.
    overwrite = overwrite_option(args.overwrite)
    params = TVL1Params(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TVL1Params)})
    opts = ExtractOptions(fps=args.fps, short_side=args.short_side, max_frames=args.max_frames,
                          convention=args.convention, engine=args.engine, tvl1=params, bound=args.bound,
                          jpeg_quality=args.jpeg_quality, batch=args.batch, prefetch=args.prefetch,
                          overwrite=overwrite, verify=args.verify)
    shard = parse_shard(args.shard) if args.shard else None
    records, s = extract_all(args.videos, args.out, opts, root=args.root, shard=shard, workers=args.workers,
                             backend=args.backend, scheduler=args.scheduler, progress=not args.no_progress)
    print_outcome(records)
    print(f"done {s['done']}, skipped {s['skipped']}, failed {s['failed']}, flagged {s['flagged']}; "
          f"{s['frames']} frames in {s['seconds']:.1f} s ({s['frames_per_second']:.1f} frames/s); "
          f"report {s['report']}, index {s['index']}")
    return 1 if s["failed"] else 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
