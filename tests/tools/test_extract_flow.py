import csv
import importlib.util
import json
from pathlib import Path

import numpy as np

from flow.store import VideoStore

TOOL = Path(__file__).resolve().parents[2] / "tools" / "extract_flow.py"


def _tool():
    spec = importlib.util.spec_from_file_location("extract_flow_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_video_through_cli(bikes_mp4, tmp_path):
    tool = _tool()
    out = tmp_path / "flow"
    args = ["--videos", str(bikes_mp4), "--out", str(out), "--short-side", "64", "--max-frames", "6", "--no-progress"]
    assert tool.main(tool.parse_args(args)) == 0
    with VideoStore(out / "bikes.h5") as store:
        assert (store.num_frames, store.height, store.width) == (6, 64, 151)  # bikes.mp4 is 640x272
        rgb, flow = store.read_rgb(range(6)), store.read_flow(range(6))
        assert store.attrs["source_frame_indices"] == list(range(6)) and store.attrs["native_fps"] == 25.0
    assert rgb.std() > 10 and (flow[0] == 0).all()
    assert np.abs(flow[1:]).mean() > 0.05  # the camera pans: there is motion after frame 0
    rows = list(csv.DictReader(open(out / "index.csv")))
    assert [(r["video_id"], r["store"], r["frames"]) for r in rows] == [("bikes", "bikes.h5", "6")]
    # a rerun skips the finished store
    assert tool.main(tool.parse_args(args)) == 0
    assert json.loads((out / "report.json").read_text())["summary"]["skipped"] == 1


def test_cli_exit_status_and_options(translating_video, tmp_path, capsys):
    tool = _tool()
    good, _ = translating_video(name="in/good.avi", num_frames=3, height=32, width=40)
    (good.parent / "bad.avi").write_bytes(b"not a video")
    out = tmp_path / "out"
    args = tool.parse_args(["--videos", str(good.parent), "--out", str(out), "--short-side", "0", "--fps", "0",
                            "--convention", "forward", "--nscales", "2", "--tau", "0.2", "--no-progress"])  # fmt: skip
    assert (args.nscales, args.tau, args.lambda_, args.use_initial_flow) == (2, 0.2, 0.15, False)
    assert tool.main(args) == 1
    captured = capsys.readouterr()
    assert "bad.avi" in captured.err and "done 1, skipped 0, failed 1" in captured.out
    with VideoStore(out / "good.h5") as store:
        assert store.attrs["flow_convention"] == "forward" and store.attrs["tvl1_nscales"] == 2
        assert store.attrs["tvl1_tau"] == 0.2


def test_cli_nothing_to_do(tmp_path, capsys):
    tool = _tool()
    (tmp_path / "empty").mkdir()
    assert tool.main(tool.parse_args(["--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])) == 2
    assert "no videos found" in capsys.readouterr().err
