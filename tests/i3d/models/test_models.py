"""InceptionI3d and TwoStreamI3D: TF "SAME" semantics, shapes at any input size, gradients, fusion."""

import pytest
import torch
import torch.nn.functional as F

from i3d.models import InceptionI3d, TwoStreamI3D
from i3d.models.inception import MaxPool3dSame, Unit3D, same_padding


@pytest.fixture(scope="module")
def rgb_net() -> InceptionI3d:
    torch.manual_seed(0)
    return InceptionI3d().eval()


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (8, 3, 2, (0, 1)),  # output 4 needs (4-1)*2+3 = 9 inputs: the odd pixel goes at the end
        (224, 7, 2, (2, 3)),  # Conv3d_1a on 224 px: not PyTorch's symmetric (3, 3)
        (7, 3, 2, (1, 1)),
        (16, 3, 1, (1, 1)),
        (5, 1, 1, (0, 0)),
        (1, 2, 2, (0, 1)),  # MaxPool3d_5a on a single time step
        (3, 7, 2, (3, 3)),  # kernel larger than the input: (2-1)*2+7-3 = 6
    ],
)
def test_same_padding_matches_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_conv_pads_the_extra_pixel_at_the_end():
    unit = Unit3D(1, 1, kernel=(1, 1, 3), stride=(1, 1, 2)).eval()
    with torch.no_grad():
        unit.conv.weight.fill_(1.0)
    x = torch.ones(1, 1, 1, 1, 4)
    # TF: windows [x0 x1 x2] and [x2 x3 pad] -> 3, 2 (PyTorch's padding=1 would give [pad x0 x1], [x1 x2 x3] -> 2, 3)
    bn_scale = 1 / (1 + 1e-3) ** 0.5
    torch.testing.assert_close(unit(x).flatten(), torch.tensor([3.0, 2.0]) * bn_scale)


def test_max_pool_padding_never_wins():
    x = torch.tensor([-5.0, -4.0, -3.0, -2.0]).reshape(1, 1, 1, 1, 4)  # all negative: a zero pad would win
    out = MaxPool3dSame((1, 1, 3), (1, 1, 2))(x)
    torch.testing.assert_close(out.flatten(), torch.tensor([-3.0, -2.0]))


def test_deepmind_input_shapes_and_logits_average_seven_time_steps(rgb_net):
    x = torch.randn(1, 3, 64, 224, 224).clamp(-1, 1)
    with torch.no_grad():
        ends = rgb_net.forward_endpoints(x, ["Conv3d_1a_7x7", "Mixed_4f", "Mixed_5c", "Logits"])
        features = ends["Mixed_5c"]
        assert ends["Conv3d_1a_7x7"].shape == (1, 64, 32, 112, 112)
        assert ends["Mixed_4f"].shape == (1, 832, 16, 14, 14)
        assert features.shape == (1, 1024, 8, 7, 7)
        # DeepMind's head by hand: avg pool (2,7,7) VALID -> 1x1x1 conv -> 7 time steps -> their mean
        per_step = rgb_net.logits(F.avg_pool3d(features, (2, 7, 7), stride=1))
    assert per_step.shape == (1, 400, 7, 1, 1)
    assert ends["Logits"].shape == (1, 400)
    torch.testing.assert_close(ends["Logits"], per_step.mean(dim=(2, 3, 4)))
    assert torch.isfinite(ends["Logits"]).all()


