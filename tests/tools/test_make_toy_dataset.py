"""tools/make_toy_dataset.py: arguments -> a UCF101-style toy dataset, clear errors, resumable reruns."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.cli import run_tool
from i3d.data.index import ucf101_index
from i3d.synthetic import toy
from tests.helpers import decode_video, load_script

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_toy_dataset.py"
SMALL = ["--size", "32x48", "--frames", "3", "--videos-per-class", "4", "--clips-per-group", "2", "--test-groups",
         "1", "--no-progress"]


@pytest.fixture(scope="module")
def tool():
    return load_script(TOOL)


def test_defaults_are_the_library_defaults(tool, tmp_path):
    args = tool.parse_args(["--out", str(tmp_path)])
    d = toy.ToyConfig()
    assert args.size == (d.height, d.width) and args.frames == d.num_frames and args.seed == d.seed
    assert args.classes == list(toy.DEFAULT_CLASSES) and args.videos_per_class == d.videos_per_class
    assert (args.clips_per_group, args.test_groups, args.fps) == (d.clips_per_group, d.test_groups, d.fps)


def test_writes_a_dataset_the_ucf101_index_reads(tool, tmp_path, capsys):
    out = tmp_path / "toy"
    argv = ["--out", str(out), "--seed", "7", "--classes", "ZoomOut", "MoveUpLeft", "MoveRight", *SMALL]
    assert tool.main(tool.parse_args(argv)) == 0
    assert "wrote 12, kept 0 videos (6 train, 6 test, 3 classes)" in capsys.readouterr().out
    meta = json.loads((out / "toy_dataset.json").read_text())
    assert (meta["seed"], meta["height"], meta["width"], meta["num_frames"]) == (7, 32, 48, 3)
    train, classes = ucf101_index(out, 1, "train")
    test, _ = ucf101_index(out, 1, "test")
    assert classes == ["MoveRight", "MoveUpLeft", "ZoomOut"]
    assert train[0] == ("MoveRight/v_MoveRight_g02_c01", 0) and test[-1] == ("ZoomOut/v_ZoomOut_g01_c02", 2)
    assert {g.split("_g")[1][:2] for g, _ in train} == {"02"} and {g.split("_g")[1][:2] for g, _ in test} == {"01"}
    frames = decode_video(out / "videos" / f"{train[0][0]}.avi")
    cfg = toy.ToyConfig(height=32, width=48, num_frames=3, classes=("ZoomOut", "MoveUpLeft", "MoveRight"),
                        videos_per_class=4, clips_per_group=2, test_groups=1, seed=7)
    np.testing.assert_array_equal(frames, toy.make_clip(cfg, "MoveRight", 2, 1).frames)

    # a rerun keeps everything; other arguments are refused without --overwrite
    assert tool.main(tool.parse_args(argv)) == 0
    assert "wrote 0, kept 12" in capsys.readouterr().out
    with pytest.raises(toy.ToyDatasetError, match=r"'num_frames': \(3, 4\).*--overwrite"):
        tool.main(tool.parse_args([*argv, "--frames", "4"]))
    assert tool.main(tool.parse_args([*argv, "--frames", "4", "--overwrite"])) == 0
    assert len(decode_video(out / "videos" / f"{train[0][0]}.avi")) == 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--classes", "MoveLeft", "Dance"], "unknown toy class 'Dance'"),
        (["--classes", "GreenMoveLeft", "RedMoveLeft"], "unknown toy class 'GreenMoveLeft'"),
        (["--videos-per-class", "2"], "test_groups=1 must leave at least one for training"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tool, tmp_path, capsys, argv, message):
    assert run_tool(tool.main, tool.parse_args, ["--out", str(tmp_path / "x"), *SMALL, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_bad_size_is_an_argparse_error(tool, capsys):
    with pytest.raises(SystemExit) as info:
        tool.parse_args(["--out", "x", "--size", "128"])
    assert info.value.code == 2
    assert "expected HEIGHTxWIDTH" in capsys.readouterr().err


def test_runs_as_a_script(tmp_path):
    out = tmp_path / "toy"
    cmd = [sys.executable, str(TOOL), "--out", str(out), "--classes", "MoveLeft", "MoveRight", *SMALL]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (out / "classInd.txt").read_text() == "1 MoveLeft\n2 MoveRight\n"
    assert len(list((out / "videos").rglob("*.avi"))) == 8
