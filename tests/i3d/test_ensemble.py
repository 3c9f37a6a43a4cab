"""i3d.ensemble: model specs, the contract of a run, per-model inputs, probabilities, weighted mean, failures."""

import math

import numpy as np
import pytest
import torch

from i3d import ensemble as en
from i3d.config import apply_overrides, config_to_dict, load_config
from i3d.models.contracts import InputContract, prepare
from i3d.train import build_model_from_config


def tiny_cfg(name="mc3_18", normalization="kinetics", num_classes=1, crop=32, frames=4, clips=1):
    return apply_overrides(load_config(), [
        "model.streams=rgb", f"model.rgb.name={name}", f"model.num_classes={num_classes}",
        f"data.normalization={normalization}", f"data.crop_size={crop}", f"data.num_frames={frames}",
        f"data.eval_num_frames={frames}", f"data.eval_num_clips={clips}",
    ])  # fmt: skip


def save_constant_checkpoint(path, bias, cfg=None, classes=("REAL", "FAKE")):
    """A checkpoint whose model outputs `bias` whatever the input (head weights zeroed)."""
    cfg = cfg or tiny_cfg(num_classes=len(np.atleast_1d(bias)))
    model = build_model_from_config(cfg)
    with torch.no_grad():
        model.rgb.fc.weight.zero_()
        model.rgb.fc.bias.copy_(torch.as_tensor(np.atleast_1d(bias), dtype=torch.float32))
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg), "classes": list(classes)}, path)
    return path


def test_parse_model_spec():
    assert en.parse_model_spec("runs/a/best.pt:2.5") == (en.Path("runs/a/best.pt"), 2.5)
    assert en.parse_model_spec("runs/a/best.pt") == (en.Path("runs/a/best.pt"), 1.0)
    assert en.parse_model_spec("C:/runs/best.pt") == (en.Path("C:/runs/best.pt"), 1.0)  # not a weight
    with pytest.raises(en.EnsembleError, match="weight -1 must be >= 0"):
        en.parse_model_spec("best.pt:-1")


def test_contract_of_run_scales_the_zoo_contract_or_uses_the_saved_one():
    c = en.contract_of_run(tiny_cfg("mc3_112", "imagenet", crop=32, frames=6), {})
    assert c == InputContract(crop_size=32, short_side=37, normalization="imagenet", min_frames=6)  # 128*32/112
    full = en.contract_of_run(tiny_cfg("mc3_112", "imagenet", crop=112, frames=32), {})
    assert (full.crop_size, full.short_side, full.min_frames) == (112, 128, 32)  # the zoo contract itself
    saved = {"input_contract": {"crop_size": 40, "short_side": 48, "normalization": "none", "in_channels": 3,
                                "min_frames": 8}}  # fmt: skip
    assert en.contract_of_run(tiny_cfg(), saved) == InputContract(40, 48, "none", 3, 8)


def _member(contract, clip_frames=4, num_clips=1, binary=True):
    return en.Member("m0", en.Path("x.pt"), 1.0, None, contract, clip_frames, num_clips, ["REAL", "FAKE"], binary)


def test_member_clips_follow_each_contract_and_loop_short_videos():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)  # 3 frames, shorter than the clip
    i3d = _member(InputContract(32, 40, "i3d", min_frames=4))
    raw = _member(InputContract(24, 30, "none", min_frames=4))
    a, b = en.member_clips(frames, i3d), en.member_clips(frames, raw)
    assert a.shape == (1, 3, 4, 32, 32) and b.shape == (1, 3, 4, 24, 24)
    assert torch.equal(a[0], prepare(frames[[0, 1, 2, 0]], i3d.contract))  # looped from the start
    assert a.min() >= -1 and a.max() <= 1 and b.max() > 200  # [-1, 1] vs raw 0-255: each its own normalisation
    long = rng.integers(0, 256, (20, 40, 48, 3), dtype=np.uint8)
    two = en.member_clips(long, _member(InputContract(32, 40, "i3d", min_frames=4), num_clips=2))
    assert torch.equal(two[1], prepare(long[12:16], InputContract(32, 40, "i3d", min_frames=4)))  # starts 4 and 12
    whole = en.member_clips(long, _member(InputContract(32, 40, "i3d", min_frames=4), clip_frames=0))
    assert whole.shape == (1, 3, 20, 32, 32)


