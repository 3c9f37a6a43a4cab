"""Distillation losses, adapters and the Distiller (tiny inputs: 8 frames at 32x32)."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from i3d.config import ConfigError, DistillConfig
from i3d.distill import (
    Distiller,
    DistillError,
    FeatureAdapter,
    distill_inputs,
    endpoint_outputs,
    feature_loss,
    make_adapters,
)
from i3d.distill_train import load_distill_config


class TinyBackbone(nn.Module):
    """Two conv stages with the shared backbone interface (a stand-in where the real models would be slow)."""

    endpoint_names = ("stage1", "stage2", "Logits")

    def __init__(self, in_channels=3, width=8, num_classes=5, stride2=2):
        super().__init__()
        conv1 = nn.Conv3d(in_channels, width, 3, stride=2, padding=1)
        self.stage1 = nn.Sequential(conv1, nn.BatchNorm3d(width), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv3d(width, 2 * width, 3, stride=stride2, padding=1), nn.ReLU())
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(2 * width, num_classes)
        self.num_features = 2 * width

    def forward_endpoints(self, x, names):
        out = {"stage1": self.stage1(x)}
        out["stage2"] = self.stage2(out["stage1"])
        out["Logits"] = self.forward_head(out["stage2"])
        return {n: out[n] for n in names}

    def forward_features(self, x):
        return self.stage2(self.stage1(x))

    def forward_head(self, features):
        return self.fc(self.dropout(features.mean(dim=(2, 3, 4))))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _batch(b=2, t=8, s=32, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "rgb": torch.randn(b, 3, t, s, s, generator=g),
        "flow": torch.randn(b, 2, t, s, s, generator=g),
        "label": torch.randint(0, k, (b,), generator=g),
    }


# ------------------------------------------------------------------------------------------------------ feature_loss


def test_feature_loss_is_mse_averaged_over_endpoints():
    s = {"a": torch.ones(2, 4), "b": torch.zeros(2, 3, 2, 2, 2)}
    t = {"a": torch.zeros(2, 4), "b": torch.full((2, 3, 2, 2, 2), 2.0)}
    assert feature_loss(s, t).item() == pytest.approx((1.0 + 4.0) / 2)
    assert feature_loss(s, {k: v.clone() for k, v in s.items()}).item() == 0.0


def test_feature_loss_pools_to_common_size():
    s = {"x": torch.arange(8.0).view(1, 1, 2, 2, 2)}  # pooled to 1x1x1 -> mean 3.5
    t = {"x": torch.full((1, 1, 1, 1, 1), 3.5)}
    assert feature_loss(s, t).item() == pytest.approx(0.0, abs=1e-12)


def test_feature_loss_errors():
    with pytest.raises(DistillError, match="same non-empty endpoint names"):
        feature_loss({"a": torch.zeros(1, 2)}, {"b": torch.zeros(1, 2)})
    with pytest.raises(DistillError, match="make_adapters"):
        feature_loss({"a": torch.zeros(1, 2)}, {"a": torch.zeros(1, 3)})


def test_feature_adapter_maps_channels_and_size():
    a = FeatureAdapter(8, 16)
    assert a(torch.randn(2, 8, 4, 6, 6), torch.Size([2, 16, 2, 3, 3])).shape == (2, 16, 2, 3, 3)
    assert a(torch.randn(2, 8)).shape == (2, 16)
    same = FeatureAdapter(4, 4)
    x = torch.randn(1, 4, 2, 2, 2)
    torch.testing.assert_close(same(x), x)  # starts as the identity


# ------------------------------------------------------------------------------------------------ endpoints/adapters


def test_endpoint_outputs_final_names_match_forward():
    torch.manual_seed(0)
    m = TinyBackbone().eval()
    x = _batch()["rgb"]
    logits, feats = endpoint_outputs(m, x, ["pooled", "features", "stage1"])
    torch.testing.assert_close(logits, m(x))
    torch.testing.assert_close(feats["pooled"], m.forward_features(x).mean(dim=(2, 3, 4)))
    assert feats["stage1"].shape == (2, 8, 4, 16, 16)
    one_pass_logits, one_pass = endpoint_outputs(m, x, ["stage2"])
    torch.testing.assert_close(one_pass["stage2"], feats["features"])
    torch.testing.assert_close(one_pass_logits, logits)
    with pytest.raises(DistillError, match="no endpoint"):
        endpoint_outputs(m, x, ["Mixed_5c"])


def test_make_adapters_same_architecture_different_inputs():
    """MARS: flow teacher, RGB student, same architecture: pooled features already match, no adapter needed."""
    student, teacher = TinyBackbone(in_channels=3), TinyBackbone(in_channels=2)
    b = _batch()
    adapters = make_adapters(student, teacher, {"pooled": "pooled", "stage1": "stage1"}, b["rgb"][:1], b["flow"][:1])
    assert len(adapters) == 0


def test_make_adapters_lighter_student():
    student = TinyBackbone(width=4, stride2=1)  # half the channels, a larger last map
    teacher = TinyBackbone(in_channels=2, width=8)
    b = _batch()
    pairs = {"stage2": "stage2", "pooled": "pooled"}
    adapters = make_adapters(student, teacher, pairs, b["rgb"][:1], b["flow"][:1])
    assert sorted(adapters) == ["pooled", "stage2"]
    _, s = endpoint_outputs(student, b["rgb"], list(pairs))
    _, t = endpoint_outputs(teacher, b["flow"], list(pairs.values()))
    assert s["stage2"].shape == (2, 8, 4, 16, 16) and t["stage2"].shape == (2, 16, 2, 8, 8)
    assert adapters["stage2"](s["stage2"], t["stage2"].shape).shape == t["stage2"].shape
    assert adapters["pooled"](s["pooled"]).shape == t["pooled"].shape
    assert torch.isfinite(feature_loss(s, t, adapters))


# ------------------------------------------------------------------------------------------------------------ Distiller


def _distiller(cfg, student_width=4):
    torch.manual_seed(0)
    student = TinyBackbone(width=student_width)
    teacher = TinyBackbone(in_channels=2, width=8)
    b = _batch()
    adapters = make_adapters(student, teacher, cfg.feature_pairs, b["rgb"][:1], b["flow"][:1])
    return Distiller(student, teacher, cfg, adapters)


def test_a_one_logit_student_distils_from_a_one_logit_teacher():
    """DFDC's heads: BCE on the label and the sigmoid KD both give a signal (softmax KD over one logit is always 0)."""
    torch.manual_seed(0)
    student, teacher = TinyBackbone(width=4, num_classes=1), TinyBackbone(in_channels=2, width=8, num_classes=1)
    with torch.no_grad():
        teacher.fc.bias.fill_(2.0)  # a confident teacher
    d = Distiller(student, teacher, DistillConfig(task=1.0, kd=1.0, feature=0.0, temperature=2.0))
    batch = {**_batch(k=2), "label": torch.tensor([1, 0])}
    d.train()
    out = d(batch)
    assert out["logits"].shape == (2, 1) and out["task"].item() > 0.1 and out["kd"].item() > 0.01
    out["kd"].backward()
    assert student.fc.bias.grad.item() < 0  # KD alone pulls the student's logit up, towards the teacher's
    student.zero_grad()
    d(batch)["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.parameters())


def test_teacher_frozen_and_kept_in_eval_mode():
    d = _distiller(DistillConfig())
    d.train()
    assert d.student.training and not d.teacher.training
    assert not any(p.requires_grad for p in d.teacher.parameters())
    assert d.inputs == ("rgb", "flow")


@pytest.mark.parametrize(
    "weights",
    [DistillConfig(), DistillConfig(kd=1.0, feature=0.0), DistillConfig(kd=0.5, pairs={"stage2": "stage2"})],
    ids=["mars", "kd", "kd+stage2"],
)
def test_gradients_reach_only_student_and_adapters(weights):
    d = _distiller(weights)
    d.train()
    out = d(_batch())
    assert set(out) >= {"loss", "task", "kd", "feature", "logits"}
    assert out["loss"].item() == pytest.approx(
        out["task"].item() + weights.kd * out["kd"].item() + weights.feature * out["feature"].item(), rel=1e-5
    )
    out["loss"].backward()
    for name, p in d.student.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for name, p in d.adapters.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in d.teacher.parameters())


