"""DeepMind's Inception-v1 I3D (Carreira & Zisserman, 2017), exactly as in deepmind/kinetics-i3d, at any input size.

Three details decide whether DeepMind's weights reproduce DeepMind's predictions, and earlier PyTorch ports got
each of them wrong somewhere:

* TensorFlow "SAME" padding, computed from the size of the tensor that actually arrives (not from the kernel
  alone): the total padding is ``max((ceil(n / s) - 1) * s + k - n, 0)`` and, when it is odd, the extra element
  goes at the end. A 7x7 stride-2 conv on 224 pixels pads (2, 3), not (3, 3).
* Max-pools pad with -inf (TensorFlow ignores padding in a max), so a padded border can never win the max.
* Batch norm with epsilon 1e-3 and no learned scale in the original (gamma is loaded as 1).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
# TensorFlow's decay 0.999 is PyTorch momentum 0.001: running statistics would need ~1000 steps to follow a new
# dataset, while fine-tuning on UCF101/HMDB51 is a few thousand steps at 4-8 clips per GPU. 0.01 (a ~100-step
# window) follows the new data within an epoch yet averages over enough small, noisy batches; piergiaj/pytorch-i3d,
# whose fine-tuned models people use, made the same choice.
BN_MOMENTUM = 0.01

Triple = tuple[int, int, int]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one dimension: (before, after), the odd element after.

    Example: size 8, kernel 3, stride 2 -> output 4 needs (4 - 1) * 2 + 3 = 9 inputs -> pad (0, 1).
    """
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def same_padding_3d(shape: tuple[int, ...], kernel: Triple, stride: Triple) -> tuple[Triple, Triple]:
    """"SAME" padding of the last three dims of `shape` (..., T, H, W): ((before_t, before_h, before_w), (after...))."""
    pads = [same_padding(n, k, s) for n, k, s in zip(shape[-3:], kernel, stride, strict=True)]
    before = tuple(p[0] for p in pads)
    after = tuple(p[1] for p in pads)
    return before, after  # type: ignore[return-value]


def pad_same(x: torch.Tensor, kernel: Triple, stride: Triple, value: float = 0.0) -> torch.Tensor:
    """Pad x (B, C, T, H, W) for a "SAME" conv/pool; `value=-inf` for max-pooling."""
    before, after = same_padding_3d(x.shape, kernel, stride)
    if not any(before) and not any(after):
        return x
    # F.pad lists the last dimension first: (w_before, w_after, h_before, h_after, t_before, t_after)
    return F.pad(x, (before[2], after[2], before[1], after[1], before[0], after[0]), value=value)