def test_probabilities_and_weighted_mean_by_hand():
    np.testing.assert_allclose(en.to_probabilities(torch.tensor([math.log(3.0)]), binary=True), [0.25, 0.75])
    np.testing.assert_allclose(en.to_probabilities(torch.tensor([0.0, math.log(3.0)]), binary=False), [0.25, 0.75])
    member_probs = np.array([[[0.5, 0.5], [0.25, 0.75]]])  # 1 video, 2 models
    np.testing.assert_allclose(en.ensemble_mean(member_probs, [1.0, 3.0]), [[0.3125, 0.6875]])  # (.5 + 3 * .75) / 4
    np.testing.assert_allclose(en.prior_vector(None, ["REAL", "FAKE"]), [0.5, 0.5])
    np.testing.assert_allclose(en.prior_vector(0.2, ["REAL", "FAKE"]), [0.8, 0.2])
    np.testing.assert_allclose(en.prior_vector(None, ["a", "b", "c"]), [1 / 3] * 3)
    with pytest.raises(en.EnsembleError, match="--prior 1.5"):
        en.prior_vector(1.5, ["REAL", "FAKE"])


def test_load_member_rebuilds_from_the_saved_config(tmp_path):
    path = save_constant_checkpoint(tmp_path / "a.pt", math.log(3.0))
    m = en.load_member(path, 2.0, "m3")
    assert (m.name, m.weight, m.binary, m.classes, m.clip_frames) == ("m3", 2.0, True, ["REAL", "FAKE"], 4)
    assert m.contract == InputContract(32, 37, "kinetics", 3, 4) and not m.model.training
    frames = np.random.default_rng(1).integers(0, 256, (6, 40, 50, 3), dtype=np.uint8)
    np.testing.assert_allclose(en.predict_frames([m], frames), [[0.25, 0.75]], atol=1e-6)


def test_softmax_and_sigmoid_members_average_when_classes_agree(tmp_path):
    binary = en.load_member(save_constant_checkpoint(tmp_path / "b.pt", 0.0), 1.0, "m0")
    two_way = en.load_member(save_constant_checkpoint(tmp_path / "s.pt", [0.0, math.log(3.0)]), 1.0, "m1")
    frames = np.zeros((4, 40, 40, 3), np.uint8)
    probs = en.predict_frames([binary, two_way], frames)
    np.testing.assert_allclose(probs, [[0.5, 0.5], [0.25, 0.75]], atol=1e-6)
    other = en.load_member(save_constant_checkpoint(tmp_path / "o.pt", [0.0, 0.0], classes=("cat", "dog")), 1.0)
    with pytest.raises(en.EnsembleError, match=r"predicts \['cat', 'dog'\]"):
        en.check_members([binary, other])


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(en.EnsembleError, match="missing.pt not found"):
        en.load_member(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(en.EnsembleError, match="junk.pt is not a readable checkpoint"):
        en.load_member(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "nocfg.pt")
    with pytest.raises(en.EnsembleError, match="no 'model' and 'config'"):
        en.load_member(tmp_path / "nocfg.pt")
    flow_only = apply_overrides(tiny_cfg(), ["model.streams=flow"])
    torch.save({"model": {}, "config": config_to_dict(flow_only)}, tmp_path / "flow.pt")
    with pytest.raises(en.EnsembleError, match="has no RGB stream"):
        en.load_member(tmp_path / "flow.pt")


def test_each_video_is_decoded_once_at_the_largest_short_side(tmp_path, monkeypatch):
    small = en.load_member(save_constant_checkpoint(tmp_path / "a.pt", 0.0), 1.0, "m0")  # short side 37
    big = en.load_member(save_constant_checkpoint(tmp_path / "b.pt", 0.0, tiny_cfg(crop=48)), 1.0, "m1")  # 55
    calls = []

    def fake_read_video(path, *, fps, short_side):
        calls.append((path, short_side))
        if path.name == "bad.mp4":
            raise RuntimeError("moov atom not found")
        return np.zeros((5, short_side, short_side + 10, 3), np.uint8), {}

    monkeypatch.setattr(en, "read_video", fake_read_video)
    videos = [("a", tmp_path / "a.mp4"), ("bad", tmp_path / "bad.mp4"), ("c", tmp_path / "c.mp4")]
    result = en.predict_videos([small, big], videos, prior=0.9)
    assert calls == [(p, 55) for _, p in videos]
    assert result.filenames == ["a.mp4", "bad.mp4", "c.mp4"] and list(result.errors) == ["bad.mp4"]
    assert "moov atom" in result.errors["bad.mp4"]
    np.testing.assert_allclose(result.probs[:, 1], [0.5, 0.9, 0.5], atol=1e-6)
    assert result.member_probs.shape == (3, 2, 2)
