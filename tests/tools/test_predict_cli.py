"""tools/predict.py: a tiny two-stream checkpoint on generated videos; DeepMind's Kinetics I3D on the cricket clip."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from i3d.build import build_model_from_config
from i3d.checkpoint import CheckpointError
from i3d.config import config_to_dict, load_config
from i3d.data.spec import InputSpec
from i3d.inference import predict
from tests.helpers import call_tool, load_script

CLASSES = ["MoveLeft", "MoveRight", "ZoomIn", "ZoomOut"]


@pytest.fixture(scope="module")
def tool():
    return load_script("tools/predict.py")


def parse_output(text: str) -> dict[str, tuple[str, list[tuple[str, float]]]]:
    """{video path: (header, [(class, probability), ...])} from the tool's stdout."""
    videos, current = {}, None
    for line in text.splitlines():
        row = re.fullmatch(r"\s+([01]\.\d{4})\s+(.+)", line)
        if row:
            videos[current][1].append((row.group(2), float(row.group(1))))
        else:
            current = line.split(" (")[0]
            videos[current] = (line, [])
    return videos


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A two-stream checkpoint in the trainer's format: 4 classes, 8-frame 32 px clips (short side 37), judged on
    whole videos."""
    cfg = load_config(None, ["model.num_classes=4", "model.dropout=0", "data.crop_size=32", "data.num_frames=8"])
    torch.manual_seed(1)
    model = build_model_from_config(cfg)
    with torch.no_grad():  # a small head, so the probabilities are far from 0 and 1 and depend on the input
        for net in (model.rgb, model.flow):
            net.logits.weight.mul_(0.05)
    path = tmp_path_factory.mktemp("run") / "best.pt"
    torch.save({"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 3, "step": 9,
                "rng": {}, "config": config_to_dict(cfg), "classes": CLASSES,
                "input_spec": InputSpec(short_side=37, crop_size=32, num_frames=8, eval_num_frames=0).to_dict()},
               path)
    return path


def test_tool_on_generated_videos_with_a_trained_checkpoint(checkpoint, translating_video, capsys,
                                                            one_torch_thread):
    right, _ = translating_video("right.avi", num_frames=10, dx=2.0, dy=0.0)
    short, _ = translating_video("short.avi", num_frames=4, dx=0.0, dy=-2.0, seed=1)
    assert call_tool("predict", right, short, "--checkpoint", checkpoint, "--top", "3") == 0
    out = parse_output(capsys.readouterr().out)
    assert list(out) == [str(right), str(short)]
    assert out[str(right)][0] == f"{right} (10 frames, 10-frame clip, rgb+flow)"
    assert out[str(short)][0] == f"{short} (4 frames, 8-frame clip, rgb+flow)"  # looped up to spec.num_frames
    for video in (right, short):
        top = out[str(video)][1]
        assert len(top) == 3 and {name for name, _ in top} <= set(CLASSES)
        probs = [p for _, p in top]
        assert probs == sorted(probs, reverse=True) and 0.05 < probs[-1] < probs[0] < 0.95
    expected = predict.predict_video(predict.from_checkpoint(checkpoint), right)  # the library, called directly
    assert expected.probs.sum() == pytest.approx(1.0)
    assert out[str(right)][1] == [(name, pytest.approx(p, abs=1e-4)) for name, p in expected.top(3)]


def test_tool_keeps_going_past_a_broken_video(checkpoint, translating_video, tmp_path, capsys, one_torch_thread):
    good, _ = translating_video("good.avi", num_frames=6)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).bytes(2000))
    assert call_tool("predict", broken, good, "--checkpoint", checkpoint, "--top", "1") == 1
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err and "error:" in captured.err
    out = parse_output(captured.out)
    assert list(out) == [str(good)] and len(out[str(good)][1]) == 1


def test_tool_errors(tool, tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt not found"):  # one line and status 2 from common.cli.run_tool
        call_tool("predict", tmp_path / "v.mp4", "--checkpoint", tmp_path / "missing.pt")
    with pytest.raises(SystemExit) as info:
        tool.parse_args(["v.mp4", "--checkpoint", "a.pt", "--kinetics-rgb", "w.ckpt"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        tool.parse_args(["v.mp4"])  # one model is required


def test_kinetics_rgb_names_playing_cricket(cricket_gif, kinetics_rgb_ckpt, kinetics_label_map, capsys):
    # no --labels: the Kinetics-400 names ship with the package, as DeepMind's label map
    assert predict.KINETICS400_LABELS.read_text() == kinetics_label_map.read_text()
    assert call_tool("predict", cricket_gif, "--kinetics-rgb", kinetics_rgb_ckpt) == 0
    header, top = parse_output(capsys.readouterr().out)[str(cricket_gif)]
    assert header.endswith("(79 frames, 79-frame clip, rgb)")  # the GIF is decoded by OpenCV at its 25 fps
    assert len(top) == 5
    assert top[0][0] == "playing cricket" and top[0][1] > 0.9, top
