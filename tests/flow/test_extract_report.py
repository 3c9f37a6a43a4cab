"""A run's record and progress: report.json and index.csv kept up to date as each video finishes (a killed run keeps
the record of what it finished; a rerun merges with it), and one progress bar counting frames inside videos."""

import csv
import json

import pytest

import common.runner
import flow.extract
from common.runner import run_job
from common.videos import find_videos
from flow.extract import ExtractOptions, extract_all, flow_job
from flow.tvl1 import TVL1Params

FAST = ExtractOptions(short_side=0, batch=2, tvl1=TVL1Params(nscales=2, warps=2, inner_iterations=10))


@pytest.fixture
def videos(translating_video, tmp_path):
    for i, name in enumerate(("a.avi", "b.avi", "c.avi")):
        translating_video(name=f"videos/{name}", num_frames=5, height=24, width=32, seed=i)
    return tmp_path / "videos"


def _listed(out):
    report = json.loads((out / "report.json").read_text())
    rows = list(csv.DictReader(open(out / "index.csv")))
    return report, {r["video_id"]: r["status"] for r in report["videos"]}, [r["video_id"] for r in rows]


def test_killed_run_keeps_its_record_and_the_rerun_merges(videos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real, seen_on_disk = flow.extract.extract_store, []

    def killed_on_the_third(*args, **kwargs):  # the run dies while extracting the third video
        if args[0] == "c":
            seen_on_disk.append(_listed(out))  # what a SIGKILL now would leave
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(flow.extract, "extract_store", killed_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        extract_all([str(videos)], out, FAST, progress=False)
    report, status, index = seen_on_disk[0]
    assert status == {"a": "done", "b": "done"} and index == ["a", "b"] and not report["summary"]["complete"]
    assert not list(out.glob(".*tmp*"))  # the files were replaced whole
    assert _listed(out)[1] == status  # Ctrl-C (KeyboardInterrupt) writes the record once more on the way out

    monkeypatch.setattr(flow.extract, "extract_store", real)
    _, summary = extract_all([str(videos)], out, FAST, progress=False)
    report, status, index = _listed(out)
    assert (summary["done"], summary["skipped"], summary["complete"]) == (1, 2, True)
    assert status == {"a": "skipped", "b": "skipped", "c": "done"} and index == ["a", "b", "c"]

    # a rerun over part of the videos keeps the others listed; one whose store is gone drops out of the index
    (out / "a.h5").unlink()
    extract_all([str(videos / "c.avi")], out, FAST, progress=False)
    report, status, index = _listed(out)
    assert status == {"b": "skipped", "c": "skipped"} and index == ["b", "c"] and report["summary"]["skipped"] == 1


def test_progress_counts_frames_within_videos(videos, tmp_path, monkeypatch):
    """Workers report frames as they write them (here every 2 pairs), not once per video."""
    calls = []

    class SpyProgress(common.runner.RunProgress):
        def add_frames(self, frames):
            calls.append(("frames", frames))
            super().add_frames(frames)

        def close(self):
            calls.append(("total", self.frames, self.videos, self._postfix()))
            super().close()

    monkeypatch.setattr(common.runner, "RunProgress", SpyProgress)
    tasks = [(vid, src, tmp_path / "out" / f"{vid}.h5") for vid, src in find_videos([str(videos)])]
    records, _ = run_job(flow_job(FAST), [tasks], tmp_path / "out", workers=2, progress=False)
    assert [r["status"] for r in records] == ["done"] * 3
    frames = [n for kind, n, *_ in calls if kind == "frames"]
    assert sum(frames) == 15 and len(frames) >= 6  # 5 frames a video: 2 + 2 + 1 (the last pair and frame 0)
    assert calls[-1] == ("total", 15, 3, "videos 3/3")


def test_progress_in_a_log_is_lines_not_a_bar(videos, tmp_path, capsys):
    """stderr is not a terminal here (pytest captures it): plain lines, the last one with every count."""
    tasks = [(vid, src, tmp_path / "out" / f"{vid}.h5") for vid, src in find_videos([str(videos)])]
    tasks.append(("gone", tmp_path / "gone.avi", tmp_path / "out" / "gone.h5"))
    run_job(flow_job(FAST), [tasks], tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and err.startswith("[flow] videos 4/4 (1 failed), 15 frames"), err
    run_job(flow_job(FAST), [tasks], tmp_path / "out", progress=False)
    assert capsys.readouterr().err == ""
