"""Index builders on tiny split files written by the tests, and the store resolution rule."""

from pathlib import Path

import pytest

from i3d.data import index
from i3d.inference.predict import read_label_map


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def ucf_splits(tmp_path):
    _write(tmp_path / "classInd.txt", "1 ApplyEyeMakeup\n2 Basketball\n3 HandstandPushups\n")
    _write(
        tmp_path / "trainlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nBasketball/v_Basketball_g08_c02.avi 2\r\n\r\n",
    )
    _write(
        tmp_path / "testlist01.txt",
        "Basketball/v_Basketball_g01_c01.avi\nHandStandPushups/v_HandStandPushups_g01_c01.avi\n",
    )
    return tmp_path


def test_ucf101_train_and_test(ucf_splits):
    pairs, classes = index.ucf101_index(ucf_splits, split=1, subset="train")
    assert classes == ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]
    assert pairs == [("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", 0), ("Basketball/v_Basketball_g08_c02", 1)]
    pairs, _ = index.ucf101_index(ucf_splits, split=1, subset="test")
    # test lines have no label: it comes from the folder (case-insensitively: UCF101 spells HandStand both ways)
    assert pairs == [("Basketball/v_Basketball_g01_c01", 1), ("HandStandPushups/v_HandStandPushups_g01_c01", 2)]


def test_ucf101_errors(ucf_splits):
    with pytest.raises(FileNotFoundError, match="trainlist02.txt"):
        index.ucf101_index(ucf_splits, split=2)
    with pytest.raises(ValueError, match="subset 'val'"):
        index.ucf101_index(ucf_splits, subset="val")
    _write(ucf_splits / "trainlist03.txt", "Basketball/v_Basketball_g08_c02.avi 1\n")
    with pytest.raises(ValueError, match=r"trainlist03.txt:1: label 1 != classInd id 2 of 'Basketball'"):
        index.ucf101_index(ucf_splits, split=3)
    _write(ucf_splits / "testlist03.txt", "Juggling/v_Juggling_g01_c01.avi\n")
    with pytest.raises(ValueError, match=r"testlist03.txt:1: 'Juggling/v_Juggling_g01_c01.avi'"):
        index.ucf101_index(ucf_splits, split=3, subset="test")
    _write(ucf_splits / "classInd.txt", "1 A\n3 B\n")
    with pytest.raises(ValueError, match="without gaps"):
        index.read_ucf101_classes(ucf_splits / "classInd.txt")


def test_hmdb51(tmp_path):
    _write(tmp_path / "wave_test_split1.txt", "w1.avi 1\nw2.avi 2 \nw3.avi 0\n")
    _write(tmp_path / "brush_hair_test_split1.txt", "b1.avi 2\nb2.avi 1\n")
    _write(tmp_path / "brush_hair_test_split2.txt", "b1.avi 1\nb2.avi 2\n")
    pairs, classes = index.hmdb51_index(tmp_path, split=1, subset="train")
    assert classes == ["brush_hair", "wave"]
    assert pairs == [("brush_hair/b2", 0), ("wave/w1", 1)]
    pairs, _ = index.hmdb51_index(tmp_path, split=1, subset="test")
    assert pairs == [("brush_hair/b1", 0), ("wave/w2", 1)]
    assert index.hmdb51_index(tmp_path, split=1, subset="unused")[0] == [("wave/w3", 1)]
    assert index.hmdb51_index(tmp_path, split=2, subset="test")[0] == [("brush_hair/b2", 0)]
    with pytest.raises(FileNotFoundError, match="_test_split3.txt"):
        index.hmdb51_index(tmp_path, split=3)
    _write(tmp_path / "run_test_split1.txt", "r1.avi 7\n")
    with pytest.raises(ValueError, match=r"run_test_split1.txt:1"):
        index.hmdb51_index(tmp_path, split=1)


KINETICS_CSV = """label,youtube_id,time_start,time_end,split
riding a bike,abc123XYZ_-,14,24,train
abseiling,--0edUL8zmA,0,10,train
riding a bike,zzz,100,110,val
"""


