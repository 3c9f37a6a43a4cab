"""common.workers: a worker dies with its parent (prctl and the watch thread, each on its own), and frame counts sent
by other processes all reach the parent's channel."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from common.workers import FrameChannel, send_frames

REPO = Path(__file__).resolve().parents[2]

# A parent that starts one child calling die_with_parent, prints the child's pid, then waits to be killed.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "armed\\n"
print(child.pid, flush=True)
time.sleep(60)
"""
CHILD = """
import os, time
from common.workers import die_with_parent
die_with_parent(os.getppid(), arm_prctl={arm}, poll_seconds=0.1)
print("armed", flush=True)
time.sleep(60)
"""


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:  # dead; only waiting for init to reap it
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's; the watch thread is tested too")
@pytest.mark.parametrize("arm", [True, False], ids=["prctl", "watch-thread"])
def test_worker_dies_with_its_parent(arm):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD.format(arm=arm)], stdout=subprocess.PIPE,
                              text=True, env=env)
    child = int(parent.stdout.readline())
    try:
        assert not _gone(child, 0.3)  # alive while its parent is
        os.kill(parent.pid, signal.SIGKILL)  # what a scheduler's time limit or the OOM killer does
        parent.wait()
        assert _gone(child, 2.0), f"child {child} outlived its parent"
    finally:
        parent.kill()
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(child).kill()


def test_frame_counts_from_another_process_all_arrive():
    counts = []
    with FrameChannel(counts.append) as channel:
        code = f"from common.workers import send_frames\nfor n in range(1, 51): send_frames({channel.address!r}, n)"
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        send_frames(channel.address, 7)
    assert sorted(counts) == sorted([*range(1, 51), 7])  # closing drained what the thread had not yet taken