def test_teacher_unchanged_after_training_steps():
    d = _distiller(DistillConfig(kd=1.0, pairs={"pooled": "pooled", "stage1": "stage1"}))
    before = {k: v.clone() for k, v in d.teacher.state_dict().items()}  # includes batch-norm running stats
    student_before = {k: v.clone() for k, v in d.student.state_dict().items()}
    opt = torch.optim.SGD(d.trainable_parameters(), lr=0.1, momentum=0.9)
    d.train()
    losses = []
    for step in range(4):
        opt.zero_grad()
        out = d(_batch(seed=step % 2))
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    for k, v in d.teacher.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(v, student_before[k]) for k, v in d.student.state_dict().items())
    assert all(math.isfinite(x) for x in losses)


def test_loss_decreases_toward_teacher():
    """A few steps of feature+KD distillation on one batch move the student toward the teacher."""
    d = _distiller(DistillConfig(task=0.0, kd=1.0, feature=1.0))
    d.student.dropout.p = 0.0
    opt = torch.optim.Adam(d.trainable_parameters(), lr=1e-2)
    batch = _batch()
    d.train()
    first = None
    for _ in range(15):
        opt.zero_grad()
        loss = d(batch)["loss"]
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.7 * first


def test_distill_weights_validation():
    with pytest.raises(ConfigError, match="task_loss"):
        DistillConfig(task_loss="focal")
    with pytest.raises(ConfigError, match="no endpoint pairs"):
        DistillConfig(pairs={})
    with pytest.raises(ConfigError, match="distill.teacher_stream"):
        DistillConfig(teacher_stream="depth")
    with pytest.raises(ConfigError, match="not all 0"):
        DistillConfig(task=0, kd=0, feature=0)
    assert DistillConfig(teacher_stream="rgb").feature_pairs == {"pooled": "pooled"}
    assert DistillConfig(feature=0, kd=1).feature_pairs == {}


