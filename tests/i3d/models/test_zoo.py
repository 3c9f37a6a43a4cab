"""The model zoo: one table entry per model (builder, input contract, weight loader), each building from a run
config with every field honoured, with the common interface, the right shapes and full gradients; the contracts
produce their documented value ranges and the DFDC recipes follow them."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from i3d.build import build_backbone
from i3d.config import StreamConfig, load_config
from i3d.data.spec import InputSpec, InputSpecError
from i3d.data.transforms import stream_input
from i3d.models.pretrained import load_i3d, load_video_resnet
from i3d.models.video_resnet import ZeroPadShortcut, resnet3d_34
from i3d.models.zoo import MODELS, build_model, contract_for

# Published contracts, written out here so a wrong constant in the table cannot agree with itself:
# (crop, short side, normalisation, clip frames)
DOCUMENTED = {
    "i3d": (224, 256, "i3d", 64),
    "res34": (224, 256, "none", 32),
    "mc3_112": (112, 128, "imagenet", 32),
    "mc3_224": (224, 256, "imagenet", 32),
    "r2p1_112": (112, 128, "imagenet", 32),
    "r3d_18": (112, 128, "kinetics", 16),
    "mc3_18": (112, 128, "kinetics", 16),
    "r2plus1d_18": (112, 128, "kinetics", 16),
}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
KINETICS = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
DOCUMENTED_RANGE = {"i3d": (-1.0, 1.0), "none": (0.0, 255.0), "imagenet": (-2.118, 2.640), "kinetics": (-1.895, 2.873)}
ARCHITECTURES = ["i3d", "res34", "mc3_112", "r2p1_112", "r3d_18"]  # one name per builder; the others share one
# (B, C, T, H, W) inputs for the gradient test: small, yet no BatchNorm may see a single value per channel (at
# 64 px I3D's Mixed_5 max-pool branch is constant over its 2x2 map and its BN weight gets no gradient)
GRAD_INPUT = {"i3d": (1, 3, 8, 96, 96)}


def test_the_table_lists_exactly_the_documented_models():
    assert sorted(MODELS) == sorted(DOCUMENTED)
    assert {MODELS[n].build for n in ARCHITECTURES} == {e.build for e in MODELS.values()}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_entry_builds_from_a_config_with_its_dropout_runs_and_has_its_contract(name):
    net = build_backbone("rgb", StreamConfig(name=name), num_classes=3, dropout=0.3).eval()
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(m.p == 0.3 for m in drops)  # model.dropout reaches every network
    with torch.no_grad():
        out = net(torch.randn(1, 3, 4, 32, 32))
    assert out.shape == (1, 3) and torch.isfinite(out).all()
    entry = MODELS[name]
    assert isinstance(entry.contract, InputSpec) and entry.contract == contract_for(name)
    crop, short_side, normalization, frames = DOCUMENTED[name]
    c = entry.contract
    assert (c.crop_size, c.short_side, c.normalization, c.num_frames, c.eval_num_frames) == (
        crop, short_side, normalization, frames, frames)
    assert entry.load_weights is (load_i3d if name == "i3d" else load_video_resnet)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=1).train()
    model(torch.randn(*GRAD_INPUT.get(name, (1, 3, 8, 64, 64)))).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert zero == []


@pytest.mark.parametrize("name", ["res34", "r2p1_112"])
def test_common_interface(name):
    model = build_model(name, num_classes=5, in_channels=2).eval()
    x = torch.randn(1, 2, 8, 48, 48)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[:2] == (1, model.num_features) and model.num_features == 512
        torch.testing.assert_close(model.forward_head(features), model(x))
        ends = model.forward_endpoints(x, ["layer2", "Logits"])
        assert list(ends) == ["layer2", "Logits"]
        assert ends["layer2"].shape[1] == 128
        torch.testing.assert_close(ends["Logits"], model(x))
        model.reset_classifier(1)
        assert model(x).shape == (1, 1)
    assert set(model.endpoint_names) == {"stem", "layer1", "layer2", "layer3", "layer4", "Logits"}
    with pytest.raises(ValueError, match="Mixed_5c"):
        model.forward_endpoints(x, ["Mixed_5c"])


def test_flow_input_replaces_the_first_conv_only():
    rgb, flow = build_model("mc3_112", 1), build_model("mc3_112", 1, in_channels=2)
    assert rgb.stem[0].weight.shape[1] == 3 and flow.stem[0].weight.shape[1] == 2
    assert rgb.stem[0].weight.shape[2:] == flow.stem[0].weight.shape[2:] == (3, 7, 7)
    assert len(rgb.state_dict()) == len(flow.state_dict())


def test_res34_is_hara_et_al():
    model = resnet3d_34(num_classes=400)
    # [3, 4, 6, 3] basic blocks, 7x7x7 stem of stride (1, 2, 2) followed by a 3x3x3 max-pool of stride 2
    assert [len(layer) for layer in (model.layer1, model.layer2, model.layer3, model.layer4)] == [3, 4, 6, 3]
    assert model.stem[0].kernel_size == (7, 7, 7) and model.stem[0].stride == (1, 2, 2)
    assert isinstance(model.stem[3], torch.nn.MaxPool3d) and model.stem[3].stride == 2
    assert isinstance(model.layer2[0].downsample, ZeroPadShortcut)
    # by hand: stem 64*3*7^3 + BN, then per layer (first conv + other 3x3x3 convs + BNs), then fc 512*400 + 400;
    # no shortcut parameters (zero-padding "A")
    stem = 64 * 3 * 343 + 128
    layers = sum(c_in * c * 27 + (2 * n - 1) * c * c * 27 + 2 * n * 2 * c
                 for c_in, c, n in [(64, 64, 3), (64, 128, 4), (128, 256, 6), (256, 512, 3)])
    assert sum(p.numel() for p in model.parameters()) == stem + layers + 512 * 400 + 400 == 63_544_912
    with torch.no_grad():
        ends = model.eval().forward_endpoints(torch.randn(1, 3, 16, 64, 64), ["stem", "layer4"])
    assert ends["stem"].shape == (1, 64, 8, 16, 16)  # the max-pool halves time too
    assert ends["layer4"].shape == (1, 512, 1, 2, 2)


def test_zero_pad_shortcut_subsamples_and_pads():
    x = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4, 4)
    y = ZeroPadShortcut(out_channels=5, stride=2)(x)
    assert y.shape == (1, 5, 2, 2, 2)
    torch.testing.assert_close(y[:, :2], x[:, :, ::2, ::2, ::2])
    assert (y[:, 2:] == 0).all()


def test_bad_names_and_sizes_say_what_to_do():
    with pytest.raises(ValueError, match="unknown model 'resnet50'.*mc3_112"):
        build_model("resnet50", 2)
    with pytest.raises(ValueError, match="num_classes=0"):
        build_model("mc3_112", 0)
    with pytest.raises(ValueError, match="unknown model 'resnet50'"):
        contract_for("resnet50")
    with pytest.raises(ValueError, match="shortcut='C'"):
        resnet3d_34(shortcut="C")


def test_res34_shortcut_gradient_ours_and_hara_s():
    """Same forward pass; Hara et al.'s zero-pad shortcut (built from `.data`) passes no gradient back, ours does."""
    torch.manual_seed(0)
    ours, theirs = resnet3d_34(num_classes=2), resnet3d_34(num_classes=2, detach_shortcut=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 8, 32, 32)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))
    shortcut = ZeroPadShortcut(8, 2)
    inp = torch.randn(1, 4, 4, 4, 4, requires_grad=True)
    shortcut(inp).sum().backward()
    assert inp.grad.abs().sum() > 0
    detached = torch.randn(1, 4, 4, 4, 4, requires_grad=True)
    assert not ZeroPadShortcut(8, 2, detach=True)(detached).requires_grad


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_black_and_white_frames_hit_the_documented_extremes(name):
    contract = contract_for(name)
    frames = np.zeros((2, 40, 50, 3), np.uint8)
    frames[1] = 255
    x = stream_input("rgb", frames, 0, 0, 32, normalization=contract.normalization)[0]
    assert x.shape == (3, 2, 32, 32) and x.dtype == np.float32
    black, white = x[:, 0, 0, 0], x[:, 1, 0, 0]  # per channel
    if contract.normalization == "i3d":
        expected_black, expected_white = np.full(3, -1.0), np.full(3, 1.0)
    elif contract.normalization == "none":
        expected_black, expected_white = np.zeros(3), np.full(3, 255.0)
    else:
        mean, std = np.array(IMAGENET if contract.normalization == "imagenet" else KINETICS)
        expected_black, expected_white = -mean / std, (1 - mean) / std
    np.testing.assert_allclose(black, expected_black, rtol=1e-5)
    np.testing.assert_allclose(white, expected_white, rtol=1e-5)
    low, high = DOCUMENTED_RANGE[contract.normalization]
    assert x.min() == pytest.approx(low, abs=1e-3) and x.max() == pytest.approx(high, abs=1e-3)