@pytest.mark.parametrize(
    ("shape", "feature_shape"),
    [
        ((1, 2, 16, 112, 112), (1, 1024, 2, 4, 4)),
        ((1, 2, 8, 160, 200), (1, 1024, 1, 5, 7)),
        ((1, 3, 1, 112, 112), (1, 1024, 1, 4, 4)),  # a single frame
        ((2, 3, 3, 33, 47), (2, 1024, 1, 2, 2)),
    ],
)
def test_small_and_odd_inputs(shape, feature_shape):
    torch.manual_seed(0)
    net = InceptionI3d(num_classes=7, in_channels=shape[1]).eval()
    x = torch.rand(shape) * 2 - 1
    with torch.no_grad():
        features = net.forward_features(x)
        logits = net.forward_head(features)
    assert features.shape == feature_shape
    assert logits.shape == (shape[0], 7)
    assert torch.isfinite(logits).all()


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    net = InceptionI3d(num_classes=5, in_channels=2).train()
    loss = F.cross_entropy(net(torch.randn(2, 2, 2, 16, 16)), torch.tensor([1, 3]))
    loss.backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, no_grad
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_reset_classifier_keeps_backbone():
    net = InceptionI3d().eval()
    before = net.Mixed_5c.b1b.conv.weight.clone()
    net.reset_classifier(101)
    assert net.num_classes == 101 and net.logits.weight.shape == (101, 1024, 1, 1, 1)
    assert torch.equal(net.Mixed_5c.b1b.conv.weight, before)
    with torch.no_grad():
        assert net(torch.randn(1, 3, 2, 32, 32)).shape == (1, 101)


def test_forward_endpoints_returns_only_what_was_asked(rgb_net):
    assert rgb_net.endpoint_names[0] == "Conv3d_1a_7x7" and rgb_net.endpoint_names[-2:] == ("Mixed_5c", "Logits")
    with torch.no_grad():
        ends = rgb_net.forward_endpoints(torch.randn(1, 3, 4, 32, 32), ["Mixed_3b", "MaxPool3d_2a_3x3"])
    assert set(ends) == {"Mixed_3b", "MaxPool3d_2a_3x3"}
    assert ends["MaxPool3d_2a_3x3"].shape == (1, 64, 2, 8, 8) and ends["Mixed_3b"].shape == (1, 256, 2, 4, 4)
    with pytest.raises(ValueError, match="Mixed_9z"):
        rgb_net.forward_endpoints(torch.randn(1, 3, 4, 32, 32), ["Mixed_9z"])


def test_wrong_channel_count_is_a_clear_error(rgb_net):
    with pytest.raises(ValueError, match=r"in_channels=3.*\(1, 2, 4, 32, 32\)"):
        rgb_net(torch.randn(1, 2, 4, 32, 32))


def _two_stream(weights):
    torch.manual_seed(0)
    return TwoStreamI3D(InceptionI3d(10, 3), InceptionI3d(10, 2), weights=weights).eval()


def test_fused_is_the_weighted_average():
    net = _two_stream((2.0, 1.0))
    rgb, flow = torch.randn(1, 3, 4, 32, 32), torch.randn(1, 2, 4, 32, 32)
    with torch.no_grad():
        out = net(rgb=rgb, flow=flow)
        alone = net.rgb(rgb), net.flow(flow)
    assert set(out) == {"rgb", "flow", "fused"}
    torch.testing.assert_close(out["rgb"], alone[0])
    torch.testing.assert_close(out["flow"], alone[1])
    torch.testing.assert_close(out["fused"], (2 * alone[0] + alone[1]) / 3)


def test_one_stream_alone():
    net = TwoStreamI3D(None, InceptionI3d(10, 2)).eval()
    with torch.no_grad():
        out = net(flow=torch.randn(1, 2, 4, 32, 32))
    assert set(out) == {"flow", "fused"}
    torch.testing.assert_close(out["fused"], out["flow"])
    assert all(k.startswith("flow.") for k in net.state_dict())
    with pytest.raises(ValueError, match="no rgb stream"):
        net(rgb=torch.randn(1, 3, 4, 32, 32))
    with pytest.raises(ValueError, match="at least one"):
        net()


def test_two_stream_state_dict_keys_and_reset_classifier():
    net = _two_stream((1.0, 1.0))
    keys = net.state_dict().keys()
    assert "rgb.Conv3d_1a_7x7.conv.weight" in keys and "flow.logits.bias" in keys
    net.reset_classifier(3)
    with torch.no_grad():
        out = net(rgb=torch.randn(1, 3, 2, 32, 32), flow=torch.randn(1, 2, 2, 32, 32))
    assert out["fused"].shape == (1, 3)
