"""tools/predict_ensemble.py on generated videos, one of them corrupt and one shorter than the clips.

The two checkpoints output a constant logit (head weights zeroed), so every number in the outputs can be checked
by hand: model 0 says P(FAKE) = sigmoid(0) = 0.5, model 1 says sigmoid(ln 3) = 0.75, weights 1 and 3.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.pictures import GAP, LINE
from flow.video import write_video
from i3d.build import build_model_from_config
from i3d.config import apply_overrides, config_to_dict, load_config
from i3d.data.spec import InputSpec
from i3d.inference import ensemble
from i3d.models.zoo import MODELS
from i3d.synthetic import fake_toy
from tests.helpers import call_tool


def _constant_checkpoint(path: Path, logit: float, name: str, normalization: str) -> Path:
    cfg = apply_overrides(load_config(), ["model.streams=rgb", f"model.rgb.name={name}", "model.num_classes=1",
                                          f"data.normalization={normalization}", "data.crop_size=32",
                                          "data.num_frames=4", "data.eval_num_frames=4"])
    model = build_model_from_config(cfg)
    with torch.no_grad():
        model.rgb.fc.weight.zero_()
        model.rgb.fc.bias.fill_(logit)
    base = MODELS[name].contract  # the published short side, scaled to the 32 px crop as training would save it
    spec = InputSpec(short_side=round(base.short_side * 32 / base.crop_size), crop_size=32, num_frames=4,
                     eval_num_frames=4, normalization=normalization)
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg), "classes": ["REAL", "FAKE"],
                "input_spec": spec.to_dict()}, path)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    cfg = fake_toy.FakeToyConfig(height=36, width=44, num_frames=6, codec="FFV1")
    scene = fake_toy.make_face_scene(cfg, np.random.default_rng(0))
    donor = fake_toy.make_face_scene(cfg, np.random.default_rng(1))
    frames = fake_toy.render_face_video(cfg, scene)
    write_video(folder / "real.avi", frames, 25.0)
    write_video(folder / "fake.avi", fake_toy.render_face_video(cfg, scene, donor, np.random.default_rng(2)), 25.0)
    write_video(folder / "short.avi", frames[:2], 25.0)  # 2 frames < the 4-frame clips: looped
    (folder / "broken.mp4").write_bytes(np.random.default_rng(3).bytes(3000))  # not a video
    return folder


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_ensemble_tool_weights_per_model_and_corrupt_video(videos, tmp_path, capsys, caplog):
    m0 = _constant_checkpoint(tmp_path / "m0.pt", 0.0, "mc3_18", "kinetics")
    m1 = _constant_checkpoint(tmp_path / "m1.pt", math.log(3.0), "mc3_112", "imagenet")
    out = tmp_path / "sub" / "submission.csv"
    code = call_tool("predict_ensemble", "--model", f"{m0}:1", "--model", f"{m1}:3", "--videos", videos,
                    "--out", out, "--prior", "0.3")
    assert code == 1  # a video failed; the submission is written all the same, with the prior for it
    sub = _rows(out)
    assert [r["filename"] for r in sub] == ["broken.mp4", "fake.avi", "real.avi", "short.avi"]
    assert list(sub[0]) == ["filename", "label"]
    expected = (1 * 0.5 + 3 * 0.75) / 4  # 0.6875
    labels = {r["filename"]: float(r["label"]) for r in sub}
    assert labels == pytest.approx({"broken.mp4": 0.3, "fake.avi": expected, "real.avi": expected,
                                    "short.avi": expected}, abs=1e-6)
    per_model = {r["filename"]: r for r in _rows(tmp_path / "sub" / "submission_per_model.csv")}
    assert per_model["broken.mp4"]["status"] == "failed" and per_model["short.avi"]["status"] == "ok"
    assert float(per_model["real.avi"]["m0"]) == pytest.approx(0.5, abs=1e-6)
    assert float(per_model["real.avi"]["m1"]) == pytest.approx(0.75, abs=1e-6)
    assert float(per_model["broken.mp4"]["m1"]) == pytest.approx(0.3)
    assert float(per_model["fake.avi"]["ensemble"]) == pytest.approx(expected, abs=1e-6)
    report = json.loads((tmp_path / "sub" / "submission_report.json").read_text())
    assert [f["filename"] for f in report["failed"]] == ["broken.mp4"]
    assert [m["weight"] for m in report["members"]] == [1.0, 3.0]
    assert [m["input_spec"]["normalization"] for m in report["members"]] == ["kinetics", "imagenet"]
    (line,) = capsys.readouterr().err.splitlines()  # the failure, once, as FAILED PATH: reason
    assert line.startswith(f"FAILED {videos / 'broken.mp4'}: OpenCV cannot open it") and "ValueError" not in line
    assert not [r for r in caplog.records if "broken.mp4" in r.getMessage()]


def test_ensemble_tool_lists_no_face_videos_once_and_fails_only_for_failures(videos, tmp_path, capsys, monkeypatch):
    """--faces: a video without a face gets the prior and one NO FACE line (exit status 0: nothing failed); a video
    that fails adds one FAILED line and exit status 1."""
    member = _constant_checkpoint(tmp_path / "m.pt", 0.0, "mc3_18", "kinetics")
    no_face = {"real.avi", "short.avi"}

    def score_faces(members, video_id, path, keys, *args):  # what cutting face clips found, without a detector
        if path.name in no_face:
            raise ensemble.NoFaceError("no face found; nothing written")
        return ensemble._score(members, path, keys)

    monkeypatch.setattr(ensemble, "_score_faces", score_faces)
    argv = ["--model", member, "--faces", "--videos", videos / "real.avi", videos / "short.avi", videos / "fake.avi"]
    assert call_tool("predict_ensemble", *argv, "--out", tmp_path / "a.csv", "--prior", "0.3") == 0
    assert capsys.readouterr().err.splitlines() == [f"NO FACE {videos / name}: no face found; nothing written"
                                                    for name in ("real.avi", "short.avi")]
    report = json.loads((tmp_path / "a_report.json").read_text())
    assert report["failed"] == [] and [v["filename"] for v in report["no_face"]] == ["real.avi", "short.avi"]
    assert {r["filename"]: r["status"] for r in _rows(tmp_path / "a_per_model.csv")} == {
        "real.avi": "no_face", "short.avi": "no_face", "fake.avi": "ok"}
    assert call_tool("predict_ensemble", *argv, videos / "broken.mp4", "--out", tmp_path / "b.csv") == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"FAILED {videos / 'broken.mp4'}: OpenCV cannot open")


def test_ensemble_tool_reports_bad_model(videos, tmp_path):
    with pytest.raises(ensemble.EnsembleError, match="nope.pt not found"):  # one line and status 2 from call_tool
        call_tool("predict_ensemble", "--model", tmp_path / "nope.pt", "--videos", videos, "--out", tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_a_foreign_file_by_type_scores_p_fake_as_its_authors(tmp_path):
    """--model mc3_112:FILE with --class-order FAKE,REAL: P(FAKE) is the softmax of the file's two logits on the
    first 32 frames at 112 px (ImageNet statistics), the way the DFDC authors scored it."""
    from i3d.inference.foreign import foreign_spec
    from i3d.inference.predict import decode, video_inputs
    from i3d.models.zoo import build_model

    torch.manual_seed(0)
    theirs = build_model("mc3_112", 2).eval()  # torchvision's MC3-18 with fc -> 2, as they saved it
    torch.save(theirs.state_dict(), tmp_path / "mc3_18_112.model")
    rng = np.random.default_rng(0)
    for k in range(2):
        write_video(tmp_path / "faces" / f"face{k}.avi", rng.integers(0, 256, (36, 128, 128, 3), dtype=np.uint8), 30.0)
    out = tmp_path / "sub.csv"
    assert call_tool("predict_ensemble", "--model", f"mc3_112:{tmp_path / 'mc3_18_112.model'}", "--class-order",
                    "FAKE,REAL", "--videos", tmp_path / "faces", "--out", out) == 0
    rows = {r["filename"]: float(r["label"]) for r in csv.DictReader(out.open())}
    spec = foreign_spec("mc3_112")
    for k in range(2):
        frames = decode(tmp_path / "faces" / f"face{k}.avi", spec)
        assert len(frames) == 36  # every frame (fps 0), the first 32 used
        with torch.no_grad():
            two = theirs(video_inputs(frames, spec, ("rgb",))["rgb"])[0].double()
        assert rows[f"face{k}.avi"] == pytest.approx(torch.softmax(two, 0)[0].item(), abs=2e-6)  # FAKE is output 0


def test_preview_draws_each_models_input_and_says_which_video_failed(videos, tmp_path, capsys):
    member = _constant_checkpoint(tmp_path / "m.pt", 0.0, "mc3_18", "kinetics")
    out = tmp_path / "sub.csv"
    argv = ["--model", member, "--videos", videos / "real.avi", videos / "broken.mp4", "--preview", "2"]
    assert call_tool("predict_ensemble", *argv, "--out", out) == 1  # the run went on and reported the broken video
    assert f"preview: {tmp_path / 'sub_preview.png'}" in capsys.readouterr().out
    image = np.asarray(Image.open(tmp_path / "sub_preview.png"))
    line = LINE + 3  # broken.mp4 (the videos in name order) is a line of text: why it cannot be shown
    clip = 2 * LINE + 2 + 96  # real.avi: the member's line and the frames shown over 4 RGB frames of 96 px
    assert image.shape[0] == line + 12 + clip and image.shape[1] >= 4 * 96 + 3 * GAP
    assert (image[:line] < 128).any() and (image[line : line + 12] == 255).all()


def test_preview_with_faces_draws_the_boxes_and_the_face_clips(tmp_path, capsys, one_torch_thread):
    from i3d.inference.preview import HEIGHT, RAW_HEIGHT, TRACK_COLOURS
    from i3d.synthetic.faces import astronaut_video

    frames, _ = astronaut_video(num_frames=70, size=(120, 160))  # one face clip: 70 frames >= the 64 needed
    write_video(tmp_path / "raw" / "face.avi", frames, 25.0)
    member = _constant_checkpoint(tmp_path / "m.pt", 0.0, "mc3_18", "kinetics")
    out = tmp_path / "sub.csv"
    argv = ["--model", member, "--faces", "--videos", tmp_path / "raw", "--preview", "1", "--out", out]
    assert call_tool("predict_ensemble", *argv) == 0
    assert f"preview: {tmp_path / 'sub_preview.png'}" in capsys.readouterr().out
    image = np.asarray(Image.open(tmp_path / "sub_preview.png"))
    assert image.shape[0] == LINE + 2 + RAW_HEIGHT + GAP + LINE + 2 + HEIGHT  # the raw frame, one clip's frames
    raw = image[LINE + 2 : LINE + 2 + RAW_HEIGHT, : RAW_HEIGHT * 160 // 120]
    assert (raw == TRACK_COLOURS[0]).all(axis=-1).sum() > 100  # track 0's boxes
    assert (tmp_path / "faces" / "face_0_0.avi").is_file()  # the run found the clip cut and scored it
