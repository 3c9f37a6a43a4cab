"""Fault injection: tools/extract_flow.py killed with SIGKILL (a scheduler's time limit, the OOM killer) at random
points of a run with two workers. After a short grace period no process of the run may be left, no partial store
may sit at a final path, and a rerun must finish with stores identical to an uninterrupted run's."""

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest

from flow.extract import ExtractOptions, extract_all
from flow.store import verify_store

TOOL = Path(__file__).resolve().parents[2] / "tools" / "extract_flow.py"
NUM_VIDEOS, FRAMES = 6, 12


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Six tiny videos, and their stores from an uninterrupted run (in this process: same code, no start-up)."""
    from conftest import textured_frames, write_ffv1

    root = tmp_path_factory.mktemp("faults")
    for i in range(NUM_VIDEOS):
        write_ffv1(root / "videos" / f"v{i}.avi", textured_frames(FRAMES, 48, 64, dx=1.0, dy=0.5, seed=i))
    _, summary = extract_all([str(root / "videos")], root / "reference", ExtractOptions(short_side=0), progress=False)
    assert summary["done"] == NUM_VIDEOS
    return root


def _tagged(tag: str) -> list[psutil.Process]:
    """Every process started by the run (the tool, its workers and their helpers): they inherit its environment."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("EXTRACT_FAULT_TAG") == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def _start(videos: Path, out: Path, tag: str, log: Path) -> subprocess.Popen:
    """The tool, writing to `log` (not to a pipe, which orphaned workers would hold open: the test would hang)."""
    cmd = [sys.executable, str(TOOL), "--videos", str(videos), "--out", str(out), "--short-side", "0",
           "--workers", "2", "--no-progress"]  # fmt: skip
    with open(log, "w") as f:
        return subprocess.Popen(cmd, env={**os.environ, "EXTRACT_FAULT_TAG": tag}, stdout=f, stderr=subprocess.STDOUT)


def _finished(out: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return len(json.loads((out / "report.json").read_text())["videos"])
    return 0


def _kill_at_random_point(videos: Path, out: Path, rng: np.random.Generator, log: Path) -> int:
    """Run the tool and SIGKILL it once both workers run and a random number of videos (0-3) has finished, plus a
    random fraction of a second (decoding, TV-L1, writing a store or the report). Returns that number."""
    finished, delay = int(rng.integers(0, NUM_VIDEOS - 2)), rng.uniform(0.0, 0.5)
    tag = uuid.uuid4().hex
    proc = _start(videos, out, tag, log)
    deadline = time.monotonic() + 60
    while len([p for p in _tagged(tag) if "LokyProcess" in " ".join(p.cmdline())]) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    while _finished(out) < finished:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 3.0  # grace period: the kernel (prctl) or the watch thread ends the workers
    while (left := _tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in left:  # whatever the outcome, leave no process behind
        with contextlib.suppress(psutil.Error):
            p.kill()
    assert not left, f"processes outlived the killed run: {[p.pid for p in left]}"
    return finished


def _assert_no_partial_output(out: Path) -> None:
    for store in out.glob("*.h5"):  # temporaries are hidden (.v0.tmp-PID.h5): only whole stores at final paths
        assert verify_store(store) is None, store
    if (out / "report.json").exists():  # replaced whole, never half-written
        listed = [r["video_id"] for r in json.loads((out / "report.json").read_text())["videos"]]
        rows = [r["video_id"] for r in csv.DictReader(open(out / "index.csv"))]
        assert set(rows) <= set(listed) and all((out / f"{v}.h5").is_file() for v in rows)


@pytest.mark.parametrize("seed", [0, 11])  # killed 0.13 s after 3 videos finished, 0.25 s after the workers started
def test_killed_extraction_leaves_no_orphans_and_resumes_identically(reference, tmp_path, seed):
    rng = np.random.default_rng(seed)
    videos, out = reference / "videos", tmp_path / "out"
    finished = _kill_at_random_point(videos, out, rng, tmp_path / "killed.log")
    _assert_no_partial_output(out)
    assert len(list(out.glob("*.h5"))) >= finished and _finished(out) >= finished  # the record of what finished

    rerun = _start(videos, out, uuid.uuid4().hex, tmp_path / "rerun.log")
    assert rerun.wait(timeout=120) == 0, (tmp_path / "rerun.log").read_text()
    assert not list(out.glob(".*tmp*")), "temporary files of the killed run were left"
    rows = list(csv.DictReader(open(out / "index.csv")))
    assert [r["video_id"] for r in rows] == [f"v{i}" for i in range(NUM_VIDEOS)]
    for i in range(NUM_VIDEOS):
        with h5py.File(out / f"v{i}.h5") as a, h5py.File(reference / "reference" / f"v{i}.h5") as b:
            np.testing.assert_array_equal(a["flow"][:], b["flow"][:])
            assert all(np.array_equal(x, y) for x, y in zip(a["rgb"][:], b["rgb"][:], strict=True))
