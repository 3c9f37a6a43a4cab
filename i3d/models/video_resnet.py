"""3D ResNets built from torchvision's video blocks, with the common backbone interface.

Four families, one class:

    r3d_18       [2, 2, 2, 2] BasicBlock, Conv3DSimple everywhere              (Tran et al. 2018, torchvision)
    mc3_18       [2, 2, 2, 2] BasicBlock, Conv3DSimple in layer1, 2D after     (mixed convolutions, torchvision)
    r2plus1d_18  [2, 2, 2, 2] BasicBlock, Conv2Plus1D everywhere               (factorised (2+1)D, torchvision)
    resnet3d_34  [3, 4, 6, 3] BasicBlock, Conv3DSimple, Hara et al.'s stem     (kenshohara/3D-ResNets-PyTorch)

    x (B, C, T, H, W) -> stem -> layer1 -> layer2 -> layer3 -> layer4 -> avgpool -> dropout -> fc -> (B, classes)

`VideoResNet3D` subclasses torchvision's `VideoResNet`, so its state-dict keys are torchvision's own
(`stem.0.weight`, `layer1.0.conv1.0.weight`, `fc.weight`) and torchvision's Kinetics-400 files load unchanged.

Hara et al.'s ResNet-34 differs from torchvision's R3D in three places, all reproduced here so their Kinetics
checkpoints map one to one (see `i3d.models.weight_formats.kenshohara_to_torchvision`):
- stem: conv 7x7x7, stride (1, 2, 2), padding 3 -> BN -> ReLU -> max-pool 3x3x3, stride 2 (halves T as well);
- shortcut "A" (resnet-34-kinetics.pth, the file the DFDC solution fine-tuned): where the shape changes, the
  identity is subsampled by 2 in T, H, W and zero-padded in channels, no parameters. Their later checkpoints
  (r3d34_K_200ep.pth) use shortcut "B", torchvision's 1x1x1 conv + BN; pass `shortcut="B"` for those.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.video.resnet import (
    BasicBlock,
    BasicStem,
    Conv2Plus1D,
    Conv3DNoTemporal,
    Conv3DSimple,
    R2Plus1dStem,
    VideoResNet,
)

RESNET_ENDPOINTS = ("stem", "layer1", "layer2", "layer3", "layer4", "Logits")  # "Logits" as I3D names it


class HaraStem(nn.Sequential):
    """Hara et al.'s stem: conv 7x7x7 stride (1, 2, 2) -> BN -> ReLU -> max-pool 3x3x3 stride 2 (T, H, W all /2)."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
        )


class ZeroPadShortcut(nn.Module):
    """Parameter-free shortcut "A" (He et al. 2016): subsample by `stride`, zero-pad the new channels.

    The forward pass is Hara et al.'s. Their code builds the shortcut from `out.data`, so no gradient flows back
    through it (only through the block's convolutions); ours passes the gradient on, as He et al.'s shortcut does.
    `detach=True` reproduces theirs, e.g. to fine-tune resnet-34-kinetics.pth exactly as the DFDC authors did.
    """

    def __init__(self, out_channels: int, stride: int, detach: bool = False) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride
        self.detach = detach

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        x = x[:, :, ::s, ::s, ::s]  # (B, C_in, T', H', W'): the same grid as a padded 3x3x3 conv of stride s
        x = x.detach() if self.detach else x
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.out_channels - x.shape[1]))  # pad channels at the end

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, stride={self.stride}, detach={self.detach}"


