"""common.runner on a small job in this process: records, failures, a full disk and Ctrl-C stop the run cleanly, and
the share of cores each video gets. (The same faults through the tools and their worker processes:
tests/tools/job_faults.py.)"""

import errno
import json
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path

import pytest

import common.record
import common.runner
from common.files import temp_path, write_atomic
from common.runner import DiskFullError, Job, RunInterrupted, run_job, threads_per_video
from flow.video import VideoError


def _write(video_id, source, *, out: Path, fail: dict, threads=0, on_frames=None) -> dict:
    """One video: a temporary file first (as every writer), then the output; `fail[video_id]` raises instead."""
    temp_path(out / f"{video_id}.txt").write_text("half")
    if video_id in fail:
        raise fail[video_id]
    write_atomic(out / f"{video_id}.txt", lambda tmp: tmp.write_text(source))  # the same temporary, renamed
    return {"video_id": video_id, "source": source, "status": "done", "frames": 3, "warnings": [], "error": None}


def _job(out: Path, fail: dict) -> Job:
    return Job("test", work=partial(_write, out=out, fail=fail), options={}, finished_file=lambda v: f"{v}.txt",
               outputs=lambda v: [f"{v}.txt"], index_columns=("video_id",),
               index_row=lambda r: {"video_id": r["video_id"]} if r["status"] == "done" else None)


TASKS = [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_a_bad_video_is_a_failed_record_and_the_others_finish(tmp_path):
    records, summary = run_job(_job(tmp_path, {"b": VideoError("b.mp4: unreadable")}), [TASKS], tmp_path,
                               progress=False)
    assert [r["status"] for r in records] == ["done", "failed", "done", "done"]
    assert records[1]["error"] == "b.mp4: unreadable"  # the project's own message, once, without a class name
    assert (summary["done"], summary["failed"], summary["frames"], summary["complete"]) == (3, 1, 9, True)
    assert (tmp_path / "index.csv").read_text().split() == ["video_id", "a", "c", "d"]


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   OSError(errno.EDQUOT, "Disk quota exceeded"),
                                   RuntimeError("Can't close file (file write failed: errno = 28)"),  # h5py's
                                   OSError("2048 requested and 2016 written")])  # numpy's np.save
def test_a_full_disk_stops_the_run_and_keeps_the_record(tmp_path, error):
    with pytest.raises(DiskFullError) as stopped:
        run_job(_job(tmp_path, {"c": error}), [TASKS], tmp_path, progress=False)
    message = str(stopped.value)
    assert message.startswith(f"disk full (or over quota) writing {tmp_path / 'c.txt'}: 2 videos done, 2 left")
    assert "free space in" in message and "rerun" in message
    assert not (tmp_path / "d.txt").exists()  # stopped at once: no video after the full one is tried
    assert [r["video_id"] for r in _report(tmp_path)["videos"]] == ["a", "b"]  # not "failed": the rerun does c
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_a_record_that_cannot_be_written_stops_the_run(tmp_path, monkeypatch):
    real = common.record.write_atomic

    def full_after_two(path, write):
        if path.name == "report.json" and len(list(tmp_path.glob("*.txt"))) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, write)

    monkeypatch.setattr(common.record, "write_atomic", full_after_two)
    with pytest.raises(DiskFullError, match=r"writing .*report.json: 2 videos done, 2 left"):
        run_job(_job(tmp_path, {}), [TASKS], tmp_path, progress=False)


def test_ctrl_c_discards_the_video_in_flight_and_writes_the_record(tmp_path):
    with pytest.raises(RunInterrupted) as stopped:
        run_job(_job(tmp_path, {"c": KeyboardInterrupt()}), [TASKS], tmp_path, progress=False)
    assert str(stopped.value).startswith("2 videos done, 2 left; the videos in flight were discarded")
    assert not list(tmp_path.glob(".*.tmp-*"))  # c's temporary went with it
    report = _report(tmp_path)
    assert [r["video_id"] for r in report["videos"]] == ["a", "b"] and not report["summary"]["complete"]
    records, summary = run_job(_job(tmp_path, {}), [TASKS], tmp_path, progress=False)  # the rerun
    assert summary["done"] == 4 and len(_report(tmp_path)["videos"]) == 4


