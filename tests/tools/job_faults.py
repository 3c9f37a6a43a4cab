"""The same faults for every per-video job of the batch runner (flow extraction, face cropping, feature extraction),
through the tools as a user runs them with two workers (tests/tools/test_faults_{flow,faces,features}.py run them,
a file per job so that parallel test workers can share them out):

- kill -9 of the tool once a video is finished: no process of the run is left a second later and nothing is written
  after the kill; Ctrl-C (SIGINT to the process group, as a terminal sends it) of the rerun: one line, exit 130,
  no temporary file, the record kept; the next rerun finishes the rest, with outputs equal to an uninterrupted run's;
- a full disk (a small tmpfs as OUT): the run stops at once with one line, exit 2, no temporary file;
- a Dask worker killed mid-run: nothing is lost, outputs equal to the uninterrupted run's.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from flow.store import VideoStore
from flow.video import read_video, write_video
from i3d.models import InceptionI3d
from tests.helpers import textured_frames

ROOT = Path(__file__).resolve().parents[2]
VIDEOS = 4


def _flow_inputs(root: Path) -> list[str]:
    for i in range(VIDEOS):
        write_video(root / "videos" / f"v{i}.avi", textured_frames(12, 48, 64, dx=1.0, dy=0.5, seed=i), 25)
    return ["--short-side", "0"]


def _faces_inputs(root: Path) -> list[str]:
    pytest.importorskip("skimage", reason="scikit-image ships the photographs with faces: pip install -e '.[dev]'")
    from i3d.synthetic.faces import astronaut_video

    frames, _ = astronaut_video(11)
    for i in range(VIDEOS):
        write_video(root / "videos" / f"v{i}.avi", np.roll(frames, 4 * i, axis=2), 25)
    return ["--size", "32", "--min-frames", "10", "--split-frames", "0", "--detect-size", "160"]


def _features_inputs(root: Path) -> list[str]:
    for i in range(VIDEOS):
        write_video(root / "videos" / f"v{i}.avi", textured_frames(17, 48, 64, dx=1.0, dy=-0.5, seed=i), 25)
    torch.manual_seed(0)
    torch.save(InceptionI3d(num_classes=5, in_channels=3).state_dict(), root / "rgb.pt")
    # RGB only: the runner is under test here (flow on the fly: tests/i3d/inference, tests/tools/test_extract_features)
    return ["--rgb-weights", str(root / "rgb.pt"), "--streams", "rgb", "--short-side", "40", "--crop", "32",
            "--snippet", "8", "--stride", "8", "--device", "cpu"]


JOBS = {"flow": ("extract_flow", _flow_inputs), "faces": ("extract_faces", _faces_inputs),
        "features": ("extract_features", _features_inputs)}


def _outputs(job: str, out: Path) -> dict[str, np.ndarray]:
    """Every output of a finished run as arrays, by name (what 'equal outputs' compares)."""
    arrays = {}
    if job == "flow":
        for path in sorted(out.glob("*.h5")):
            with VideoStore(path) as s:
                arrays[path.name] = np.concatenate([s.read_flow(range(s.num_frames)).ravel(),
                                                    s.read_rgb(range(s.num_frames)).ravel()])
    elif job == "faces":
        for path in sorted(out.glob("*.avi")):
            arrays[path.name] = read_video(path, fps=0, short_side=0)[0]
    else:
        for path in sorted(out.glob("*.npy")):
            arrays[path.name] = np.load(path)
    return arrays


def prepared(name: str, tmp_path_factory) -> tuple:
    """(name, tool, input folder, the tool's job arguments, the outputs of an uninterrupted run with 2 workers)."""
    tool, make = JOBS[name]
    root = tmp_path_factory.mktemp(name)
    args = make(root)
    reference = root / "reference"
    proc = _start(tool, root, reference, args, uuid.uuid4().hex, root / "reference.log")
    assert proc.wait(timeout=300) == 0, (root / "reference.log").read_text()
    outputs = _outputs(name, reference)
    assert len(outputs) >= VIDEOS, outputs.keys()
    return name, tool, root, args, outputs


def _start(tool: str, root: Path, out: Path, args: list[str], tag: str, log: Path, *extra: str) -> subprocess.Popen:
    """The tool in its own process group (a terminal's Ctrl-C goes to the whole group), its output in `log` (not a
    pipe, which orphaned workers would hold open)."""
    cmd = [sys.executable, str(ROOT / "tools" / f"{tool}.py"), "--videos", str(root / "videos"), "--out", str(out),
           *args, "--no-progress", *extra]
    env = {**os.environ, "JOB_FAULT_TAG": tag}
    with open(log, "w") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _tagged(tag: str) -> list[psutil.Process]:
    """Every process started by one run (the tool, its workers and their helpers): they inherit its environment."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("JOB_FAULT_TAG") == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def _listed(out: Path) -> int:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return len(json.loads((out / "report.json").read_text())["videos"])
    return 0


def _wait_for(condition, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"the run ended early:\n{log.read_text()}"
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)


def _workers(tag: str) -> int:
    return sum("LokyProcess" in " ".join(p.cmdline()) for p in _tagged(tag))


def _files(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def _temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*.tmp-*")]


def kill_ctrl_c_rerun(job: tuple, tmp_path: Path) -> None:
    name, tool, root, args, reference = job
    out = tmp_path / "out"

    tag = uuid.uuid4().hex  # kill -9 once a video is finished and both workers are up, plus a random moment
    proc = _start(tool, root, out, args, tag, tmp_path / "killed.log", "--workers", "2")
    _wait_for(lambda: _listed(out) >= 1 and _workers(tag) == 2, proc, tmp_path / "killed.log")
    time.sleep(np.random.default_rng(sorted(JOBS).index(name)).uniform(0.0, 0.3))  # decoding, computing or writing
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    left = _tagged(tag)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    assert not left, f"processes outlived the killed run: {[' '.join(p.cmdline()) for p in left]}"
    after_kill = _files(out)
    time.sleep(0.5)
    assert _files(out) == after_kill, "something was written after the kill"
    left_by_kill = set(_temporaries(out))  # the videos in flight: their rerun removes them

    tag = uuid.uuid4().hex  # the rerun: Ctrl-C while videos are in flight (their workers still starting)
    log = tmp_path / "interrupted.log"
    proc = _start(tool, root, out, args, tag, log, "--workers", "2")
    _wait_for(lambda: _workers(tag) == 2, proc, log)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=15) == 130, log.read_text()
    lines = [ln for ln in log.read_text().splitlines() if ln.strip() and not ln.startswith("[")]  # ffmpeg's chatter
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), lines
    assert set(_temporaries(out)) <= left_by_kill and (out / "report.json").is_file()  # none of its own left
    time.sleep(0.5)
    assert not _tagged(tag), "workers outlived the interrupted run"

    log = tmp_path / "rerun.log"
    proc = _start(tool, root, out, args, uuid.uuid4().hex, log, "--workers", "2")
    assert proc.wait(timeout=300) == 0, log.read_text()
    assert not _temporaries(out)
    _assert_equal(name, _outputs(name, out), reference)
    listed = json.loads((out / "report.json").read_text())["videos"]
    assert sorted(r["video_id"] for r in listed) == [f"v{i}" for i in range(VIDEOS)]


def _assert_equal(name: str, outputs: dict, reference: dict) -> None:
    assert outputs.keys() == reference.keys()
    for key, array in outputs.items():
        if name == "features":  # a video's share of the cores depends on when it starts: float sums in another order
            np.testing.assert_allclose(array, reference[key], rtol=1e-3, atol=1e-4, err_msg=key)
        else:
            np.testing.assert_array_equal(array, reference[key], err_msg=key)


def full_disk(job: tuple, small_disk: Path, tmp_path: Path) -> None:
    name, tool, root, args, _ = job
    out, log = small_disk / "out", tmp_path / "full.log"
    proc = _start(tool, root, out, args, uuid.uuid4().hex, log, "--workers", "2")
    assert proc.wait(timeout=120) == 2, log.read_text()
    lines = [ln for ln in log.read_text().splitlines() if ln.strip() and not ln.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("error: disk full (or over quota) writing "), lines
    assert "free space in" in lines[0] and "left" in lines[0]
    assert not _temporaries(out)


def dask_worker_kill(job: tuple, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    name, tool, root, args, reference = job
    out, log = tmp_path / "out", tmp_path / "dask.log"
    loopback = dict(protocol="tcp://", host="127.0.0.1", dashboard_address=None)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, **loopback) as cluster:
        tag = uuid.uuid4().hex
        proc = _start(tool, root, out, args, tag, log, "--backend", "dask", "--scheduler", cluster.scheduler_address)
        with distributed.Client(cluster) as client:
            _wait_for(lambda: any(client.processing().values()), proc, log)
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)  # its nanny starts another; the scheduler gives it the video again
        assert proc.wait(timeout=300) == 0, log.read_text()
    assert not _temporaries(out)
    _assert_equal(name, _outputs(name, out), reference)