def _triple(v: int | Triple) -> Triple:
    return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class Unit3D(nn.Module):
    """Conv3d (no bias) with TF "SAME" padding -> BatchNorm3d(eps 1e-3) -> ReLU: DeepMind's `Unit3D`."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int | Triple = 1, stride: int | Triple = 1):
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = same_padding_3d(x.shape, self.kernel, self.stride)
        if before == after:  # symmetric (all stride-1 convs): let the conv pad, no copy of the input
            x = F.conv3d(x, self.conv.weight, None, self.stride, padding=before)
        else:
            x = self.conv(pad_same(x, self.kernel, self.stride))
        return F.relu(self.bn(x), inplace=True)


class MaxPool3dSame(nn.Module):
    """Max-pool with TF "SAME" padding; the padding is -inf so that, as in TensorFlow, it never wins the max."""

    def __init__(self, kernel: Triple, stride: Triple):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(pad_same(x, self.kernel, self.stride, value=float("-inf")), self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=SAME(-inf)"


class InceptionBlock(nn.Module):
    """One "Mixed" block: four parallel branches concatenated along channels.

    ::

                                 x (B, C_in, T, H, W)
            +----------------+-----------+-----------+----------------------+
            |                |           |           |                      |
        b0: 1x1x1      b1a: 1x1x1   b2a: 1x1x1   b3_pool: max 3x3x3 s1 SAME(-inf)
            |                |           |           |
            |          b1b: 3x3x3   b2b: 3x3x3   b3b: 1x1x1
            |                |           |           |
            +----------------+-----------+-----------+
                 concat -> (B, c0 + c1b + c2b + c3, T, H, W)

    Every conv is a `Unit3D` (conv + BN + ReLU). Branch 2 is 3x3x3 in DeepMind's I3D (the paper's Inception-v1 has
    5x5 there; DeepMind's checkpoint and torchvision's GoogLeNet both use 3x3).

    Args:
        in_channels: channels of x.
        channels: (c0, c1a, c1b, c2a, c2b, c3) output channels of b0, b1a, b1b, b2a, b2b, b3b.
    """

    def __init__(self, in_channels: int, channels: tuple[int, int, int, int, int, int]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = channels
        self.b0 = Unit3D(in_channels, c0, 1)
        self.b1a = Unit3D(in_channels, c1a, 1)
        self.b1b = Unit3D(c1a, c1b, 3)
        self.b2a = Unit3D(in_channels, c2a, 1)
        self.b2b = Unit3D(c2a, c2b, 3)
        self.b3_pool = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, c3, 1)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3_pool(x))], dim=1
        )


# The feature endpoints in order, with DeepMind's names. Shapes for a (B, 3, 64, 224, 224) input.
FEATURE_ENDPOINTS = (
    "Conv3d_1a_7x7",  # (B, 64, 32, 112, 112)  7x7x7 stride 2
    "MaxPool3d_2a_3x3",  # (B, 64, 32, 56, 56)  1x3x3 stride 1,2,2
    "Conv3d_2b_1x1",  # (B, 64, 32, 56, 56)
    "Conv3d_2c_3x3",  # (B, 192, 32, 56, 56)
    "MaxPool3d_3a_3x3",  # (B, 192, 32, 28, 28)  1x3x3 stride 1,2,2
    "Mixed_3b",  # (B, 256, 32, 28, 28)
    "Mixed_3c",  # (B, 480, 32, 28, 28)
    "MaxPool3d_4a_3x3",  # (B, 480, 16, 14, 14)  3x3x3 stride 2
    "Mixed_4b",  # (B, 512, 16, 14, 14)
    "Mixed_4c",  # (B, 512, 16, 14, 14)
    "Mixed_4d",  # (B, 512, 16, 14, 14)
    "Mixed_4e",  # (B, 528, 16, 14, 14)
    "Mixed_4f",  # (B, 832, 16, 14, 14)
    "MaxPool3d_5a_2x2",  # (B, 832, 8, 7, 7)  2x2x2 stride 2
    "Mixed_5b",  # (B, 832, 8, 7, 7)
    "Mixed_5c",  # (B, 1024, 8, 7, 7)
)
I3D_ENDPOINTS = (*FEATURE_ENDPOINTS, "Logits")  # Logits: (B, num_classes)


class InceptionI3d(nn.Module):
    """Inception-v1 I3D. Input (B, in_channels, T, H, W) scaled to [-1, 1]; output logits (B, num_classes).

    The RGB net has `in_channels=3`, the TV-L1 flow net `in_channels=2`; nothing else differs. Any T, H, W >= 1
    works: when the Mixed_5c map is smaller than the (2, 7, 7) logits pool, the pool covers what there is. At
    64x224x224 the Mixed_5c map is (8, 7, 7) and the logits are DeepMind's: the mean over 7 time steps.

    Args:
        num_classes: size of the classifier (400 for Kinetics).
        in_channels: 3 for RGB, 2 for optical flow.
        dropout: drop probability before the classifier (DeepMind trained with keep_prob 0.5).
        input_size: 224 (DeepMind's) or 112, the DFDC authors' J3D for 112-px face crops: a 7x3x3 stem and a
            stride-1 MaxPool3d_2a, so Mixed_5c is 7x7 again at 112 px (everything else, and every name, is shared).
    """

    num_features = 1024
    endpoint_names = I3D_ENDPOINTS

    def __init__(self, num_classes: int = 400, in_channels: int = 3, dropout: float = 0.5, input_size: int = 224):
        super().__init__()
        if input_size not in (224, 112):
            raise ValueError(f"input_size={input_size}: 224 (DeepMind's I3D) or 112 (the DFDC authors' J3D variant)")
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, input_size
        small = input_size == 112
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 3, 3) if small else 7, 2)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 1, 1) if small else (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, 1)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, 3)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionBlock(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = InceptionBlock(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionBlock(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = InceptionBlock(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = InceptionBlock(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = InceptionBlock(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = InceptionBlock(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionBlock(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = InceptionBlock(832, (384, 192, 384, 48, 128, 128))
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Conv3d(self.num_features, num_classes, kernel_size=1, bias=True)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d) and m is not self.logits:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self._init_head()

    def _init_head(self) -> None:
        nn.init.normal_(self.logits.weight, std=0.01)
        nn.init.zeros_(self.logits.bias)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with `num_classes` outputs (backbone kept)."""
        ref = self.logits.weight
        self.num_classes = num_classes
        self.logits = nn.Conv3d(self.num_features, num_classes, 1, bias=True).to(ref.device, ref.dtype)
        self._init_head()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"InceptionI3d(in_channels={self.in_channels}) expects (B, {self.in_channels}, T, H, W), got "
                f"{tuple(x.shape)}; RGB clips have 3 channels, flow clips 2"
            )

    def forward_endpoints(self, x: torch.Tensor, names: tuple[str, ...] | list[str]) -> dict[str, torch.Tensor]:
        """Run the net up to the last of `names` and return those endpoints' outputs (see `endpoint_names`)."""
        unknown = [n for n in names if n not in I3D_ENDPOINTS]
        if unknown:
            raise ValueError(f"unknown I3D endpoint(s) {unknown}; available: {list(I3D_ENDPOINTS)}")
        self._check_input(x)
        wanted, out = set(names), {}
        for name in FEATURE_ENDPOINTS:
            if not wanted - out.keys():
                break
            x = getattr(self, name)(x)
            if name in wanted:
                out[name] = x
        if "Logits" in wanted:
            out["Logits"] = self.forward_head(x)
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> the Mixed_5c map (B, 1024, T', H', W'), T' ~ T/8, H' ~ H/32 (shapes above)."""
        self._check_input(x)
        for name in FEATURE_ENDPOINTS:  # Conv3d_1a_7x7 -> MaxPool3d_2a_3x3 -> ... -> Mixed_5c
            x = getattr(self, name)(x)
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Mixed_5c map -> avg pool (2, 7, 7) stride 1 VALID -> dropout -> 1x1x1 conv -> mean over time/space."""
        kernel = tuple(min(k, n) for k, n in zip((2, 7, 7), features.shape[-3:], strict=True))
        x = F.avg_pool3d(features, kernel, stride=1)  # (B, 1024, T'-1, 1, 1) at DeepMind's input size
        x = self.logits(self.dropout(x))  # (B, num_classes, T'', H'', W'')
        # DeepMind squeezes space (1x1 at 224 px) and averages over time; averaging space as well is identical
        # there and lets larger crops (e.g. 256 px -> 2x2 after pooling) work.
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