def test_specs_are_validated():
    with pytest.raises(InputSpecError, match="normalization"):
        InputSpec(normalization="zscore")
    with pytest.raises(InputSpecError, match="larger than short_side"):
        InputSpec(crop_size=256, short_side=128)


DFDC_CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs").glob("dfdc_*.yaml"))


def test_there_are_seven_dfdc_recipes_two_with_cutmix():
    assert len(DFDC_CONFIGS) == 7
    assert sum("cutmix_alpha" in yaml.safe_load(p.read_text())["train"] for p in DFDC_CONFIGS) == 2


@pytest.mark.parametrize("path", DFDC_CONFIGS, ids=lambda p: p.stem)
def test_dfdc_recipes_follow_their_models_contracts(path):
    recipe = yaml.safe_load(path.read_text())
    name = recipe["model"]["rgb"]["name"]
    contract = contract_for(name)
    data = recipe["data"]
    assert recipe["model"]["num_classes"] == 1 and recipe["model"]["streams"] == ["rgb"]
    assert (data["crop_size"], data["normalization"]) == (contract.crop_size, contract.normalization)
    assert data["num_frames"] == data["eval_num_frames"] == contract.num_frames
    assert data["store_root"].endswith(f"h5_{contract.short_side}")
    cfg = load_config(path)  # the trainer's DFDC hooks (dfdc index, sampler, CutMix) exist: the recipe loads
    assert (cfg.data.crop_size, cfg.data.normalization) == (contract.crop_size, contract.normalization)


def test_torchvision_loads_only_when_a_resnet_is_built():
    """Its video models cost about a second to import: tools and workers that build I3D must not pay it."""
    code = ("import sys, i3d.train, i3d.inference.predict, i3d.inference.ensemble\n"
            "assert not any(m.startswith('torchvision') for m in sys.modules), 'imported with the zoo'\n"
            "from i3d.models.zoo import build_model\n"
            "build_model('r3d_18', 2)\n"
            "assert 'torchvision.models.video' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])
