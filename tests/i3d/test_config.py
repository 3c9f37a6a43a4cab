import dataclasses
from pathlib import Path

import pytest
import yaml

from i3d.config import Config, ConfigError, config_from_dict, config_to_dict, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_are_deepmind_recipe():
    cfg = Config()
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.1, 0.9, 1e-7)
    assert cfg.optim.schedule == "step" and cfg.model.dropout == 0.5
    assert cfg.model.streams == ("rgb", "flow") and cfg.data.num_frames == 64 and cfg.data.crop_size == 224
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 1.0


def test_yaml_differences_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1\n  milestones: [2, 4]\nmodel:\n  num_classes: 101\n  rgb:\n    name: i3d\n")
    cfg = load_config(path, ["optim.lr=0.01", "model.streams=rgb", "model.flow.pretrained=x.pt", "train.amp=bf16"])
    assert cfg.optim.lr == 0.01 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.milestones == (2.0, 4.0)
    assert cfg.model.num_classes == 101 and cfg.model.streams == ("rgb",)
    assert cfg.model.flow.pretrained == "x.pt" and cfg.train.amp == "bf16"
    assert cfg.optim.momentum == 0.9  # untouched default
    assert load_config(None, ["model.streams=[rgb, flow]"]).model.streams == ("rgb", "flow")


@pytest.mark.parametrize(
    "override, words",
    [
        ("optim.lrr=1", ["optim.lrr", "lr"]),
        ("optim.lr=fast", ["expected float", "fast"]),
        ("train.epochs=1.5", ["expected int"]),
        ("train.progress=3", ["expected bool"]),
        ("optim.lr.x=1", ["not a section"]),
        ("optim.lr", ["section.key=value"]),
        ("model.streams=rgb,depth", ["model.streams"]),
        ("train.amp=fp8", ["train.amp"]),
        ("data.dataset=imagenet", ["data.dataset"]),
        ("train.eval_every=0", ["train.eval_every=0", "must be positive"]),  # was a ZeroDivisionError after epoch 1
        ("train.log_every=0", ["train.log_every=0"]),
    ],
)
def test_bad_overrides_name_the_key(override, words):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    for word in words:
        assert word in str(e.value)


def test_bad_yaml_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*learning_rate"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_dict_and_file(tmp_path):
    cfg = load_config(None, ["optim.milestones=[3, 6]", "model.fusion_weights=[1, 2]", "data.store_root=/s"])
    d = config_to_dict(cfg)
    assert d["optim"]["milestones"] == [3.0, 6.0] and d["model"]["fusion_weights"] == [1.0, 2.0]
    assert config_from_dict(d) == cfg
    saved = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert config_from_dict(yaml.safe_load(saved.read_text())) == cfg
    assert load_config(saved) == cfg


@pytest.mark.parametrize("name", ["ucf101_i3d_two_stream.yaml", "kinetics400_i3d_two_stream.yaml", "test_tiny.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert set(cfg.model.streams) <= {"rgb", "flow"}
    if name.startswith("ucf101"):
        assert cfg.model.num_classes == 101 and cfg.data.num_frames == 64 and cfg.data.crop_size == 224
        assert cfg.model.rgb.pretrained and cfg.model.flow.pretrained
    if name.startswith("kinetics"):
        assert cfg.model.num_classes == 400 and cfg.data.dataset == "kinetics"
