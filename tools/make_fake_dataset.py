"""Generate a small DFDC-style real/fake video dataset (metadata.json parts; FAKE = blended, warped face region).

    python tools/make_fake_dataset.py --out runs/fake_dfdc
    python tools/make_fake_dataset.py --out runs/fake_dfdc --reals-per-part 8 --fakes-per-real 3 --train-parts 2

Writes OUT/train/dfdc_train_part_N/ and OUT/val/dfdc_train_part_M/ (videos + metadata.json) and
OUT/fake_dataset.json (the parameters). See i3d/synthetic/fake_toy.py for what the videos show.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from common.cli import run_tool
from i3d.synthetic.fake_toy import VIDEO_CODECS, FakeToyConfig, make_fake_dataset


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already generated in --out")
    for f in dataclasses.fields(FakeToyConfig):
        flag = "--" + f.name.replace("_", "-")
        extra = {"choices": sorted(VIDEO_CODECS)} if f.name == "codec" else {}
        p.add_argument(flag, dest=f.name, type=type(f.default), default=f.default, help=f"default {f.default}",
                       **extra)
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    cfg = FakeToyConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(FakeToyConfig)})
    summary = make_fake_dataset(args.out, cfg, overwrite=args.overwrite)
    print(f"{summary['num_real']} REAL and {summary['num_fake']} FAKE videos; train parts {summary['train']}, "
          f"val parts {summary['val']}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
