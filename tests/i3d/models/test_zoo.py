"""The model zoo: every model builds by name, has the common interface, the right shapes and full gradients."""

import pytest
import torch

from i3d.models.contracts import CONTRACTS, contract_for
from i3d.models.video_resnet import ZeroPadShortcut, resnet3d_34
from i3d.models.zoo import MODELS, build_model

NAMES = ["i3d", "res34", "mc3_112", "mc3_224", "r2p1_112", "r3d_18", "mc3_18", "r2plus1d_18"]
# (B, C, T, H, W) inputs for the gradient test: small, yet no BatchNorm may see a single value per channel (at
# 64 px I3D's Mixed_5 max-pool branch is constant over its 2x2 map and its BN weight gets no gradient)
GRAD_INPUT = {"i3d": (1, 3, 8, 96, 96)}


def test_zoo_lists_exactly_the_documented_models_and_each_has_a_contract():
    assert sorted(MODELS) == sorted(NAMES)
    assert sorted(CONTRACTS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_at_contract_size_or_small(name):
    contract = contract_for(name)
    size = contract.crop_size if contract.crop_size == 112 else 64  # 224 px on 2 shared CPU cores is too slow
    model = build_model(name, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 8, size, size))
    assert out.shape == (1, 3)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
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
    with pytest.raises(ValueError, match="shortcut='C'"):
        resnet3d_34(shortcut="C")


def test_res34_shortcut_gradient_ours_and_hara_s():
    """Same forward pass; Hara et al.'s zero-pad shortcut (built from `.data`) passes no gradient back, ours does."""
    from i3d.models.video_resnet import ZeroPadShortcut, resnet3d_34

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
