"""Knowledge distillation: an RGB-only student learns from a frozen teacher (flow I3D, two-stream I3D or any backbone).

Two forms, combined by configurable weights (`DistillConfig`):

- response-based (Hinton et al. 2015): `i3d.losses.kd_loss`, the KL divergence between the teacher's and the
  student's class distributions softened by a temperature T, times T^2 so its gradient scale does not shrink as T
  grows (for a one-logit head, e.g. DFDC's, the two Bernoulli distributions sigmoid(logit / T));
- feature-based: `feature_loss`, the mean squared error between the student's and the teacher's features at named
  endpoints. MARS (Crasto et al., CVPR 2019) uses the globally pooled final features ("pooled") with weight 50 and a
  flow I3D teacher for an RGB I3D student: the same architecture, different inputs. For a different, lighter
  student, a learned 1x1x1 convolution (`FeatureAdapter`) maps its channels to the teacher's and average pooling
  matches the (T, H, W) sizes.

::

    batch["rgb"] --> student --+--> logits ---------- CE(labels) -----------------+
                               +--> endpoints -> adapters -+                      |
                                                           +-- MSE (x beta) ------+--> loss
    batch["flow"] -> teacher --+--> endpoints (no grad) ---+                      |
      (frozen, eval mode)      +--> logits --------------- KL(T) * T^2 (x alpha) -+

Besides the backbones' own endpoint names (`endpoint_names`), two names work with every backbone: "features" (the
last feature map, `forward_features`) and "pooled" (its global average, (B, C): MARS's pooled final features).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from i3d.config import ConfigError, DistillConfig
from i3d.data.dataset import STREAMS
from i3d.losses import classification_loss, kd_loss, multilabel_loss

FINAL_ENDPOINTS = ("features", "pooled")


class DistillError(ConfigError):
    """A distillation setting that cannot work (unknown endpoint, mismatched feature dictionaries, ...)."""


# ----------------------------------------------------------------------------------------------------------- losses


def match_sizes(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool two (B, C, T, H, W) maps to their common (min) size per dimension; (B, C) vectors pass through.

    Pooling the larger map down, rather than stretching the smaller one up, compares only what both maps resolve.
    For the usual case (a student whose map is at least the teacher's size) this is pooling to the teacher's size.
    """
    if student.dim() == 2 or student.shape[2:] == teacher.shape[2:]:
        return student, teacher
    size = tuple(min(s, t) for s, t in zip(student.shape[2:], teacher.shape[2:], strict=True))
    if student.shape[2:] != size:
        student = F.adaptive_avg_pool3d(student, size)
    if teacher.shape[2:] != size:
        teacher = F.adaptive_avg_pool3d(teacher, size)
    return student, teacher


def feature_loss(
    student_feats: Mapping[str, torch.Tensor],
    teacher_feats: Mapping[str, torch.Tensor],
    adapters: nn.ModuleDict | None = None,
) -> torch.Tensor:
    """Feature-based distillation loss: MSE between student and teacher features, averaged over the named endpoints.

    Args:
        student_feats: name -> (B, C_s, T, H, W) map or (B, C_s) vector.
        teacher_feats: the same names -> (B, C_t, T', H', W') or (B, C_t); the targets (no gradient flows into them).
        adapters: name -> module mapping the student's feature to the teacher's channels (`FeatureAdapter`);
            names without one are compared as they are.

    Returns:
        A scalar: the mean over endpoints of each endpoint's element-wise mean squared error.
    """
    if set(student_feats) != set(teacher_feats) or not student_feats:
        raise DistillError(
            f"feature_loss needs the same non-empty endpoint names on both sides; student has {sorted(student_feats)}, "
            f"teacher has {sorted(teacher_feats)}"
        )
    losses = []
    for name, s in student_feats.items():
        t = teacher_feats[name].detach()
        if adapters is not None and name in adapters:
            s = adapters[name](s, t.shape)
        s, t = match_sizes(s, t)
        if s.shape != t.shape:
            raise DistillError(
                f"endpoint {name!r}: student feature {tuple(s.shape)} vs teacher {tuple(t.shape)} after adapters; "
                "build the adapters with make_adapters(student, teacher, pairs, ...) so channels match"
            )
        losses.append(F.mse_loss(s.float(), t.float()))
    return torch.stack(losses).mean()


# --------------------------------------------------------------------------------------------------------- adapters


