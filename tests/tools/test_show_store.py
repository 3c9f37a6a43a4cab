"""tools/show_store.py: a strip (.png) or an animation (.gif, .mp4) of a store, and its flow statistics on stdout."""

import cv2
import pytest
from PIL import Image

from common.pictures import GAP, LINE
from flow.preview import wheel_legend
from tests.helpers import call_tool, write_motion_stores


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = write_motion_stores(tmp_path_factory.mktemp("stores"), counts=(("train", 1),))
    return root / "h5" / "right" / "train0.h5"  # 10 frames of 36x40, +4 px in x, bound 20 (the default)


def test_strip_png_and_statistics(store, tmp_path, capsys):
    out = tmp_path / "strip.png"
    assert call_tool("show_store", store, "--out", out, "--height", "72") == 0
    text = capsys.readouterr().out
    assert "train0.h5: 10 frames of 36x40, format 2, flow bound 20 px" in text and f"wrote {out}" in text
    rows = [line.split() for line in text.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 1, 3, 4, 5, 6, 8, 9]  # 8 frames spread over the 10
    assert {tuple(r[1:]) for r in rows} == {("3.937", "3.937", "0.00%")}  # 4 px in 8-bit steps of 20/127
    image = cv2.imread(str(out))
    legend = wheel_legend(20.0, 72)
    # title, then 8 columns (frame caption, RGB over flow, 80 px wide at 72 rows) and the key, 6 px apart
    assert image.shape == (LINE + 2 + LINE + 2 + 72 + GAP + 72, 8 * 80 + 8 * 6 + legend.shape[1], 3)


def test_gif_and_mp4_show_one_frame_at_a_time(store, tmp_path):
    assert call_tool("show_store", store, "--frames", "2:7", "--out", tmp_path / "a.gif") == 0
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 5 and gif.size[1] >= 2 * LINE + 128  # two caption lines over 128-row frames
    assert call_tool("show_store", store, "--out", tmp_path / "a.mp4") == 0  # every frame by default
    video = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    ok, frame = video.read()
    assert ok and frame.shape[0] >= 2 * LINE + 128 and frame.shape[0] % 2 == 0


def test_bad_frames_are_one_error(store, tmp_path):
    with pytest.raises(ValueError, match=r"--frames '20:30' selects no frame of the store's 10"):
        call_tool("show_store", store, "--frames", "20:30", "--out", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
