"""tools/extract_features.py on generated videos with weight files: outputs, frames of every row, resume, failures."""

import json

import cv2
import h5py
import numpy as np
import pytest
import torch

from common.pictures import GAP, LINE
from i3d.models import InceptionI3d
from tests.helpers import call_tool


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(InceptionI3d(num_classes=7, in_channels=3).state_dict(), root / "rgb.pt")
    torch.save(InceptionI3d(num_classes=7, in_channels=2).state_dict(), root / "flow.pt")
    return root


def test_tool_writes_features_resumes_and_reports_bad_videos(weights, translating_video, tmp_path, capsys):
    a, _ = translating_video("videos/a.avi", num_frames=20, height=48, width=64)
    b, _ = translating_video("videos/sub/b.avi", num_frames=9, height=48, width=64, dx=-1.0)
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video" * 50)
    out = tmp_path / "feats"
    args = ["--videos", tmp_path / "videos", "--out", out, "--rgb-weights", weights / "rgb.pt", "--flow-weights",
            weights / "flow.pt", "--short-side", "40", "--crop", "32", "--snippet", "8", "--stride", "8", "--last",
            "pad", "--logits", "--no-progress"]
    assert call_tool("extract_features", *args) == 1  # one bad video: reported, the others finished
    err = capsys.readouterr().err
    assert err.count("FAILED") == 1 and "broken.mp4: OpenCV cannot open it" in err  # once, naming the file
    assert np.load(out / "a_rgb.npy").shape == (3, 1024) and np.load(out / "a_flow.npy").shape == (3, 1024)
    assert np.load(out / "a_rgb_logits.npy").shape == (3, 7)
    meta = json.loads((out / "a.json").read_text())
    assert (meta["start_frame"], meta["end_frame"], meta["fps"]) == ([0, 8, 16], [8, 16, 20], 25.0)
    assert meta["input_spec"]["short_side"] == 40 and meta["input_spec"]["flow_bound"] == 20.0
    assert np.load(out / "sub" / "b_flow.npy").shape == (2, 1024)  # 9 frames: one whole snippet + one padded
    summary = json.loads((out / "report.json").read_text())["summary"]
    assert (summary["done"], summary["failed"]) == (2, 1)
    assert (out / "index.csv").read_text().splitlines() == ["video_id,num_features", "a,3", "sub/b,2"]
    before = (out / "a_rgb.npy").stat().st_mtime_ns
    assert call_tool("extract_features", *args) == 1  # the rerun skips the finished videos and tries the bad one again
    assert (out / "a_rgb.npy").stat().st_mtime_ns == before
    assert json.loads((out / "report.json").read_text())["summary"]["skipped"] == 2
    assert (out / "index.csv").read_text().splitlines()[1:] == ["a,3", "sub/b,2"]  # counts kept from the .json
    assert call_tool("extract_features", *args[:-8], "--snippet", "4", "--stride", "4", "--no-progress") == 1
    assert "kept features made with other snippet, stride, last; --overwrite" in capsys.readouterr().err
    assert not list(out.rglob(".*tmp*"))  # no temporary file left


def test_h5_format_shard_and_video_mode(weights, translating_video, tmp_path):
    for k in range(3):
        translating_video(f"videos/v{k}.avi", num_frames=17, height=48, width=64, seed=k)
    out = tmp_path / "feats"
    args = ["--videos", tmp_path / "videos", "--out", out, "--rgb-weights", weights / "rgb.pt", "--streams", "rgb",
            "--short-side", "40", "--crop", "32", "--mode", "video", "--format", "h5", "--no-progress"]
    assert call_tool("extract_features", *args, "--shard", "1/2") == 0
    assert sorted(p.name for p in out.glob("*.h5")) == ["v1.h5"]  # the second of two parts of [v0, v1, v2]
    with h5py.File(out / "v1.h5") as f:
        assert f["rgb"].shape == (2, 1024) and "flow" not in f  # ceil(17 / 8) = 3 Mixed_5c steps -> 2 rows
        assert f["start_frame"][:].tolist() == [0, 8] and json.loads(f.attrs["meta"])["mode"] == "video"


def test_bad_arguments_stop_before_any_work(tmp_path):
    with pytest.raises(SystemExit):
        call_tool("extract_features", "--out", tmp_path, "--rgb-weights", "w.pt")  # neither --videos nor --stores
    with pytest.raises(SystemExit):
        call_tool("extract_features", "--videos", tmp_path, "--out", tmp_path)  # no weights


def test_preview_draws_the_first_snippet_before_the_run(weights, translating_video, tmp_path, capsys,
                                                       one_torch_thread):
    translating_video("videos/left.avi", num_frames=8, height=48, width=64, dx=-2.0, dy=0.0)
    out = tmp_path / "feats"
    assert call_tool("extract_features", "--videos", tmp_path / "videos", "--out", out, "--rgb-weights",
                    weights / "rgb.pt", "--flow-weights", weights / "flow.pt", "--short-side", "40", "--crop", "32",
                    "--snippet", "8", "--preview", "1", "--no-progress") == 0
    assert f"preview: {out / 'preview.png'}" in capsys.readouterr().out
    assert (out / "left.json").is_file()  # then the run
    image = cv2.cvtColor(cv2.imread(str(out / "preview.png")), cv2.COLOR_BGR2RGB)
    top = 2 * LINE + 2  # the video's line and the frames shown, then RGB over flow, 8 frames of 96 px
    assert image.shape[0] == top + 96 + GAP + 96 and image.shape[1] >= 8 * 96 + 7 * GAP
    y0, x0 = top + 96 + GAP, 3 * (96 + GAP)  # frame 3's flow
    hue = np.median(cv2.cvtColor(image[y0 + 30 : y0 + 66, x0 + 30 : x0 + 66], cv2.COLOR_RGB2HSV_FULL)[..., 0])
    assert 180 < hue * 360 / 256 < 210  # moving left: cyan-blue
