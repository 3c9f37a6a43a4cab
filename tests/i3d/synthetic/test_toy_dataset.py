"""i3d.synthetic.toy_dataset: the UCF101 layout on disk, identical reruns, resume, and folders it must not touch."""

import json
import os

import numpy as np
import pytest

from i3d.synthetic import toy_dataset
from i3d.synthetic.toy import ToyConfig, ToyDatasetError, make_clip
from tests.helpers import decode_video

TINY = dict(height=32, width=40, num_frames=4, classes=("MoveLeft", "ZoomIn"), videos_per_class=4, clips_per_group=2,
            test_groups=1)


def test_video_list_splits_by_group_like_ucf101():
    cfg = ToyConfig(classes=("ZoomOut", "MoveUp", "RotateClockwise"), videos_per_class=7, clips_per_group=3,
                    test_groups=1)
    videos = toy_dataset.video_list(cfg)
    assert len(videos) == 21 and cfg.num_groups == 3
    assert [v[0] for v in videos[::7]] == ["MoveUp", "RotateClockwise", "ZoomOut"]  # sorted as in classInd.txt
    assert [(g, c) for _, g, c, _ in videos[:7]] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (3, 1)]
    test_groups = {g for _, g, _, is_test in videos if is_test}
    train_groups = {g for _, g, _, is_test in videos if not is_test}
    assert test_groups == {1} and train_groups == {2, 3}
    assert toy_dataset.ucf101_video_name("MoveUp", 3, 1) == "v_MoveUp_g03_c01"


def _read(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_writes_ucf101_layout(tmp_path):
    cfg = ToyConfig(**TINY)
    seen = []
    counts = toy_dataset.write_toy_dataset(tmp_path / "toy", cfg, progress=seen.append)
    out = tmp_path / "toy"
    assert counts == {"written": 8, "skipped": 0, "train": 4, "test": 4} and len(seen) == 8
    assert _read(out / "classInd.txt") == ["1 MoveLeft", "2 ZoomIn"]
    assert _read(out / "trainlist01.txt") == [
        "MoveLeft/v_MoveLeft_g02_c01.avi 1", "MoveLeft/v_MoveLeft_g02_c02.avi 1",
        "ZoomIn/v_ZoomIn_g02_c01.avi 2", "ZoomIn/v_ZoomIn_g02_c02.avi 2",
    ]
    assert _read(out / "testlist01.txt") == [
        "MoveLeft/v_MoveLeft_g01_c01.avi", "MoveLeft/v_MoveLeft_g01_c02.avi",
        "ZoomIn/v_ZoomIn_g01_c01.avi", "ZoomIn/v_ZoomIn_g01_c02.avi",
    ]
    files = sorted(p.relative_to(out / "videos").as_posix() for p in (out / "videos").rglob("*") if p.is_file())
    assert files == sorted(line.split()[0] for line in _read(out / "trainlist01.txt") + _read(out / "testlist01.txt"))
    meta = json.loads((out / "toy_dataset.json").read_text())
    assert meta["seed"] == 0 and meta["classes"] == ["MoveLeft", "ZoomIn"] and meta["fourcc"] == "FFV1"
    decoded = decode_video(out / "videos/ZoomIn/v_ZoomIn_g02_c01.avi")
    np.testing.assert_array_equal(decoded, make_clip(cfg, "ZoomIn", 2, 1).frames)


def test_same_seed_same_decoded_frames_in_two_folders(tmp_path):
    cfg = ToyConfig(**TINY)
    toy_dataset.write_toy_dataset(tmp_path / "a", cfg)
    toy_dataset.write_toy_dataset(tmp_path / "b", cfg)
    for name, group, clip, _ in toy_dataset.video_list(cfg):
        rel = f"videos/{name}/{toy_dataset.ucf101_video_name(name, group, clip)}.avi"
        np.testing.assert_array_equal(decode_video(tmp_path / "a" / rel), decode_video(tmp_path / "b" / rel))


def test_rerun_resumes_and_other_parameters_need_overwrite(tmp_path):
    out, cfg = tmp_path / "toy", ToyConfig(**TINY)
    toy_dataset.write_toy_dataset(out, cfg)
    victim = out / "videos/MoveLeft/v_MoveLeft_g01_c02.avi"
    kept = out / "videos/ZoomIn/v_ZoomIn_g02_c02.avi"
    stamp = kept.stat().st_mtime_ns
    victim.unlink()  # as if the first run had been interrupted
    assert toy_dataset.write_toy_dataset(out, cfg)["written"] == 1
    assert victim.exists() and kept.stat().st_mtime_ns == stamp

    reseeded = ToyConfig(**{**TINY, "seed": 3})
    with pytest.raises(ToyDatasetError, match=r"--overwrite.*|seed") as info:
        toy_dataset.write_toy_dataset(out, reseeded)
    assert "'seed': (0, 3)" in str(info.value) and "--overwrite" in str(info.value)
    assert toy_dataset.write_toy_dataset(out, reseeded, overwrite=True)["written"] == 8
    np.testing.assert_array_equal(decode_video(kept), make_clip(reseeded, "ZoomIn", 2, 2).frames)


def test_refuses_a_folder_that_is_not_a_toy_dataset(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ToyDatasetError, match="not empty"):
        toy_dataset.write_toy_dataset(tmp_path, ToyConfig(**TINY))
    assert os.listdir(tmp_path) == ["precious.txt"]