def test_threads_per_video_shares_the_cores_of_the_videos_that_can_run():
    assert [threads_per_video(2, 2, left) for left in (5, 2, 1)] == [1, 1, 2]  # the last video gets the idle core
    assert threads_per_video(2, 2, 1) == 2  # one video, --workers 2: both cores
    assert [threads_per_video(16, 4, left) for left in (9, 4, 3, 2, 1)] == [4, 4, 5, 8, 16]
    assert threads_per_video(2, 8, 8) == 1 and threads_per_video(1, 1, 1) == 1  # never 0


def _write_threads(video_id, source, *, out: Path, threads=0, on_frames=None) -> dict:
    write_atomic(out / f"{video_id}.txt", lambda tmp: tmp.write_text(str(threads)))
    return {"video_id": video_id, "source": source, "status": "done", "frames": 1, "warnings": [], "error": None}


def test_two_videos_on_two_workers_get_a_thread_each(tmp_path, monkeypatch):
    """The running video counts: the second of two videos dispatched together must not take both cores."""
    monkeypatch.setattr("common.runner.os.cpu_count", lambda: 2)
    job = Job("test", work=partial(_write_threads, out=tmp_path), options={}, finished_file=lambda v: f"{v}.txt",
              outputs=lambda v: [f"{v}.txt"], index_columns=("video_id",), index_row=lambda r: None)
    run_job(job, [[("a", "A"), ("b", "B")]], tmp_path, workers=2, progress=False)
    assert [(tmp_path / f"{v}.txt").read_text() for v in "ab"] == ["1", "1"]


def test_ctrl_c_as_the_first_submit_returns_kills_the_starting_workers(tmp_path, monkeypatch):
    """Nothing is pending yet, but the workers are starting: they must be killed, not let go (they would outlive
    the run's semaphores and each print a traceback under the one-line message)."""
    real_pool, real_submit, shutdowns = common.runner._pool, common.runner._submit, []

    def spied_pool(*args):
        pool = real_pool(*args)
        real_shutdown = pool.shutdown

        def shutdown(wait=True, kill_workers=False):
            shutdowns.append(kill_workers)
            real_shutdown(wait=wait, kill_workers=kill_workers)

        pool.shutdown = shutdown
        return pool

    def interrupted_submit(*args):
        real_submit(*args)
        raise KeyboardInterrupt  # where a Ctrl-C that came during the blocked submit is raised

    monkeypatch.setattr(common.runner, "_pool", spied_pool)
    monkeypatch.setattr(common.runner, "_submit", interrupted_submit)
    with pytest.raises(RunInterrupted):
        run_job(_job(tmp_path, {}), [TASKS], tmp_path, workers=2, progress=False)
    assert shutdowns == [True]
    assert not list(tmp_path.glob(".*.tmp-*"))


class _RacingPool:
    """A pool whose shutdown's manager thread dies as loky's does when killing races with its queue (KeyError)."""

    def shutdown(self, wait=True, kill_workers=False):
        def manage():
            raise KeyError(1)

        thread = threading.Thread(target=manage, name="ExecutorManagerThread")
        thread.start()
        thread.join()


@pytest.mark.parametrize("kill", [True, False])
def test_a_killed_pools_manager_thread_error_is_not_printed(kill, monkeypatch):
    shown = []

    def hook(args):
        shown.append(args.exc_type)

    monkeypatch.setattr(threading, "excepthook", hook)
    common.runner._shutdown(_RacingPool(), kill=kill)
    assert shown == ([] if kill else [KeyError])  # only the kill's known race is hidden
    assert threading.excepthook is hook  # put back


def test_a_ctrl_c_taken_by_another_thread_during_a_submit_is_raised_after_it():
    """The SIGINT of a Ctrl-C may go to any thread of the run that does not block it; Python raises it in the main
    thread between bytecodes. Inside a submit (loky spawning a worker) it must wait until the submit returns."""
    done = []

    def submit():
        sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT))
        sender.start()
        sender.join()
        time.sleep(0.2)  # without the handler, KeyboardInterrupt is raised here
        done.append(True)

    with pytest.raises(KeyboardInterrupt):
        common.runner._sigint_blocked(submit)
    assert done == [True]
