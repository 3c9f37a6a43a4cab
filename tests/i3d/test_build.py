"""i3d.build: the model the config describes (here: BatchNorm momentum)."""

import pytest
from torch import nn

from i3d.build import build_model_from_config
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
                                 f"model.flow.name={name}"])  # fmt: skip
    model = build_model_from_config(cfg)
    assert _momenta(model.rgb) == {0.3} and _momenta(model.flow) == {0.3}


def test_bn_momentum_out_of_range_names_the_key():
    with pytest.raises(ConfigError, match=r"model.bn_momentum=1.5 must lie in \[0, 1\]"):
        load_config(overrides=["model.bn_momentum=1.5"])
