"""flow.preview: a store's frames and flow as pictures, coloured with the store's own bound, with either codec."""

import cv2
import numpy as np
import pytest

from flow.preview import flow_stats, select_frames, store_preview
from flow.quantize import dequantize_flow, quantize_flow
from flow.store_writer import write_store
from flow.viz import flow_to_colour


def motion_store(path, dx: float, *, bound: float = 8.0, codec: str = "lz4hc", frames: int = 6):
    """A store whose flow is `dx` px to the right everywhere, compressed with `codec`."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (frames, 12, 16, 3), dtype=np.uint8)
    flow = np.zeros((frames, 12, 16, 2), np.float32)
    flow[..., 0] = dx
    write_store(path, rgb, flow, {}, bound=bound, compression=codec)
    return path


def hue_degrees(rgb: np.ndarray) -> float:
    return float(cv2.cvtColor(rgb.reshape(1, 1, 3), cv2.COLOR_RGB2HSV_FULL)[0, 0, 0]) * 360 / 256


@pytest.mark.parametrize("codec", ["gzip", "lz4hc"])
def test_left_and_right_motion_get_opposite_hues(tmp_path, codec):
    right = store_preview(motion_store(tmp_path / "right.h5", 6.0, codec=codec))
    left = store_preview(motion_store(tmp_path / "left.h5", -6.0, codec=codec))
    assert right.format_version == left.format_version == 2
    r, l = right.flow[0, 5, 5], left.flow[0, 5, 5]
    assert (right.flow == r).all() and (left.flow == l).all()  # one motion: one colour everywhere
    assert hue_degrees(r) < 5 and r[0] == 255  # right: red
    assert 180 < hue_degrees(l) < 210  # left: cyan-blue, across the wheel (its hues are not HSV's evenly spaced)
    assert r.min() < 80 and l.max() == 255  # 6 px of the bound's 8: well saturated


def test_colours_use_the_bound_recorded_in_the_store(tmp_path):
    tight = store_preview(motion_store(tmp_path / "b8.h5", 4.0, bound=8.0))
    loose = store_preview(motion_store(tmp_path / "b20.h5", 4.0, bound=20.0))
    assert (tight.bound, loose.bound) == (8.0, 20.0)
    for preview in (tight, loose):
        px = dequantize_flow(quantize_flow(np.float32([[[4.0, 0.0]]]), preview.bound), preview.bound)
        np.testing.assert_array_equal(preview.flow[0, 0, 0], flow_to_colour(px, preview.bound)[0, 0])
    assert tight.flow[0, 0, 0, 1] < 140 < loose.flow[0, 0, 0, 1]  # half the bound is deeper red than a fifth


def test_statistics_per_frame(tmp_path):
    codes = quantize_flow(np.zeros((2, 10, 10, 2), np.float32), 8.0).transpose(0, 3, 1, 2).copy()
    codes[1, 0] = quantize_flow(np.float32(3.0), 8.0)  # frame 1: 3 px right ...
    codes[1, 0, :, :2] = 255  # ... except 20 % of it at the bound
    stats = flow_stats(codes, 8.0)
    assert stats[0] == {"mean": 0.0, "p99": 0.0, "clipped": 0.0}
    three = float(dequantize_flow(quantize_flow(np.float32(3.0), 8.0), 8.0))
    assert stats[1]["mean"] == pytest.approx(0.8 * three + 0.2 * 8.0, rel=1e-6)
    assert stats[1]["p99"] == pytest.approx(8.0) and stats[1]["clipped"] == pytest.approx(0.2)


def test_frame_selection():
    assert select_frames(None, 100).tolist() == [0, 14, 28, 42, 57, 71, 85, 99]  # spread, first and last
    assert select_frames(None, 3).tolist() == [0, 1, 2]
    assert select_frames(None, 100, 4, spread=False).tolist() == [0, 1, 2, 3]
    assert select_frames("2:5", 10).tolist() == [2, 3, 4]
    assert select_frames("::4", 10).tolist() == [0, 4, 8]
    assert select_frames("-2:", 10).tolist() == [8, 9] and select_frames("-1", 10).tolist() == [9]
    for bad in ("20:30", "a:b", "10", "1:2:0"):
        with pytest.raises(ValueError, match="--frames"):
            select_frames(bad, 10)


def test_rgb_only_store_shows_its_frames(tmp_path):
    path = write_store(tmp_path / "rgb.h5", np.zeros((3, 12, 16, 3), np.uint8), None, {})
    preview = store_preview(path)
    assert preview.flow is None and preview.stats == [] and "no flow" in preview.title()
    assert preview.strip(24).shape[0] == 2 * 14 + 24  # title and frame captions over one row of frames
