"""Pretrained weights for the video-ResNet zoo, read from local files (nothing downloads at run time).

Two sources:
- torchvision's Kinetics-400 `r3d_18` / `mc3_18` / `r2plus1d_18` state dicts (the `.pth` files behind
  `torchvision.models.video.*_Weights.KINETICS400_V1`; fetch them once yourself and pass the path). Our
  `VideoResNet3D` subclasses torchvision's class, so the keys match one to one.
- kenshohara/3D-ResNets-PyTorch checkpoints (`{"arch": "resnet-34", "state_dict": {"module.conv1.weight", ...}}`,
  e.g. resnet-34-kinetics.pth), whose names are mapped onto ours by `kenshohara_to_torchvision`.

Both loaders keep a freshly initialised classifier when the checkpoint's head has another size (400 Kinetics
classes -> 1 DFDC logit), and adapt the first conv when the model takes other than 3 channels (a flow stream):
the RGB kernel is averaged over its input channels and repeated, TSN's "cross-modality pre-training".
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor, nn

STEM_KEY = "stem.0.weight"

# kenshohara's BasicBlock names its layers conv1/bn1/conv2/bn2; torchvision nests each conv with its BN.
_KENSHOHARA_RULES = (
    (re.compile(r"^conv1\.weight$"), "stem.0.weight"),
    (re.compile(r"^bn1\.(.+)$"), r"stem.1.\1"),
    (re.compile(r"^(layer\d\.\d+)\.conv([12])\.weight$"), r"\1.conv\2.0.weight"),
    (re.compile(r"^(layer\d\.\d+)\.bn([12])\.(.+)$"), r"\1.conv\2.1.\3"),
    (re.compile(r"^(layer\d\.\d+\.downsample\.[01]\..+)$"), r"\1"),
    (re.compile(r"^(fc\.(weight|bias))$"), r"\1"),
)


class WeightsError(Exception):
    """A checkpoint that cannot be loaded into the model; the message names the file and the fix."""


def read_state_dict(path: str | Path, prefix: str = "") -> dict[str, Tensor]:
    """Load a checkpoint file and return its state dict, with any DataParallel "module." prefix removed.

    Accepts a bare state dict or a dict holding one under "state_dict" (kenshohara) or "model" (our checkpoints).
    `prefix` (e.g. "rgb." for one stream of our two-stream checkpoints) keeps only the keys under it, stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path} does not exist; download the weights once and pass their local path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({err}); re-download it") from err
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"{path} holds no state dict (expected a dict of tensors, or one under 'state_dict')")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if prefix:
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise WeightsError(f"{path} has no keys under {prefix!r}; its first keys: {list(obj)[:3]}")
    return state


def kenshohara_to_torchvision(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a kenshohara/3D-ResNets-PyTorch ResNet state dict to `VideoResNet3D`'s names."""
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _KENSHOHARA_RULES:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            raise WeightsError(f"unexpected key {key!r} in a kenshohara ResNet checkpoint (a ResNeXt or DenseNet?)")
    return out


def adapt_stem(weight: Tensor, in_channels: int) -> Tensor:
    """Average an RGB first-conv kernel (O, 3, kt, kh, kw) over channels and repeat it `in_channels` times."""
    if weight.shape[1] == in_channels:
        return weight
    return weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1, 1)


def load_into(model: nn.Module, state_dict: dict[str, Tensor], source: str = "checkpoint") -> list[str]:
    """Copy `state_dict` into `model`, keeping the model's own head if the sizes differ.

    Args:
        model: a `VideoResNet3D` (any module with `fc` and `stem.0` works).
        state_dict: torchvision-named weights.
        source: file name for error messages.

    Returns:
        The model keys left at their fresh initialisation (the classifier, when its size differs; BN counters
        absent from old checkpoints).
    """
    own = model.state_dict()
    state_dict = dict(state_dict)
    if STEM_KEY in state_dict and STEM_KEY in own:
        state_dict[STEM_KEY] = adapt_stem(state_dict[STEM_KEY], own[STEM_KEY].shape[1])
    kept = [k for k in ("fc.weight", "fc.bias") if k in state_dict and state_dict[k].shape != own[k].shape]
    for key in kept:
        del state_dict[key]
    bad = [k for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    if bad:
        k = bad[0]
        raise WeightsError(f"{source}: {k} has shape {tuple(state_dict[k].shape)} but the model's is "
                           f"{tuple(own[k].shape)}; was it saved from another architecture?")
    result = model.load_state_dict(state_dict, strict=False)
    if result.unexpected_keys:
        hint = ""
        if any(".downsample." in k for k in result.unexpected_keys):
            hint = " (the checkpoint has 1x1x1 shortcut convs: build resnet3d_34(shortcut='B'))"
        raise WeightsError(f"{source}: keys the model does not have: {result.unexpected_keys[:5]}{hint}")
    missing = [k for k in result.missing_keys if k not in kept and not k.endswith("num_batches_tracked")]
    if missing:
        hint = ""
        if any(".downsample." in k for k in missing):
            hint = " (the checkpoint uses zero-padding shortcuts: build resnet3d_34(shortcut='A'))"
        raise WeightsError(f"{source}: the checkpoint lacks {len(missing)} model keys, e.g. {missing[:5]}{hint}")
    return kept + [k for k in result.missing_keys if k.endswith("num_batches_tracked")]


def load_torchvision_video(model: nn.Module, path: str | Path) -> list[str]:
    """Load a torchvision Kinetics-400 video-ResNet state dict (r3d_18 / mc3_18 / r2plus1d_18) from `path`."""
    return load_into(model, read_state_dict(path), source=str(path))


def load_kenshohara(model: nn.Module, path: str | Path) -> list[str]:
    """Load a kenshohara/3D-ResNets-PyTorch ResNet checkpoint (e.g. resnet-34-kinetics.pth) into `resnet3d_34`."""
    return load_into(model, kenshohara_to_torchvision(read_state_dict(path)), source=str(path))


def load_zoo_pretrained(model: nn.Module, path: str | Path, *, prefix: str = "") -> list[str]:
    """Load any supported checkpoint into a video ResNet, telling the formats apart by their key names.

    kenshohara files name the first conv "conv1.weight"; torchvision files and our own checkpoints (after
    `prefix`, e.g. "rgb.") name it "stem.0.weight".
    """
    state = read_state_dict(path, prefix)
    if "conv1.weight" in state:
        state = kenshohara_to_torchvision(state)
    return load_into(model, state, source=str(path))
