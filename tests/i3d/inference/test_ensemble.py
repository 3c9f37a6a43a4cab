"""i3d.inference.ensemble: model specs, each member's input from its own spec, probabilities, mean, failures."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from flow.store_writer import as_stored
from i3d.build import build_model_from_config
from i3d.config import apply_overrides, config_to_dict, load_config
from i3d.data import transforms as T
from i3d.data.spec import InputSpec
from i3d.inference import ensemble as en
from i3d.inference.predict import video_inputs

SPEC = InputSpec(short_side=40, crop_size=32, num_frames=4, eval_num_frames=4, normalization="kinetics")


def tiny_cfg(name="mc3_18", normalization="kinetics", num_classes=1, streams="rgb"):
    return apply_overrides(load_config(), [
        f"model.streams={streams}", f"model.rgb.name={name}", f"model.flow.name={name}",
        f"model.num_classes={num_classes}", f"data.normalization={normalization}", "data.crop_size=32",
        "data.num_frames=4", "data.eval_num_frames=4",
    ])


def save_constant_checkpoint(path, bias, cfg=None, classes=("REAL", "FAKE"), spec=SPEC):
    """A checkpoint whose model outputs `bias` whatever the input (head weights zeroed)."""
    cfg = cfg or tiny_cfg(num_classes=len(np.atleast_1d(bias)))
    model = build_model_from_config(cfg)
    with torch.no_grad():
        for s in model.streams:
            getattr(model, s).fc.weight.zero_()
            getattr(model, s).fc.bias.copy_(torch.as_tensor(np.atleast_1d(bias), dtype=torch.float32))
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg), "classes": list(classes),
                "input_spec": spec.to_dict()}, path)
    return path


def test_parse_model_spec():
    assert en.parse_model_spec("runs/a/best.pt:2.5") == (None, en.Path("runs/a/best.pt"), 2.5)
    assert en.parse_model_spec("runs/a/best.pt") == (None, en.Path("runs/a/best.pt"), 1.0)
    assert en.parse_model_spec("C:/runs/best.pt") == (None, en.Path("C:/runs/best.pt"), 1.0)  # not a weight
    with pytest.raises(en.EnsembleError, match="weight -1 must be >= 0"):
        en.parse_model_spec("best.pt:-1")


def test_each_member_gets_its_own_inputs_and_short_videos_loop():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)  # 3 frames, shorter than the clip
    i3d = dataclasses.replace(SPEC, normalization="i3d")
    raw = dataclasses.replace(SPEC, crop_size=24, normalization="none", jpeg_quality=50)
    a, b = video_inputs(frames, i3d, ("rgb",))["rgb"], video_inputs(frames, raw, ("rgb",))["rgb"]
    assert a.shape == (1, 3, 4, 32, 32) and b.shape == (1, 3, 4, 24, 24)
    # each member's frames as its stores hold them (its JPEG quality), looped, centre crop, its normalisation
    stored = {q: as_stored({"rgb": frames}, q, SPEC.flow_bound)["rgb"][[0, 1, 2, 0]] for q in (95, 50)}
    by_hand = T.normalize_rgb(T.channels_first(stored[95][:, 4:36, 8:40]), "i3d", -4)
    assert torch.equal(a[0], torch.from_numpy(by_hand))
    assert torch.equal(b[0], torch.from_numpy(T.channels_first(stored[50][:, 8:32, 12:36]).astype(np.float32)))
    assert a.min() >= -1 and a.max() <= 1 and b.max() > 200  # [-1, 1] vs raw 0-255: each its own normalisation
    foreign = video_inputs(frames, dataclasses.replace(i3d, stored=False), ("rgb",))["rgb"]  # not trained on stores
    assert torch.equal(foreign[0], torch.from_numpy(T.normalize_rgb(T.channels_first(frames[[0, 1, 2, 0], 4:36, 8:40]),
                                                                    "i3d", -4)))
    long = rng.integers(0, 256, (20, 40, 48, 3), dtype=np.uint8)
    two = video_inputs(long, dataclasses.replace(i3d, eval_num_clips=2), ("rgb",))["rgb"]
    assert torch.equal(two[1], video_inputs(long[12:16], i3d, ("rgb",))["rgb"][0])  # starts 4 and 12
    whole = video_inputs(long, dataclasses.replace(i3d, eval_num_frames=0), ("rgb",))["rgb"]
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


def test_load_member_reads_the_checkpoint_spec(tmp_path):
    path = save_constant_checkpoint(tmp_path / "a.pt", math.log(3.0))
    m = en.load_member(path, 2.0, "m3")
    assert (m.name, m.weight, m.binary, m.classes, m.spec) == ("m3", 2.0, True, ["REAL", "FAKE"], SPEC)
    assert not m.model.training
    frames = np.random.default_rng(1).integers(0, 256, (6, 40, 50, 3), dtype=np.uint8)
    np.testing.assert_allclose(en.predict_decoded([m], {en.decode_key(SPEC): frames}), [[0.25, 0.75]], atol=1e-6)


def test_softmax_and_sigmoid_members_average_when_classes_agree(tmp_path):
    binary = en.load_member(save_constant_checkpoint(tmp_path / "b.pt", 0.0), 1.0, "m0")
    two_way = en.load_member(save_constant_checkpoint(tmp_path / "s.pt", [0.0, math.log(3.0)]), 1.0, "m1")
    probs = en.predict_decoded([binary, two_way], {en.decode_key(SPEC): np.zeros((4, 40, 40, 3), np.uint8)})
    np.testing.assert_allclose(probs, [[0.5, 0.5], [0.25, 0.75]], atol=1e-6)
    other = en.load_member(save_constant_checkpoint(tmp_path / "o.pt", [0.0, 0.0], classes=("cat", "dog")), 1.0)
    with pytest.raises(en.EnsembleError, match=r"predicts \['cat', 'dog'\]"):
        en.check_members([binary, other])


def test_a_two_stream_member_gets_flow_made_as_its_stores_were(tmp_path, monkeypatch):
    """A member with a flow stream is fed TV-L1 of its own engine, computed once for members that share it."""
    cfg = tiny_cfg(streams="rgb,flow")
    two = [en.load_member(save_constant_checkpoint(tmp_path / f"{k}.pt", 0.5, cfg), 1.0, f"m{k}") for k in range(2)]
    calls = []
    monkeypatch.setattr(en, "video_flow", lambda frames, spec: calls.append(spec) or np.zeros((*frames.shape[:3], 2),
                                                                                               np.float32))
    probs = en.predict_decoded(two, {en.decode_key(SPEC): np.zeros((5, 40, 40, 3), np.uint8)})
    assert calls == [SPEC] and probs.shape == (2, 2)


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(en.EnsembleError, match="missing.pt not found"):
        en.load_member(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(en.EnsembleError, match="junk.pt is truncated or not a torch file"):
        en.load_member(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "nocfg.pt")
    with pytest.raises(en.EnsembleError, match=r"nocfg.pt lacks \['config'\]"):
        en.load_member(tmp_path / "nocfg.pt")


def test_each_video_is_decoded_once_per_frame_rate_and_short_side(tmp_path, monkeypatch):
    small = en.load_member(save_constant_checkpoint(tmp_path / "a.pt", 0.0), 1.0, "m0")  # short side 40
    big_spec = dataclasses.replace(SPEC, short_side=56, crop_size=48)
    big = en.load_member(save_constant_checkpoint(tmp_path / "b.pt", 0.0, spec=big_spec), 1.0, "m1")
    same = en.load_member(save_constant_checkpoint(tmp_path / "c.pt", 0.0), 1.0, "m2")  # shares m0's decoding
    calls = []

    def fake_read_video(path, *, fps, short_side):
        calls.append((path.name, short_side))
        if path.name == "bad.mp4":
            raise RuntimeError("moov atom not found")
        return np.zeros((5, short_side, short_side + 10, 3), np.uint8), {}

    monkeypatch.setattr(en, "read_video", fake_read_video)
    videos = [("a", tmp_path / "a.mp4"), ("bad", tmp_path / "bad.mp4"), ("c", tmp_path / "c.mp4")]
    result = en.predict_videos([small, big, same], videos, prior=0.9)
    assert calls == [("a.mp4", 40), ("a.mp4", 56), ("bad.mp4", 40), ("c.mp4", 40), ("c.mp4", 56)]
    assert result.filenames == ["a.mp4", "bad.mp4", "c.mp4"] and list(result.errors) == ["bad.mp4"]
    assert "moov atom" in result.errors["bad.mp4"]
    np.testing.assert_allclose(result.probs[:, 1], [0.5, 0.9, 0.5], atol=1e-6)
    assert result.member_probs.shape == (3, 3, 2)


def test_raw_videos_are_scored_by_their_face_clips(tmp_path, monkeypatch):
    """faces=: each raw video -> face clips (the training clips' recipe) -> every clip scored -> the max over clips;
    a video without a face gets the prior and is listed."""
    from faces.options import FaceOptions
    from flow.video import write_video
    from i3d.synthetic.faces import no_face_video, two_people_video

    frames, _boxes = two_people_video(num_frames=40)
    write_video(tmp_path / "videos" / "two.avi", frames, 25)
    write_video(tmp_path / "videos" / "none.avi", no_face_video(num_frames=20), 25)
    member = en.load_member(save_constant_checkpoint(tmp_path / "m.pt", math.log(3.0)))
    scored = []
    real_score = en._score
    monkeypatch.setattr(en, "_score", lambda members, path, keys, **kw: scored.append(path.name) or real_score(
        members, path, keys, **kw))
    opts = FaceOptions(stride=5, split_frames=0, min_frames=8, size=48)
    videos = [("two", tmp_path / "videos" / "two.avi"), ("none", tmp_path / "videos" / "none.avi")]
    result = en.predict_videos([member], videos, prior=0.2, faces=opts, face_dir=tmp_path / "faces")
    assert len(scored) == 2 and all(name.startswith("two") for name in scored)  # one clip per person
    np.testing.assert_allclose(result.probs[:, 1], [0.75, 0.2], atol=1e-6)
    assert result.errors == {} and list(result.no_face) == ["none.avi"] and "no face" in result.no_face["none.avi"]
    with pytest.raises(en.EnsembleError, match="face_dir"):
        en.predict_videos([member], videos, faces=opts)
