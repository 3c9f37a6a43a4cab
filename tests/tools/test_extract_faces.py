"""tools/extract_faces.py: a real face and a bad file through the command line (exit 1, both reported), bad options
(one line, exit 2, nothing touched)."""

import json

import pytest

from common.cli import run_tool
from flow.video import write_video
from i3d.synthetic.faces import astronaut_video
from tests.helpers import load_script


def test_a_face_and_a_bad_file(tmp_path, capsys, one_torch_thread):
    pytest.importorskip("skimage", reason="scikit-image ships the photographs with faces: pip install -e '.[dev]'")
    frames, _ = astronaut_video(40)
    write_video(tmp_path / "videos" / "astronaut.avi", frames, 25)
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"\x00" * 100)
    tool, out = load_script("tools/extract_faces.py"), tmp_path / "out"
    argv = ["--videos", str(tmp_path / "videos"), "--out", str(out), "--size", "32", "--min-frames", "20",
            "--split-frames", "0", "--no-progress"]
    assert tool.main(tool.parse_args(argv)) == 1  # one video failed; the other finished
    err = capsys.readouterr()
    assert "FAILED" in err.err and "broken.mp4" in err.err
    assert "done 1, skipped 0, no face 0, failed 1; 1 clips written" in err.out
    report = json.loads((out / "report.json").read_text())
    assert [v["status"] for v in report["videos"]] == ["done", "failed"]
    assert (out / "astronaut_0_0.avi").is_file() and report["options"]["size"] == 32


@pytest.mark.parametrize(
    ("flag", "message"),
    [(["--stride", "0"], "--stride 0: must be >= 1"), (["--min-iou", "2"], "--min-iou 2.0: must be between 0 and 1"),
     (["--shard", "3/2"], "--shard 3/2: need 0 <= I < N")],
)
def test_bad_options_are_one_line_before_anything_is_touched(tmp_path, capsys, flag, message):
    tool = load_script("tools/extract_faces.py")
    argv = ["--videos", str(tmp_path), "--out", str(tmp_path / "out"), *flag]
    assert run_tool(tool.main, tool.parse_args, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message}")
    assert not (tmp_path / "out").exists()


def test_no_videos_is_one_line(tmp_path, capsys):
    tool = load_script("tools/extract_faces.py")
    assert run_tool(tool.main, tool.parse_args, ["--videos", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: no videos found")
