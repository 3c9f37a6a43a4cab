"""`--shard I/N` over several independent invocations (a SLURM array) gives the same stores as one run, and a final
unsharded run over the shards' folder skips everything and writes the index one run writes (issue 17)."""

import csv
import json

import numpy as np

from flow.store import VideoStore
from tests.helpers import call_tool

OPTS = ["--short-side", "0", "--no-progress", "--nscales", "2", "--warps", "2"]


def _rows(path):
    return [(r["video_id"], r["store"], r["frames"], r["height"], r["width"]) for r in csv.DictReader(open(path))]


def test_three_shards_add_up_to_one_run(translating_video, tmp_path):
    for i in range(5):
        translating_video(f"videos/c{i}.avi", num_frames=6, height=32, width=40, dx=i - 2.0, dy=1.0, seed=i)
    videos, one, sharded = tmp_path / "videos", tmp_path / "one", tmp_path / "sharded"
    assert call_tool("extract_flow", "--videos", videos, "--out", one, *OPTS) == 0
    for i in range(3):  # every shard its own process in real life; here its own invocation of main()
        assert call_tool("extract_flow", "--videos", videos, "--out", sharded, "--shard", f"{i}/3", *OPTS) == 0
    shard_ids = [[r[0] for r in _rows(sharded / f"index-shard{i}of3.csv")] for i in range(3)]
    assert sorted(sum(shard_ids, [])) == [f"c{i}" for i in range(5)]  # disjoint, and together all of them
    assert sorted(p.name for p in sharded.glob("*.h5")) == sorted(p.name for p in one.glob("*.h5"))
    for path in one.glob("*.h5"):
        with VideoStore(path) as a, VideoStore(sharded / path.name) as b:
            frames = range(a.num_frames)
            assert a.num_frames == b.num_frames
            np.testing.assert_array_equal(a.read_rgb(frames), b.read_rgb(frames))
            np.testing.assert_array_equal(a.read_flow(frames), b.read_flow(frames))
    # the final unsharded pass: nothing to do, and the complete index
    assert call_tool("extract_flow", "--videos", videos, "--out", sharded, *OPTS) == 0
    assert json.loads((sharded / "report.json").read_text())["summary"]["skipped"] == 5
    assert _rows(sharded / "index.csv") == _rows(one / "index.csv")
