import numpy as np
import pytest

from flow.video import VideoError, VideoReader, read_video, resized_shape, source_index


def test_resized_shape_keeps_aspect():
    assert resized_shape(240, 320, 256) == (256, 341)
    assert resized_shape(320, 240, 256) == (341, 256)
    assert resized_shape(48, 64, None) == (48, 64)


def test_source_index_nearest_timestamp():
    assert [source_index(k, 30.0, 30.0) for k in range(5)] == [0, 1, 2, 3, 4]
    assert [source_index(k, 30.0, 25.0) for k in range(6)] == [0, 1, 2, 4, 5, 6]  # 30 -> 25 fps drops every 6th
    assert [source_index(k, 25.0, 10.0) for k in range(4)] == [0, 3, 5, 8]


def test_decode_native_is_exact(translating_video):
    path, frames = translating_video(num_frames=10, height=48, width=64)
    decoded, info = read_video(path, fps=0, short_side=0)
    np.testing.assert_array_equal(decoded, frames)  # FFV1 is lossless and RGB order is kept
    assert info["native_fps"] == 25.0 and info["source_frame_indices"] == list(range(10))
    assert (info["header_frames"], info["decoded_frames"], info["truncated"]) == (10, 10, False)


def test_resample_and_resize(translating_video):
    path, frames = translating_video(num_frames=20, height=48, width=64, fps=50.0)
    decoded, info = read_video(path, fps=25.0, short_side=32)
    assert info["source_frame_indices"] == list(range(0, 20, 2))
    assert decoded.shape == (10, 32, 43, 3) and (info["height"], info["width"]) == (32, 43)
    assert info["sampled_fps"] == 25.0 and info["native_fps"] == 50.0
    short, info = read_video(path, fps=25.0, short_side=32, max_frames=3)
    np.testing.assert_array_equal(short, decoded[:3])
    assert info["truncated"] is False


def test_truncated_video_is_flagged(translating_video, tmp_path):
    path, _ = translating_video(num_frames=20)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    frames, info = read_video(cut, short_side=0)
    assert 0 < len(frames) < 15 and info["truncated"] is True
    assert "header claims 20" in info["warnings"][0]


@pytest.mark.parametrize("content", [b"", b"this is not a video"])
def test_bad_files_raise_with_path(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(VideoError, match="bad.mp4"):
        read_video(bad)
    with pytest.raises(VideoError, match="no such file"):
        list(VideoReader(tmp_path / "missing.mp4"))