def test_kinetics_ids_and_classes(tmp_path):
    csv_path = _write(tmp_path / "k.csv", KINETICS_CSV)
    pairs, classes = index.kinetics_index(csv_path, "train")
    assert classes == ["abseiling", "riding a bike"]  # sorted over the whole file, so val ids match train ids
    assert pairs == [("riding a bike/abc123XYZ_-_000014_000024", 1), ("abseiling/--0edUL8zmA_000000_000010", 0)]
    assert index.kinetics_index(csv_path, "val")[0] == [("riding a bike/zzz_000100_000110", 1)]
    assert len(index.kinetics_index(csv_path)[0]) == 3


def test_kinetics_id_format_and_given_classes(tmp_path):
    csv_path = _write(tmp_path / "k.csv", KINETICS_CSV)
    label_map = _write(tmp_path / "labels.txt", "abseiling\nair drumming\nriding a bike\n")
    pairs, classes = index.kinetics_index(
        csv_path, "val", classes=read_label_map(label_map), id_format="{label_}/{youtube_id}"
    )
    assert classes == ["abseiling", "air drumming", "riding a bike"]
    assert pairs == [("riding_a_bike/zzz", 2)]
    pairs, _ = index.kinetics_index(csv_path, "val", id_format=lambda row: row["youtube_id"].upper())
    assert pairs == [("ZZZ", 1)]
    with pytest.raises(ValueError, match=r"no rows with split 'test'; the file has \['train', 'val'\]"):
        index.kinetics_index(csv_path, "test")
    with pytest.raises(ValueError, match="1 label"):
        index.kinetics_index(csv_path, classes=["abseiling"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['youtube_id'"):
        index.kinetics_index(_write(tmp_path / "bad.csv", "label,video\nx,y\n"))


def test_kinetics_label_map_is_sorted(kinetics_label_map):
    names = read_label_map(kinetics_label_map)
    assert len(names) == 400 and names == sorted(names)  # sorting a full Kinetics CSV gives DeepMind's ids


def test_plain_csv(tmp_path):
    csv_path = _write(tmp_path / "list.csv", "video_id,label,split\nb/v2.mp4,b,train\na/v1,a,train\nb/v3,b,test\n")
    pairs, classes = index.csv_index(csv_path, "train")
    assert classes == ["a", "b"]
    assert pairs == [("b/v2", 1), ("a/v1", 0)]
    assert index.csv_index(csv_path)[0][2] == ("b/v3", 1)
    no_split = _write(tmp_path / "nosplit.csv", "video_id,label\nx,c\n")
    assert index.csv_index(no_split) == ([("x", 0)], ["c"])
    with pytest.raises(ValueError, match="no 'split' column"):
        index.csv_index(no_split, "train")


def test_folder_tree(tmp_path):
    for name in ("walk/v1.avi", "walk/v0.mp4", "run/r1.h5", "run/notes.txt", "jump/.keep"):
        _write(tmp_path / "videos" / name, "")
    pairs, classes = index.folder_index(tmp_path / "videos")
    assert classes == ["jump", "run", "walk"]  # empty 'jump' keeps its id
    assert pairs == [("run/r1", 1), ("walk/v0", 2), ("walk/v1", 2)]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        index.folder_index(tmp_path / "nowhere")


def test_resolve_stores(tmp_path):
    root = tmp_path / "stores"
    _write(root / "a" / "v1.h5", "")
    pairs = [("a/v1", 0)] + [(f"b/v{i}", 1) for i in range(7)]
    with pytest.raises(FileNotFoundError) as info:
        index.resolve_stores(root, pairs)
    message = str(info.value)
    assert "7 of 8 stores missing" in message and "--set data.skip_missing=true" in message
    assert str(root / "b" / "v0.h5") in message and str(root / "b" / "v4.h5") in message
    assert "v5.h5" not in message  # names only the first few
    assert index.resolve_stores(root, pairs, skip_missing=True) == [(root / "a" / "v1.h5", 0)]
    assert index.resolve_stores(root, pairs[:1], with_video_id=True) == [(root / "a" / "v1.h5", 0, "a/v1")]
    assert index.store_path("R", "x/y") == Path("R/x/y.h5")
