"""The model zoo: one literal dict from name to builder, and `build_model`.

    name          architecture                               input contract (i3d.models.contracts)
    i3d           InceptionI3d (Carreira & Zisserman 2017)   224 px, x/255*2-1
    res34         ResNet3D-34, Hara et al., shortcut A       224 px, raw 0-255
    mc3_112       MC3-18 (torchvision)                       112 px, ImageNet mean/std
    mc3_224       MC3-18 (torchvision)                       224 px, ImageNet mean/std
    r2p1_112      R(2+1)D-18 (torchvision)                   112 px, ImageNet mean/std
    r3d_18        R3D-18 (torchvision)                       112 px, torchvision Kinetics mean/std
    mc3_18        MC3-18 (torchvision)                       112 px, torchvision Kinetics mean/std
    r2plus1d_18   R(2+1)D-18 (torchvision)                   112 px, torchvision Kinetics mean/std

The DFDC names (`res34`, `mc3_112`, ...) and the plain torchvision names share architectures; they differ only in
their input contract, which is why the contract, not the architecture, is looked up by model name.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from i3d.models.inception import InceptionI3d
from i3d.models.video_resnet import mc3_18, r2plus1d_18, r3d_18, resnet3d_34

MODELS: dict[str, Callable[..., nn.Module]] = {
    "i3d": InceptionI3d,
    "res34": resnet3d_34,
    "mc3_112": mc3_18,
    "mc3_224": mc3_18,
    "r2p1_112": r2plus1d_18,
    "r3d_18": r3d_18,
    "mc3_18": mc3_18,
    "r2plus1d_18": r2plus1d_18,
}


def build_model(name: str, num_classes: int, in_channels: int = 3) -> nn.Module:
    """Build zoo model `name` with a fresh `num_classes`-way head (1 = a binary head for BCE).

    Args:
        name: a key of `MODELS`.
        num_classes: outputs of the classifier.
        in_channels: 3 for RGB, 2 for optical flow.

    Returns:
        An nn.Module with the common backbone interface (`forward_features`, `forward_head`, `reset_classifier`,
        `num_features`, `forward_endpoints`, `endpoint_names`) mapping (B, C, T, H, W) to (B, num_classes).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)} (i3d.models.zoo.MODELS)")
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be >= 1 (use 1 for a binary head with BCE)")
    return MODELS[name](num_classes=num_classes, in_channels=in_channels)