class VideoResNet3D(VideoResNet):
    """torchvision's `VideoResNet` plus `forward_features`, `forward_head`, `reset_classifier`, `forward_endpoints`.

    Args:
        block, conv_makers, layers, stem: as torchvision's `VideoResNet`.
        num_classes: outputs of the final linear layer (1 for a binary head trained with BCE).
        in_channels: input channels; anything other than 3 (e.g. 2 for optical flow) replaces the stem's first conv.
        dropout: dropout probability before `fc` (0 disables it; torchvision's recipe has none).
        shortcut: "B" (1x1x1 conv + BN where the shape changes, torchvision) or "A" (zero-padding, no parameters).
    """

    endpoint_names = RESNET_ENDPOINTS

    def __init__(
        self,
        block: type[BasicBlock],
        conv_makers: list[type[nn.Module]],
        layers: list[int],
        stem: type[nn.Module],
        num_classes: int = 400,
        in_channels: int = 3,
        dropout: float = 0.0,
        shortcut: str = "B",
    ) -> None:
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut={shortcut!r} is not one of 'A' (zero-pad) or 'B' (1x1x1 conv + BN)")
        if in_channels < 1:
            raise ValueError(f"in_channels={in_channels} must be >= 1 (3 for RGB, 2 for optical flow)")
        super().__init__(block, conv_makers, layers, stem, num_classes=num_classes)
        self.num_features = self.fc.in_features
        self.in_channels = in_channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if in_channels != 3:
            old = self.stem[0]
            conv = nn.Conv3d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
            self.stem[0] = conv
            nn.init.kaiming_normal_(self.stem[0].weight, mode="fan_out", nonlinearity="relu")
        if shortcut == "A":
            for layer in (self.layer2, self.layer3, self.layer4):
                first = layer[0]
                first.downsample = ZeroPadShortcut(first.conv1[1].num_features, first.stride)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> last feature map (B, num_features, T', H', W')."""
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, num_features, T', H', W') -> logits (B, num_classes)."""
        x = self.avgpool(features).flatten(1)  # (B, num_features)
        return self.fc(self.dropout(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace `fc` by a freshly initialised layer with `num_classes` outputs (torchvision's init)."""
        self.fc = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.constant_(self.fc.bias, 0)

    def forward_endpoints(self, x: Tensor, names: Iterable[str]) -> dict[str, Tensor]:
        """Run the network only as far as needed and return the named maps ('stem', 'layer1'.. 'layer4', 'Logits')."""
        wanted = set(names)
        unknown = wanted - set(RESNET_ENDPOINTS)
        if unknown:
            raise ValueError(f"unknown endpoints {sorted(unknown)}; available: {list(RESNET_ENDPOINTS)}")
        out: dict[str, Tensor] = {}
        stages = (self.stem, self.layer1, self.layer2, self.layer3, self.layer4, self.forward_head)
        for name, stage in zip(RESNET_ENDPOINTS, stages, strict=True):
            if not wanted - out.keys():
                break
            x = stage(x)
            if name in wanted:
                out[name] = x
        return out


def r3d_18(num_classes: int = 400, in_channels: int = 3, dropout: float = 0.0) -> VideoResNet3D:
    """R3D-18: every conv 3x3x3 (torchvision's `r3d_18`; its Kinetics-400 file loads unchanged)."""
    return VideoResNet3D(BasicBlock, [Conv3DSimple] * 4, [2, 2, 2, 2], BasicStem, num_classes, in_channels, dropout)


def mc3_18(num_classes: int = 400, in_channels: int = 3, dropout: float = 0.0) -> VideoResNet3D:
    """MC3-18: 3x3x3 convs in layer1, 1x3x3 after (torchvision's `mc3_18`)."""
    convs = [Conv3DSimple] + [Conv3DNoTemporal] * 3
    return VideoResNet3D(BasicBlock, convs, [2, 2, 2, 2], BasicStem, num_classes, in_channels, dropout)


def r2plus1d_18(num_classes: int = 400, in_channels: int = 3, dropout: float = 0.0) -> VideoResNet3D:
    """R(2+1)D-18: every 3x3x3 conv factorised into 1x3x3 then 3x1x1 (torchvision's `r2plus1d_18`)."""
    return VideoResNet3D(BasicBlock, [Conv2Plus1D] * 4, [2, 2, 2, 2], R2Plus1dStem, num_classes, in_channels, dropout)


def resnet3d_34(
    num_classes: int = 400, in_channels: int = 3, dropout: float = 0.0, shortcut: str = "A",
    detach_shortcut: bool = False,
) -> VideoResNet3D:
    """ResNet3D-34 of Hara et al. (CVPR 2018): [3, 4, 6, 3] BasicBlocks of 3x3x3 convs behind their 7x7x7 stem.

    `shortcut="A"` matches resnet-34-kinetics.pth (the DFDC solution's starting point); "B" matches r3d34_K_200ep.
    `detach_shortcut=True` stops the gradient through the zero-padded shortcuts as their code does
    (`ZeroPadShortcut`); the forward pass is the same either way.
    """
    net = VideoResNet3D(
        BasicBlock, [Conv3DSimple] * 4, [3, 4, 6, 3], HaraStem, num_classes, in_channels, dropout, shortcut
    )
    for m in net.modules():
        if isinstance(m, ZeroPadShortcut):
            m.detach = detach_shortcut
    return net

