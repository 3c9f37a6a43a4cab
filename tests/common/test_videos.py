"""common.videos: which videos a job works on (ids from files, folders, globs and lists) and the shard of them."""

import pytest

from common.videos import find_videos, parse_shard, select_shard, shard_suffix


def test_find_videos_and_ids(tmp_path):
    for name in ("ClassA/v_1.avi", "ClassA/v_2.mp4", "ClassB/sub/v_3.MKV", "ClassB/notes.txt"):
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).write_bytes(b"x")
    ids = [vid for vid, _ in find_videos([str(tmp_path / "data")])]
    assert ids == ["ClassA/v_1", "ClassA/v_2", "ClassB/sub/v_3"]
    assert [vid for vid, _ in find_videos([str(tmp_path / "data" / "Class*" / "*.avi")])] == ["ClassA/v_1"]
    listing = tmp_path / "data" / "list.txt"
    listing.write_text("# comment\nClassA/v_2.mp4\n\nClassB/sub/v_3.MKV\n")
    assert [vid for vid, _ in find_videos([str(listing)])] == ["ClassA/v_2", "ClassB/sub/v_3"]
    assert find_videos([str(tmp_path / "data" / "ClassA" / "v_1.avi")])[0][0] == "v_1"
    root = str(tmp_path / "data")
    assert find_videos([str(tmp_path / "data" / "ClassA" / "v_1.avi")], root=root)[0][0] == "ClassA/v_1"
    with pytest.raises(FileNotFoundError, match="matches no file"):
        find_videos([str(tmp_path / "nothing" / "*.avi")])
    with pytest.raises(FileNotFoundError, match="nonexist: no such file or folder"):
        find_videos([str(tmp_path / "nonexist")])


def test_shards_partition_the_sorted_list():
    items = [f"v{i:02d}" for i in range(10)]
    parts = [select_shard(items[::-1], i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == items and parts[0] == ["v00", "v03", "v06", "v09"]
    assert parse_shard("2/4") == (2, 4) and shard_suffix((2, 4)) == "-shard2of4" and shard_suffix(None) == ""
    for bad in ("4/4", "x", "1/0", "-1/3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
