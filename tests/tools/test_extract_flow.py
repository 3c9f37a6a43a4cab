import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from common.cli import run_tool
from flow.store import FlowStoreError, VideoStore
from tests.helpers import load_script

TOOL = Path(__file__).resolve().parents[2] / "tools" / "extract_flow.py"


def test_real_video_through_cli(bikes_mp4, tmp_path):
    tool = load_script(TOOL)
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
    tool = load_script(TOOL)
    good, _ = translating_video(name="in/good.avi", num_frames=3, height=32, width=40)
    (good.parent / "bad.avi").write_bytes(b"not a video")
    out = tmp_path / "out"
    args = tool.parse_args(["--videos", str(good.parent), "--out", str(out), "--short-side", "0", "--fps", "0",
                            "--convention", "forward", "--nscales", "2", "--tau", "0.2", "--no-progress"])
    assert (args.nscales, args.tau, args.lambda_, args.use_initial_flow) == (2, 0.2, 0.15, False)
    assert tool.main(args) == 1
    captured = capsys.readouterr()
    assert "bad.avi" in captured.err and "done 1, skipped 0, failed 1" in captured.out
    with VideoStore(out / "good.h5") as store:
        assert store.attrs["flow_convention"] == "forward" and store.attrs["tvl1_nscales"] == 2
        assert store.attrs["tvl1_tau"] == 0.2


def test_cli_nothing_to_do(tmp_path, capsys):
    tool = load_script(TOOL)
    (tmp_path / "empty").mkdir()
    argv = ["--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]
    assert run_tool(tool.main, tool.parse_args, argv) == 2
    assert "no videos found" in capsys.readouterr().err


BAD_OPTIONS = [
    (["--short-side", "-5"], "--short-side -5: must be >= 0"),
    (["--jpeg-quality", "500"], "--jpeg-quality 500: must be 0-100"),
    (["--workers", "0"], "--workers 0: must be >= 1"),
    (["--bound", "0"], "--bound 0.0: must be > 0"),
    (["--fps", "-1"], "--fps -1.0: must be >= 0"),
    (["--batch", "0"], "--batch 0: must be >= 1"),
    (["--prefetch", "-1"], "--prefetch -1: must be >= 0"),
    (["--max-frames", "0"], "--max-frames 0: must be >= 1"),
    (["--shard", "3/2"], "--shard 3/2: need 0 <= I < N"),
    (["--shard", "x"], "--shard wants I/N"),
    (["--nscales", "0"], "--nscales 0: must be >= 1"),
    (["--median-filtering", "4"], "--median-filtering 4: must be 3 or 5"),
    (["--engine", "numba", "--use-initial-flow"], "numba does not support use_initial_flow"),
    (["--backend", "dask"], "--backend dask needs --scheduler"),
    (["--overwrite", "nope"], "--overwrite nope: no such video id"),
    (["--out", "{file}/sub"], "is a file, not a folder"),
]  # argparse's own mistakes (--workers two) keep argparse's usage line, as in every tool (common.cli)


@pytest.mark.parametrize("extra, message", BAD_OPTIONS, ids=[" ".join(e) for e, _ in BAD_OPTIONS])
def test_bad_option_is_one_line_before_any_work(extra, message, translating_video, tmp_path, capsys):
    tool = load_script(TOOL)
    video, _ = translating_video(name="in/v.avi", num_frames=3, height=24, width=32)
    (tmp_path / "file").write_text("a regular file")
    extra = [e.format(file=tmp_path / "file") for e in extra]
    argv = ["--videos", str(video.parent), "--out", str(tmp_path / "out"), "--no-progress", *extra]
    status = run_tool(tool.main, tool.parse_args, argv)
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()  # nothing was touched


def test_verify_redoes_a_store_corrupted_inside(translating_video, tmp_path, capsys):
    tool = load_script(TOOL)
    for i, name in enumerate(("a.avi", "b.avi")):
        translating_video(name=f"in/{name}", num_frames=4, height=24, width=32, seed=i)
    out = tmp_path / "out"
    argv = ["--videos", str(tmp_path / "in"), "--out", str(out), "--short-side", "0", "--nscales", "2", "--no-progress"]
    assert tool.main(tool.parse_args(argv)) == 0
    good = VideoStore(out / "b.h5").read_flow(range(4))
    with h5py.File(out / "b.h5") as f:
        chunk = f["flow"].id.get_chunk_info(2)
    data = bytearray((out / "b.h5").read_bytes())
    data[chunk.byte_offset + 4 : chunk.byte_offset + 12] = bytes(8)  # same size, HDF5 structure intact
    (out / "b.h5").write_bytes(bytes(data))

    capsys.readouterr()
    assert tool.main(tool.parse_args(argv)) == 0  # a plain rerun trusts finished stores (attributes, shapes)
    assert "done 0, skipped 2" in capsys.readouterr().out
    with pytest.raises(FlowStoreError, match=rf"b\.h5: flow frames 0-3 cannot be read.*--out {out} --overwrite b"):
        VideoStore(out / "b.h5").read_flow(range(4))

    assert tool.main(tool.parse_args([*argv, "--verify"])) == 0
    captured = capsys.readouterr()
    assert "done 1, skipped 1" in captured.out and "b.h5: flow frames 0-3 cannot be read" in captured.err
    np.testing.assert_array_equal(VideoStore(out / "b.h5").read_flow(range(4)), good)
    assert [r["video_id"] for r in csv.DictReader(open(out / "index.csv"))] == ["a", "b"]

    inode = (out / "a.h5").stat().st_ino
    assert tool.main(tool.parse_args([*argv, "--overwrite", "a"])) == 0  # redo one store by its id
    assert "done 1, skipped 1" in capsys.readouterr().out and (out / "a.h5").stat().st_ino != inode