def test_bce_task_loss_accepts_indices():
    d = _distiller(DistillConfig(task_loss="bce", feature=0.0, kd=1.0))
    out = d(_batch())
    assert torch.isfinite(out["task"]) and out["task"].item() > 0


# ------------------------------------------------------------------------------------------- with the real backbones


def _real_models_check(student, teacher, pairs, batch, teacher_stream):
    adapters = make_adapters(student, teacher, pairs, batch["rgb"][:1], batch[teacher_stream][:1])
    d = Distiller(student, teacher, DistillConfig(kd=1.0, pairs=pairs, teacher_stream=teacher_stream), adapters)
    _, s = endpoint_outputs(d.student, batch["rgb"], list(pairs))
    _, t = endpoint_outputs(d.teacher, batch[teacher_stream], list(pairs.values()))
    for s_name, t_name in pairs.items():
        mapped = adapters[s_name](s[s_name], t[t_name].shape) if s_name in adapters else s[s_name]
        assert mapped.shape[:2] == t[t_name].shape[:2], (s_name, t_name)
    teacher_before = {k: v.clone() for k, v in d.teacher.state_dict().items()}
    d.train()
    out = d(batch)
    out["loss"].backward()
    assert all(p.grad is None for p in d.teacher.parameters())
    assert all(p.grad is not None for p in d.trainable_parameters())
    assert out["feature"].item() > 0 and out["kd"].item() > 0
    for k, v in d.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    return adapters


def test_i3d_flow_teacher_to_i3d_rgb_student():
    """MARS: same architecture, different inputs; every endpoint already has the teacher's shape."""
    from i3d.models import InceptionI3d

    torch.manual_seed(0)
    pairs = {"pooled": "pooled", "Mixed_4f": "Mixed_4f", "Mixed_5c": "Mixed_5c"}
    student, teacher = InceptionI3d(5, in_channels=3), InceptionI3d(5, in_channels=2)
    adapters = _real_models_check(student, teacher, pairs, _batch(), "flow")
    assert len(adapters) == 0


