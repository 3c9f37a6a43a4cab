"""Look at a store: its RGB frames beside their flow in the colour-wheel code, and how fast the flow is.

    python tools/show_store.py runs/demo/h5/MoveRight/v_MoveRight_g01_c01.h5 --out store.png
    python tools/show_store.py runs/ucf101/h5/v_X.h5 --frames 40:56 --out strip.png
    python tools/show_store.py runs/ucf101/h5/v_X.h5 --frames 0:100 --out clip.gif     # or clip.mp4

A .png is a strip: the frames in columns, RGB over flow, with the colour wheel's key (hue = direction, x right and y
down; the rim = the store's bound, read from the store; dimmed = faster than it). A .gif or .mp4 shows one frame
at a time. By default a strip shows 8 frames spread over the video and an animation the first 250. Each shown
frame's flow statistics go to stdout: mean and 99th-percentile speed (pixels per frame) and the share of pixels at
the bound (clipped by the extraction). A store of an older layout is refused with the command that converts it.
"""

import argparse
import sys
from pathlib import Path

from common.cli import run_tool
from common.pictures import PICTURES, save_picture
from flow.preview import ANIMATIONS, save_animation, stats_table, store_preview


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", type=Path, help="a store of tools/extract_flow.py (<video_id>.h5)")
    p.add_argument("--frames", metavar="A:B[:STEP]", help="frames to show, Python slice rules (or one index K)")
    p.add_argument("--out", type=Path, required=True, help=".png strip, or .gif / .mp4 animation")
    p.add_argument("--height", type=int, default=128, help="rows of each shown frame (default 128)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second of an animation")
    args = p.parse_args(argv)
    if args.out.suffix.lower() not in (*PICTURES, *ANIMATIONS):
        p.error(f"--out {args.out}: end it in {', '.join((*PICTURES, *ANIMATIONS))}")
    if args.height < 8 or args.fps <= 0:
        p.error(f"--height {args.height} must be >= 8 and --fps {args.fps} > 0")
    return args


def main(args: argparse.Namespace) -> int:
    animation = args.out.suffix.lower() in ANIMATIONS
    preview = store_preview(args.store, args.frames, animation=animation)
    print(stats_table(preview), end="")
    if animation:
        save_animation(args.out, preview.frames(args.height), args.fps)
    else:
        save_picture(args.out, preview.strip(args.height))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
