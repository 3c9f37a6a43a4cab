"""flow.video.write_video: lossless FFV1 round trip, and a video that is either complete or absent."""

import cv2
import numpy as np
import pytest

from flow.video import VideoWriteError, write_video
from tests.helpers import decode_video


def _frames(n: int = 5, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_ffv1_round_trip_is_lossless_and_leaves_no_temp_file(tmp_path):
    frames = _frames()
    path = tmp_path / "x" / "v.avi"
    write_video(path, frames, 25.0)
    np.testing.assert_array_equal(decode_video(path), frames)
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    cap.release()
    assert [p.name for p in path.parent.iterdir()] == ["v.avi"]


def test_mp4v_and_an_iterable_of_frames(tmp_path):
    frames = _frames(4)
    write_video(tmp_path / "v.mp4", iter(list(frames)), 10.0, fourcc="mp4v")
    decoded = decode_video(tmp_path / "v.mp4")
    assert decoded.shape == frames.shape  # lossy: only the geometry is exact
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_the_final_path_appears_only_once_the_video_is_complete(tmp_path):
    path = tmp_path / "v.avi"
    seen = []

    def frames():
        for frame in _frames():
            seen.append((path.exists(), sorted(p.name for p in tmp_path.iterdir())))
            yield frame

    write_video(path, frames(), 25.0)
    assert all(not exists for exists, _ in seen)  # a run killed here leaves nothing at `path`
    assert all(len(names) == 1 and names[0].startswith(".v.") and names[0].endswith(".avi") for _, names in seen[1:])
    assert [p.name for p in tmp_path.iterdir()] == ["v.avi"]


def test_a_frame_of_another_shape_leaves_neither_the_video_nor_a_temp_file(tmp_path):
    frames = list(_frames(4)) + [np.zeros((24, 30, 3), np.uint8)]
    with pytest.raises(VideoWriteError, match=r"frame 4 is uint8 \(24, 30, 3\), expected uint8 \(24, 32, 3\)"):
        write_video(tmp_path / "v.avi", frames, 25.0)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_frame_source_leaves_neither_the_video_nor_a_temp_file(tmp_path):
    def frames():
        yield from _frames(3)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_video(tmp_path / "v.avi", frames(), 25.0)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rewrite_keeps_the_previous_video(tmp_path):
    path = tmp_path / "v.avi"
    old = _frames(3)
    write_video(path, old, 25.0)
    with pytest.raises(VideoWriteError, match="float64"):
        write_video(path, [old[0], old[1].astype(np.float64)], 25.0)
    np.testing.assert_array_equal(decode_video(path), old)
    assert [p.name for p in tmp_path.iterdir()] == ["v.avi"]


@pytest.mark.parametrize("frames, message", [([], "no frames"), (np.zeros((2, 8, 8), np.uint8), r"\(H, W, 3\)")])
def test_bad_input_is_refused_before_any_file_exists(tmp_path, frames, message):
    with pytest.raises(VideoWriteError, match=message):
        write_video(tmp_path / "sub" / "v.avi", frames, 25.0)
    assert list(tmp_path.iterdir()) == []
