"""i3d.build: the model and optimiser the config describes (BatchNorm momentum, per-stream learning rates, batch norm
input sizes)."""

import pytest
from torch import nn

from i3d.build import build_model_from_config, build_optimizer, check_batch_norm_input
from i3d.config import ConfigError, load_config


def _momenta(model: nn.Module) -> set[float]:
    return {m.momentum for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def test_bn_momentum_zero_keeps_each_architectures_own():
    assert _momenta(build_model_from_config(load_config(overrides=["model.num_classes=3"]))) == {0.01}  # I3D's
    zoo = load_config(overrides=["model.num_classes=3", "model.streams=rgb", "model.rgb.name=r3d_18"])
    assert _momenta(build_model_from_config(zoo)) == {0.1}  # torchvision's


@pytest.mark.parametrize("name", ["i3d", "r3d_18"])
def test_bn_momentum_reaches_every_batchnorm_of_both_streams(name):
    cfg = load_config(overrides=["model.num_classes=3", "model.bn_momentum=0.3", f"model.rgb.name={name}",
                                 f"model.flow.name={name}"])
    model = build_model_from_config(cfg)
    assert _momenta(model.rgb) == {0.3} and _momenta(model.flow) == {0.3}


def test_bn_momentum_out_of_range_names_the_key():
    with pytest.raises(ConfigError, match=r"model.bn_momentum=1.5 must lie in \[0, 1\]"):
        load_config(overrides=["model.bn_momentum=1.5"])


def test_each_stream_learns_at_its_own_lr_scale_under_the_schedule():
    cfg = load_config(overrides=["model.num_classes=3", "model.rgb.lr_scale=2.5", "optim.lr=0.01",
                                 "optim.schedule=cosine"])
    model = build_model_from_config(cfg)
    opt, sched = build_optimizer(cfg, model, steps_per_epoch=10)
    rgb, flow = opt.param_groups
    assert {id(p) for p in rgb["params"]} == {id(p) for p in model.rgb.parameters()}
    assert {id(p) for p in flow["params"]} == {id(p) for p in model.flow.parameters()}
    assert (rgb["lr"], flow["lr"]) == pytest.approx((0.025, 0.01))
    for _ in range(200):  # half of the 40 x 10 cosine steps: both at half their peak, still 2.5 : 1
        opt.step()
        sched.step()
    assert (rgb["lr"], flow["lr"]) == pytest.approx((0.0125, 0.005))


def test_lr_scale_must_be_positive():
    with pytest.raises(ConfigError, match="model.rgb.lr_scale=0.0 and model.flow.lr_scale=1.0 must be positive"):
        load_config(overrides=["model.rgb.lr_scale=0"])


def test_a_batch_that_leaves_batch_norm_one_value_per_channel_is_refused_before_training():
    """8 x 32 x 32 clips leave I3D's Mixed_5 one position: a batch of 1 has one value per channel there."""
    small = ["model.num_classes=2", "model.streams=rgb", "data.num_frames=8", "data.crop_size=32", "train.batch_size=1"]
    model = build_model_from_config(load_config(overrides=small))
    message = (r"train.batch_size=1 with 8x32x32 clips leaves the rgb stream's Mixed_5b.b0.bn one value per channel "
               r"\(input 1x256x1x1x1\), .*set train.batch_size=2 or more")
    with pytest.raises(ConfigError, match=message):
        check_batch_norm_input(load_config(overrides=small), model)
    check_batch_norm_input(load_config(overrides=[*small, "train.batch_size=2"]), model)
    check_batch_norm_input(load_config(overrides=[*small, "data.num_frames=16"]), model)  # 2 positions per clip
    assert all(p.device.type == "cpu" for p in model.parameters())  # the check ran on a copy


def test_the_batch_norm_check_covers_the_zoo_models():
    cfg = load_config(overrides=["model.num_classes=2", "model.streams=flow", "model.flow.name=res34",
                                 "data.num_frames=8", "data.crop_size=32", "train.batch_size=1"])
    with pytest.raises(ConfigError, match=r"the flow stream's layer4\.0\..* \(input 1x512x1x1x1\)"):
        check_batch_norm_input(cfg, build_model_from_config(cfg))
