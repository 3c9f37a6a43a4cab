"""Two-stream fusion by composition: an RGB backbone and a flow backbone whose logits are averaged."""

import torch
from torch import nn


class TwoStreamI3D(nn.Module):
    """Run the RGB and/or the flow stream and fuse their logits with a weighted mean.

    The state dict keys are `rgb.*` and `flow.*`, so every checkpoint has the same layout whether one or two
    streams were trained; `i3d.models.pretrained.load_i3d(net, path, prefix="rgb.")` picks one stream back out.

    Args:
        rgb: backbone for (B, 3, T, H, W) RGB clips, or None.
        flow: backbone for (B, 2, T, H, W) flow clips, or None.
        weights: (w_rgb, w_flow) fusion weights; fused = (w_rgb * rgb + w_flow * flow) / (w_rgb + w_flow).
    """

    def __init__(self, rgb: nn.Module | None, flow: nn.Module | None, weights: tuple[float, float] = (1.0, 1.0)):
        super().__init__()
        if rgb is None and flow is None:
            raise ValueError("TwoStreamI3D needs at least one stream: pass an RGB and/or a flow backbone")
        if len(weights) != 2 or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"fusion weights must be two non-negative numbers with a positive sum, got {weights}")
        self.rgb, self.flow = rgb, flow
        self.fusion_weights = {"rgb": float(weights[0]), "flow": float(weights[1])}

    @property
    def streams(self) -> tuple[str, ...]:
        """Names of the streams this model has, e.g. ("rgb", "flow")."""
        return tuple(name for name in ("rgb", "flow") if getattr(self, name) is not None)

    def reset_classifier(self, num_classes: int) -> None:
        for name in self.streams:
            getattr(self, name).reset_classifier(num_classes)

    def forward(self, rgb: torch.Tensor | None = None, flow: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Logits of each given stream plus "fused", their weighted mean (the stream's own logits when alone)."""
        inputs = {"rgb": rgb, "flow": flow}
        out = {}
        for name, x in inputs.items():
            if x is None:
                continue
            net = getattr(self, name)
            if net is None:
                raise ValueError(f"got a {name} input but this TwoStreamI3D has no {name} stream ({self.streams})")
            out[name] = net(x)
        if not out:
            raise ValueError(f"TwoStreamI3D.forward needs at least one of rgb=, flow= (streams: {self.streams})")
        out["fused"] = self.fuse(out)
        return out

    def fuse(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """The fusion-weighted mean of the streams' logits {stream: (..., classes)} (a stream's own when alone)."""
        total = sum(self.fusion_weights[name] for name in logits)
        if total <= 0:
            raise ValueError(f"fusion weights {self.fusion_weights} give zero total weight for streams {list(logits)}")
        return sum(self.fusion_weights[name] * x for name, x in logits.items()) / total
