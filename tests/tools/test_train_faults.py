"""kill -9 of tools/train_two_stream.py, as a scheduler's time limit or the OOM killer does it, then --resume.

The flow I3D of configs/test_tiny.yaml on tiny stores: 3 epochs of 2 steps, one DataLoader worker per loader (so
there are child processes to orphan). Two fixed-seed kill points: during a checkpoint save (the k-th time a temporary
`.last.tmp-PID.pt` / `.best.tmp-PID.pt` appears; k drawn) and at a random time after the first epoch's last.pt (a
fraction, drawn, of the rest of an uninterrupted run). After each kill: last.pt / best.pt are whole, `--resume` ends
with weights bit-identical to the uninterrupted run's and no temporary file left, and the killed run's loader workers
have exited within a grace period.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from i3d.checkpoint import load_checkpoint
from tests.helpers import descendants, write_motion_stores

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds child processes in /proc")


def _start(root: Path, run: Path, *argv: str) -> subprocess.Popen:
    args = argv or ("--config", REPO / "configs" / "test_tiny.yaml", "--out", run, "--streams", "flow",
                    "--set", f"data.index={root / 'index.csv'}", "--set", f"data.store_root={root / 'h5'}",
                    "--set", "train.epochs=3", "--set", "data.num_workers=1")
    log = open(run.parent / f"{run.name}.log", "a")  # the child keeps its own copy of the descriptor
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread in every run: the same floating-point sums
    proc = subprocess.Popen([sys.executable, str(REPO / "tools" / "train_two_stream.py"), *map(str, args)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return proc


def _finish(proc: subprocess.Popen, run: Path) -> None:
    assert proc.wait(timeout=300) == 0, (run.parent / f"{run.name}.log").read_text()[-3000:]


def _temporaries(run: Path) -> list[Path]:
    return sorted(run.glob(".*.tmp-*")) if run.is_dir() else []


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan reparented to a PID 1 that never reaps is a zombie, not running)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill(proc: subprocess.Popen) -> set[int]:
    """SIGKILL `proc` alone (not its group: its workers must notice by themselves); returns its children."""
    children = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the run ended before the kill: move the kill point earlier"
    return children


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: its final last.pt and the seconds from its first last.pt to its exit."""
    root = write_motion_stores(tmp_path_factory.mktemp("faults"))
    run = root / "straight"
    proc = _start(root, run)
    while not (run / "last.pt").exists() and proc.poll() is None:
        time.sleep(0.005)
    first = time.monotonic()
    _finish(proc, run)
    yield root, load_checkpoint(run / "last.pt"), time.monotonic() - first
    shutil.rmtree(root)  # 100 MB checkpoints


def _kill_during_save(root: Path, run: Path, seed: int) -> subprocess.Popen:
    """Start a run and kill it while the k-th temporary checkpoint is being written (k = 2 or 3: after the first
    last.pt, so there is something to resume)."""
    k, seen, present = random.Random(seed).choice([2, 3]), 0, False
    proc = _start(root, run)
    while proc.poll() is None:
        now = bool(_temporaries(run))
        seen += now and not present
        present = now
        if seen == k:
            return proc
        time.sleep(0.001)
    pytest.fail("the run ended before its saves were seen")


def _kill_after_delay(root: Path, run: Path, seed: int, rest: float) -> subprocess.Popen:
    """Start a run and return it a random fraction of `rest` seconds after its first last.pt appeared."""
    proc = _start(root, run)
    while not (run / "last.pt").exists() and proc.poll() is None:
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0.0, 0.8) * rest)
    return proc


@pytest.mark.parametrize("where, seed", [("save", 0), ("time", 1)])
def test_kill_9_then_resume_is_bit_exact(reference, where, seed):
    root, straight, rest = reference
    run = root / f"killed_{where}_{seed}"
    proc = _kill_during_save(root, run, seed) if where == "save" else _kill_after_delay(root, run, seed, rest)
    children = _kill(proc)
    deadline = time.monotonic() + 15  # the grace period: PyTorch's workers check their parent every 5 s
    assert children, "no DataLoader worker was running: nothing could be orphaned"
    if where == "save":
        assert _temporaries(run), "killed mid-save: its temporary file is still there"
    for name in ("last.pt", "best.pt"):  # whatever is at a final path is whole
        if (run / name).exists():
            assert 1 <= load_checkpoint(run / name)["epoch"] <= 3
    _finish(_start(root, run, "--resume", run), run)  # the killed run's workers may still be ending meanwhile
    assert _temporaries(run) == []
    while any(_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _running(pid)], "orphaned DataLoader workers"
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["epoch"] == straight["epoch"] == 3 and resumed["step"] == straight["step"]
    assert resumed["model"].keys() == straight["model"].keys()
    assert all(torch.equal(resumed["model"][k], v) for k, v in straight["model"].items())
