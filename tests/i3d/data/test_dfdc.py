"""DFDC metadata.json folders -> (video_id, label) with 1 = FAKE, 0 = REAL."""

import json

import pytest

from common.dfdc import read_metadata
from i3d.data.dfdc import dfdc_index, dfdc_records, split_by_original


def _part(root, name, entries):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps(entries))
    return folder


@pytest.fixture
def dfdc_root(tmp_path):
    _part(tmp_path, "dfdc_train_part_0", {
        "aaa.mp4": {"label": "FAKE", "split": "train", "original": "rrr.mp4"},
        "bbb.mp4": {"label": "FAKE", "split": "train", "original": "rrr.mp4"},
        "rrr.mp4": {"label": "REAL", "split": "train", "original": None},
    })
    _part(tmp_path, "dfdc_train_part_1", {
        "ccc.mp4": {"label": "FAKE", "split": "train", "original": "sss.mp4"},
        "sss.mp4": {"label": "REAL", "split": "train"},
        "ttt.mp4": {"label": "REAL", "split": "test", "original": None},
    })
    return tmp_path


def test_index_of_a_folder_of_parts(dfdc_root):
    pairs, classes = dfdc_index(dfdc_root)
    assert classes == ["REAL", "FAKE"]
    assert pairs == [
        ("dfdc_train_part_0/aaa", 1), ("dfdc_train_part_0/bbb", 1), ("dfdc_train_part_0/rrr", 0),
        ("dfdc_train_part_1/ccc", 1), ("dfdc_train_part_1/sss", 0), ("dfdc_train_part_1/ttt", 0),
    ]
    assert [v for v, _ in dfdc_index(dfdc_root, split="test")[0]] == ["dfdc_train_part_1/ttt"]


def test_records_keep_originals_and_paths(dfdc_root):
    records = {r.video_id: r for r in dfdc_records(dfdc_root)}
    assert records["dfdc_train_part_0/aaa"].original == "dfdc_train_part_0/rrr"
    assert records["dfdc_train_part_1/sss"].original is None
    assert records["dfdc_train_part_1/ccc"].path == dfdc_root / "dfdc_train_part_1" / "ccc.mp4"
    # a single part read on its own gets bare ids
    single = read_metadata(dfdc_root / "dfdc_train_part_0" / "metadata.json")
    assert [r.video_id for r in single] == ["aaa", "bbb", "rrr"]


def test_split_by_original_keeps_families_together(dfdc_root):
    records = dfdc_records(dfdc_root)
    for seed in range(6):
        train, val = split_by_original(records, val_fraction=0.5, seed=seed)
        assert len(train) + len(val) == len(records)
        for side in (train, val):
            ids = {r.video_id for r in side}
            assert all(r.original is None or r.original in ids for r in side)
        families_in_val = {r.original or r.video_id for r in val}
        assert len(families_in_val) == 2  # 3 families (rrr, sss, ttt) * 0.5 rounds to 2


def test_bad_metadata_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metadata.json"):
        dfdc_records(tmp_path)
    _part(tmp_path, "p0", {"x.mp4": {"label": "fake?"}})
    with pytest.raises(ValueError, match=r"metadata.json: 'x.mp4' has label 'fake\?'"):
        dfdc_records(tmp_path)
    (tmp_path / "p0" / "metadata.json").write_text("{truncated")
    with pytest.raises(ValueError, match="cannot read DFDC metadata"):
        dfdc_records(tmp_path)


def test_nested_parts_get_distinct_ids(tmp_path):
    _part(tmp_path, "p0", {"x.mp4": {"label": "REAL"}})
    _part(tmp_path / "p0", "nested", {"x.mp4": {"label": "REAL"}})
    assert len(dfdc_records(tmp_path)) == 2  # p0/x and p0/nested/x are different videos
