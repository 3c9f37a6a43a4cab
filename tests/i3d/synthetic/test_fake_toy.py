"""i3d.synthetic.fake_toy: DFDC layout and metadata, FAKE = the original outside the face, reproducibility, errors."""

import json

import numpy as np
import pytest

from flow.video import read_video
from i3d.data.dfdc import dfdc_records
from i3d.synthetic import fake_toy as ft

SMALL = ft.FakeToyConfig(height=32, width=40, num_frames=6, reals_per_part=3, fakes_per_real=2, codec="FFV1")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("fake")
    return out, ft.make_fake_dataset(out, SMALL)


def test_layout_and_metadata(dataset):
    out, summary = dataset
    assert summary == {"train": [str(out / "train" / "dfdc_train_part_0")],
                       "val": [str(out / "val" / "dfdc_train_part_1")], "num_real": 6, "num_fake": 12}
    for side in ("train", "val"):
        records = dfdc_records(out / side)
        assert len(records) == 9 and sum(r.label for r in records) == 6  # 3 REAL + 6 FAKE per part
        by_id = {r.video_id: r for r in records}
        for r in records:
            assert r.path.is_file() and r.split == "train"
            assert (r.original is None) == (r.label == 0)
            if r.original:  # a fake's original is a REAL video of the same part
                assert by_id[r.original].label == 0 and r.original.split("/")[0] == r.video_id.split("/")[0]
    frames, info = read_video(records[0].path, short_side=0)
    assert frames.shape == (6, 32, 40, 3) and info["native_fps"] == 25.0
    assert json.loads((out / "fake_dataset.json").read_text())["reals_per_part"] == 3


def test_fake_is_its_original_outside_the_face(dataset):
    out, _ = dataset
    records = {r.video_id: r for r in dfdc_records(out / "train")}
    fake = next(r for r in records.values() if r.label == 1)
    real, _ = read_video(records[fake.original].path, short_side=0)
    forged, _ = read_video(fake.path, short_side=0)  # FFV1 is lossless: pixels as rendered
    diff = np.abs(real.astype(int) - forged.astype(int)).max(axis=(0, 3))  # (H, W) over frames and colours
    changed = diff > 0
    assert 0.03 < changed.mean() < 0.5  # a face-sized region differs ...
    ys, xs = np.nonzero(changed)
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < 31 and xs.max() < 39  # ... and it is not the border


def test_fake_region_changes_from_frame_to_frame():
    cfg = ft.FakeToyConfig(height=32, width=40, num_frames=4, blend=0.0, warp_px=1.5)
    rng = np.random.default_rng(1)
    scene, donor = ft.make_face_scene(cfg, rng), ft.make_face_scene(cfg, rng)
    real = ft.render_face_video(cfg, scene).astype(int)
    fake = ft.render_face_video(cfg, scene, donor, np.random.default_rng(2)).astype(int)
    assert not np.array_equal(real, fake)  # blend 0: only the warp and the mask differ
    residual = np.abs(fake - real).max(axis=(1, 2, 3))
    assert residual.min() > 0  # the warp is present in every frame
    assert np.array_equal(ft.render_face_video(cfg, scene), ft.render_face_video(cfg, scene))  # deterministic


def test_same_seed_same_dataset_other_seed_other_names(tmp_path):
    cfg = ft.FakeToyConfig(height=16, width=16, num_frames=2, reals_per_part=2, fakes_per_real=1, val_parts=0,
                           codec="FFV1")
    a = ft.make_fake_dataset(tmp_path / "a", cfg)
    b = ft.make_fake_dataset(tmp_path / "b", cfg)
    c = ft.make_fake_dataset(tmp_path / "c", ft.FakeToyConfig(**{**cfg.__dict__, "seed": 1}))
    meta = [(tmp_path / x / "train" / "dfdc_train_part_0" / "metadata.json").read_text() for x in "abc"]
    assert meta[0] == meta[1] and set(json.loads(meta[0])).isdisjoint(json.loads(meta[2]))
    assert a["val"] == [] and b["num_fake"] == c["num_fake"] == 2
    va = read_video(sorted((tmp_path / "a").rglob("*.avi"))[0], short_side=0)[0]
    vb = read_video(sorted((tmp_path / "b").rglob("*.avi"))[0], short_side=0)[0]
    assert np.array_equal(va, vb)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ft.FakeDatasetError, match="reals_per_part=1"):
        ft.FakeToyConfig(reals_per_part=1)
    with pytest.raises(ft.FakeDatasetError, match="codec='xvid'"):
        ft.FakeToyConfig(codec="xvid")
    with pytest.raises(ft.FakeDatasetError, match="blend=2"):
        ft.FakeToyConfig(blend=2)
    cfg = ft.FakeToyConfig(height=16, width=16, num_frames=2, reals_per_part=2, fakes_per_real=0, val_parts=0)
    ft.make_fake_dataset(tmp_path, cfg)
    with pytest.raises(ft.FakeDatasetError, match="already holds a generated dataset"):
        ft.make_fake_dataset(tmp_path, cfg)
    assert ft.make_fake_dataset(tmp_path, cfg, overwrite=True)["num_real"] == 2