def test_i3d_teacher_to_small_zoo_student():
    """A lighter R3D-18 learns from an RGB I3D: 1x1x1 adapters map 256/512 channels to 832/1024, pooling the sizes."""
    from i3d.models import InceptionI3d
    from i3d.models.zoo import build_model

    torch.manual_seed(0)
    pairs = {"layer3": "Mixed_4f", "layer4": "Mixed_5c", "pooled": "pooled"}
    adapters = _real_models_check(build_model("r3d_18", 5), InceptionI3d(5, in_channels=3), pairs, _batch(), "rgb")
    assert {k: (a.proj.in_channels, a.proj.out_channels) for k, a in adapters.items()} == {
        "layer3": (256, 832),
        "layer4": (512, 1024),
        "pooled": (512, 1024),
    }


def test_two_stream_teacher_uses_fused_logits_and_flow_features():
    from i3d.models import TwoStreamI3D

    torch.manual_seed(0)
    teacher = TwoStreamI3D(TinyBackbone(in_channels=3), TinyBackbone(in_channels=2))
    d = Distiller(TinyBackbone(), teacher, DistillConfig(kd=1.0, teacher_stream="both", feature_stream="flow"))
    b = _batch()
    out = d(b)
    teacher.eval()
    with torch.no_grad():
        fused = teacher(rgb=b["rgb"], flow=b["flow"])["fused"]
        flow_pooled = teacher.flow.forward_features(b["flow"]).mean(dim=(2, 3, 4))
        _, s = endpoint_outputs(d.student, b["rgb"], ["pooled"])
    torch.testing.assert_close(out["teacher_logits"], fused)
    torch.testing.assert_close(out["feature"], torch.nn.functional.mse_loss(s["pooled"], flow_pooled))
    assert d.inputs == ("rgb", "flow")


# ------------------------------------------------------------------------------------------------------------ configs

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["distill_mars_toy", "distill_kd_toy", "distill_mars_ucf101", "distill_kd_ucf101"])
def test_shipped_configs_load(name):
    cfg, dcfg = load_distill_config(CONFIGS / f"{name}.yaml")
    assert cfg.model.streams == ("rgb",)
    if "mars" in name:
        assert (dcfg.teacher_stream, dcfg.feature, dcfg.kd) == ("flow", 50.0, 0.0)
        assert dict(dcfg.pairs) == {"pooled": "pooled"}
    else:
        assert (dcfg.teacher_stream, dcfg.kd, dcfg.feature) == ("both", 1.0, 0.0)


def test_config_overrides_and_errors(tmp_path):
    cfg, dcfg = load_distill_config(
        CONFIGS / "distill_mars_toy.yaml",
        ["optim.lr=0.5", "distill.kd=2", "distill.pairs={Mixed_4f: Mixed_4f}", "distill.teacher_stream=rgb"],
    )
    assert cfg.optim.lr == 0.5 and dcfg.kd == 2.0 and dict(dcfg.pairs) == {"Mixed_4f": "Mixed_4f"}
    assert distill_inputs(dcfg) == ("rgb",)
    with pytest.raises(ConfigError, match="unknown config key 'distill.alpha'"):
        load_distill_config(CONFIGS / "distill_mars_toy.yaml", ["distill.alpha=1"])
    with pytest.raises(ConfigError, match="distill.kd: expected float, got 'lots'"):
        load_distill_config(CONFIGS / "distill_mars_toy.yaml", ["distill.kd=lots"])
    with pytest.raises(DistillError, match=r"model.streams=\['rgb', 'flow'\]"):
        load_distill_config(CONFIGS / "distill_mars_toy.yaml", ["model.streams=rgb,flow"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {streams: [rgb]}\ndistill: {pairs: [pooled]}\n")
    with pytest.raises(ConfigError, match=f"{bad}:distill:pairs: expected a mapping"):
        load_distill_config(bad)


@pytest.mark.parametrize("name", ["distill_mars_toy", "distill_kd_toy"])
def test_toy_students_get_the_demo_teachers_data_and_budget(name):
    from i3d.config import load_config

    teacher = load_config(CONFIGS / "toy_i3d_two_stream.yaml")
    student, _ = load_distill_config(CONFIGS / f"{name}.yaml")
    assert (student.data, student.optim, student.train) == (teacher.data, teacher.optim, teacher.train)
    assert (student.model.dropout, student.model.bn_momentum) == (teacher.model.dropout, teacher.model.bn_momentum)