class FeatureAdapter(nn.Module):
    """Maps a student feature to the teacher's: average pooling to the common size, then a 1x1x1 convolution.

    Pooling first is cheaper and gives the same result (both operations are linear and act on different axes).

    Args:
        student_channels: C_s.
        teacher_channels: C_t. `make_adapters` builds adapters only where C_s != C_t; one built with equal
            channels starts as the identity.
    """

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__()
        self.proj = nn.Conv3d(student_channels, teacher_channels, kernel_size=1, bias=True)
        if student_channels == teacher_channels:
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(student_channels).view(student_channels, student_channels, 1, 1, 1))
                self.proj.bias.zero_()

    def forward(self, x: torch.Tensor, teacher_shape: torch.Size | None = None) -> torch.Tensor:
        if x.dim() == 2:  # (B, C) pooled vector
            return self.proj(x[:, :, None, None, None]).flatten(1)  # (B, C_t)
        if teacher_shape is not None and len(teacher_shape) == 5:
            size = tuple(min(s, t) for s, t in zip(x.shape[2:], teacher_shape[2:], strict=True))
            if x.shape[2:] != size:
                x = F.adaptive_avg_pool3d(x, size)  # (B, C_s, T, H, W) at the common size
        return self.proj(x)  # (B, C_t, T, H, W)


def endpoint_outputs(
    model: nn.Module, x: torch.Tensor, names: list[str] | tuple[str, ...]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run a backbone once for its logits and the named endpoints.

    Args:
        model: a backbone with the shared interface (`forward_features`, `forward_head`, `forward_endpoints`).
        x: (B, C, T, H, W) input.
        names: endpoint names: the backbone's own (`model.endpoint_names`) and/or "features" / "pooled".

    Returns:
        (logits (B, K), {name: tensor}).
    """
    own = [n for n in names if n not in FINAL_ENDPOINTS]
    available = tuple(getattr(model, "endpoint_names", ()))
    unknown = [n for n in own if n not in available]
    if unknown:
        choices = list(available) + list(FINAL_ENDPOINTS)
        raise DistillError(f"{type(model).__name__} has no endpoint(s) {unknown}; choose from {choices}")
    feats: dict[str, torch.Tensor] = {}
    logits_name = "Logits" if "Logits" in available else None  # every backbone's name for its class scores
    if own and logits_name and not any(n in FINAL_ENDPOINTS for n in names):
        out = model.forward_endpoints(x, [*own, logits_name])  # one pass gives everything
        return out[logits_name], {n: out[n] for n in own if n != logits_name}
    if own:
        # a second, partial pass: the shared interface has no call that returns endpoints and the last map together
        feats.update(model.forward_endpoints(x, own))
    fmap = model.forward_features(x)  # (B, C, T', H', W')
    logits = model.forward_head(fmap)  # (B, K)
    if "features" in names:
        feats["features"] = fmap
    if "pooled" in names:
        feats["pooled"] = fmap.mean(dim=(2, 3, 4))  # (B, C): MARS's pooled final features
    return logits, feats


def _feature_shapes(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Size]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, feats = endpoint_outputs(model, x, names)
    finally:
        model.train(was_training)
    return {n: f.shape for n, f in feats.items()}


def make_adapters(
    student: nn.Module,
    teacher: nn.Module,
    pairs: Mapping[str, str],
    student_input: torch.Tensor,
    teacher_input: torch.Tensor,
) -> nn.ModuleDict:
    """Build one `FeatureAdapter` per endpoint pair whose channel counts differ, by probing both models' shapes.

    Args:
        student: the student backbone.
        teacher: the teacher backbone (the stream whose features are distilled).
        pairs: student endpoint -> teacher endpoint, e.g. {"pooled": "pooled"} (MARS) or {"layer4": "Mixed_5c"}.
        student_input: a (1, C_s, T, S, S) probe shaped like the student's clips (zeros will do).
        teacher_input: a (1, C_t, T, S, S) probe shaped like the teacher's clips.

    Returns:
        ModuleDict keyed by student endpoint name; pairs with equal channels get no adapter.
    """
    if not pairs:
        return nn.ModuleDict()
    s_shapes = _feature_shapes(student, student_input, list(pairs))
    t_shapes = _feature_shapes(teacher, teacher_input, list(pairs.values()))
    adapters = nn.ModuleDict()
    for s_name, t_name in pairs.items():
        s_shape, t_shape = s_shapes[s_name], t_shapes[t_name]
        if len(s_shape) != len(t_shape):
            raise DistillError(
                f"cannot pair student endpoint {s_name!r} {tuple(s_shape)} with teacher endpoint {t_name!r} "
                f"{tuple(t_shape)}: one is a map, the other a vector; pair 'pooled' with 'pooled'"
            )
        if s_shape[1] != t_shape[1]:
            adapters[s_name] = FeatureAdapter(s_shape[1], t_shape[1])
    return adapters


# ---------------------------------------------------------------------------------------------------------- Distiller


def task_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """Ground-truth loss: the trainer's `classification_loss` ("ce"; BCE for a one-logit head), or "bce" per class."""
    return classification_loss(logits, labels) if kind == "ce" else multilabel_loss(logits, labels)


def distill_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    cfg: DistillConfig,
    student_feats: Mapping[str, torch.Tensor] | None = None,
    teacher_feats: Mapping[str, torch.Tensor] | None = None,
    adapters: nn.ModuleDict | None = None,
) -> dict[str, torch.Tensor]:
    """Combine the task, KD and feature terms. Returns {"loss", "task", "kd", "feature"} (terms unweighted)."""
    zero = student_logits.new_zeros((), dtype=torch.float32)
    terms = {
        "task": task_loss(student_logits, labels, cfg.task_loss) if cfg.task > 0 else zero,
        "kd": kd_loss(student_logits, teacher_logits, cfg.temperature) if cfg.kd > 0 else zero,
        "feature": feature_loss(student_feats, teacher_feats, adapters) if cfg.feature > 0 else zero,
    }
    terms["loss"] = cfg.task * terms["task"] + cfg.kd * terms["kd"] + cfg.feature * terms["feature"]
    return terms


