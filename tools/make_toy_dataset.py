"""Generate the synthetic toy dataset (classes: a shape's colour and how it moves) in UCF101's layout.

    python tools/make_toy_dataset.py --out runs/demo/toy          (the defaults are make demo's dataset)
    python tools/make_toy_dataset.py --out runs/toy128 --size 128x160 --frames 16 --classes MoveLeft MoveRight ZoomIn

Writes OUT/videos/<Class>/v_<Class>_gGG_cCC.avi (FFV1, lossless), classInd.txt, trainlist01.txt, testlist01.txt and
toy_dataset.json. Plain motion classes (the second example) make a dataset that only motion separates; the default
colour + motion classes need both streams. Groups 1..--test-groups form the test split. A rerun with the same
arguments skips finished videos; other arguments on an existing OUT need --overwrite.
"""

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from common.cli import parse_size, run_tool
from i3d.synthetic.toy import COLOURS, DEFAULT_CLASSES, MOTIONS, ToyConfig
from i3d.synthetic.toy_dataset import video_list, write_toy_dataset


def parse_args(argv=None) -> argparse.Namespace:
    d = ToyConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder (new, empty, or an earlier toy dataset)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES), metavar="CLASS",
                   help=f"a motion ({' '.join(MOTIONS)}), optionally after a colour ({' '.join(COLOURS)}); "
                        f"default: {' '.join(DEFAULT_CLASSES)}")
    p.add_argument("--videos-per-class", type=int, default=d.videos_per_class, help="train + test videos per class")
    p.add_argument("--clips-per-group", type=int, default=d.clips_per_group, help="clips sharing one scene")
    p.add_argument("--test-groups", type=int, default=d.test_groups, help="groups 1..N of each class are the test set")
    p.add_argument("--size", type=parse_size, default=(d.height, d.width),
                   help=f"HEIGHTxWIDTH (default {d.height}x{d.width})")
    p.add_argument("--frames", type=int, default=d.num_frames, help="frames per video")
    p.add_argument("--fps", type=float, default=d.fps)
    p.add_argument("--overwrite", action="store_true", help="regenerate an OUT made with other arguments")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    cfg = ToyConfig(height=args.size[0], width=args.size[1], num_frames=args.frames, fps=args.fps,
                    classes=tuple(args.classes), videos_per_class=args.videos_per_class,
                    clips_per_group=args.clips_per_group, test_groups=args.test_groups, seed=args.seed)
    bar = tqdm(total=len(video_list(cfg)), unit="video", disable=args.no_progress)
    start = time.perf_counter()
    counts = write_toy_dataset(args.out, cfg, overwrite=args.overwrite, progress=lambda _path: bar.update())
    bar.close()
    print(f"{args.out}: wrote {counts['written']}, kept {counts['skipped']} videos ({counts['train']} train, "
          f"{counts['test']} test, {len(cfg.classes)} classes) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