class Distiller(nn.Module):
    """A trainable student (+ adapters) beside a frozen teacher; `forward(batch)` returns the loss terms.

    The teacher is put in eval mode with `requires_grad=False`, runs under `torch.no_grad`, and stays in eval mode
    when `.train()` is called on the Distiller (its dropout and batch-norm statistics never change).

    Args:
        student: backbone trained on `batch[cfg.student_stream]`.
        teacher: backbone fed `batch[cfg.teacher_stream]`; with teacher_stream "both", a two-stream model whose
            `forward(rgb=, flow=)` returns a dict with "fused" logits and whose `.rgb` / `.flow` are its backbones.
        cfg: loss weights, temperature, endpoint pairs and streams.
        adapters: from `make_adapters`; None -> none (the paired channels must then already match).
    """

    def __init__(
        self, student: nn.Module, teacher: nn.Module, cfg: DistillConfig, adapters: nn.ModuleDict | None = None
    ):
        super().__init__()
        self.student = student
        self.adapters = adapters if adapters is not None else nn.ModuleDict()
        self.teacher = teacher
        self.cfg = cfg
        self.teacher.eval()
        self.teacher.requires_grad_(False)

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        self.teacher.eval()  # frozen: dropout off, batch-norm running statistics untouched
        return self

    @property
    def inputs(self) -> tuple[str, ...]:
        """The batch keys this Distiller reads (the data pipeline's `streams`)."""
        return distill_inputs(self.cfg)

    @torch.no_grad()
    def teacher_outputs(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The teacher's logits and its features at the paired endpoints, keyed by the teacher's endpoint names."""
        names = list(self.cfg.feature_pairs.values())
        if self.cfg.teacher_stream != "both":
            return endpoint_outputs(self.teacher, batch[self.cfg.teacher_stream], names)
        logits = self.teacher(rgb=batch["rgb"], flow=batch["flow"])["fused"]
        feats = {}
        if names:  # a second pass through one stream: the two-stream forward returns logits only
            stream = self.cfg.feature_stream
            _, feats = endpoint_outputs(getattr(self.teacher, stream), batch[stream], names)
        return logits, feats

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Returns {"loss", "task", "kd", "feature", "logits" (the student's, (B, K)), "teacher_logits"}."""
        pairs = self.cfg.feature_pairs
        s_logits, s_feats = endpoint_outputs(self.student, batch[self.cfg.student_stream], list(pairs))
        t_logits, t_feats_by_name = self.teacher_outputs(batch)
        t_feats = {s: t_feats_by_name[t] for s, t in pairs.items()}  # re-keyed by the student's names
        out = distill_loss(s_logits, t_logits, batch["label"], self.cfg, s_feats, t_feats, self.adapters)
        out["logits"] = s_logits
        out["teacher_logits"] = t_logits
        return out

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The student's and the adapters' parameters: what the optimizer should see."""
        return [p for p in (*self.student.parameters(), *self.adapters.parameters()) if p.requires_grad]


def distill_inputs(cfg: DistillConfig) -> tuple[str, ...]:
    """The streams a distillation batch needs, in ("rgb", "flow") order."""
    teacher = STREAMS if cfg.teacher_stream == "both" else (cfg.teacher_stream,)
    return tuple(s for s in STREAMS if s == cfg.student_stream or s in teacher)
