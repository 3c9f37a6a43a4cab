"""What the batch runner's worker processes need besides the job itself: dying with the run that started them, and
telling its progress how many frames they have done.

Dying with the parent. A scheduler's time limit or the OOM killer ends `tools/extract_flow.py` with SIGKILL, which
no code in it can catch. Left alone, loky's workers are reparented to init and go on with the videos already
queued to them for minutes, writing outputs that nobody supervises. `die_with_parent` runs in the initializer of
every worker of `common.runner` and makes two arrangements:

- Linux: `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel kills the worker the moment its parent dies, even in the
  middle of an engine call that holds the GIL (numba). The kernel's "parent" is the *thread* that started the
  worker, so this is armed only when the pool is started from the main thread (`arm_prctl`).
- everywhere: a daemon thread that checks `os.getppid()` twice a second and ends the worker once the parent is gone
  (on Linux without prctl, macOS, or a pool started from another thread).

A worker killed this way leaves at most the temporary files of the video it was on (`common.files.temp_path`,
never a file at a final path); the rerun removes them when it redoes that video.

Dask. A Dask worker is a process of its nanny (`dask worker`), not of the client, and outlives any client by
design. When the client dies the scheduler drops its futures: queued videos are never started, and a video already
running finishes and is renamed into place whole (the rerun skips it) or, if the worker dies too, leaves only a
temporary file. Outputs are atomic, so no half-written one can appear either way.

Progress. Workers send the number of frames they have just written as UDP datagrams to a socket on 127.0.0.1 that
the parent reads in a thread (`FrameChannel`); the address travels with each task. On the loopback interface a
datagram is not lost while the receive buffer has room (these are a few bytes each, a few per second); one that
cannot be sent is dropped, since it only feeds a progress bar. Dask workers may be on other machines and report
nothing: their frames are counted when each video finishes.
"""

import ctypes
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


# -- dying with the parent ---------------------------------------------------------------------------------------
def init_worker(parent_pid: int, arm_prctl: bool = True) -> None:
    """The initializer of every pool process: die with the parent (`die_with_parent`) and ignore SIGINT.

    Ctrl-C in a terminal sends SIGINT to the whole foreground process group. Only the parent acts on it: it stops
    the pool, removes the temporaries of the videos in flight and writes the run's record; a worker interrupted on
    its own would die half way through a video with no one to clean up after it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # the runner starts its workers with SIGINT blocked (common.runner._submit)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    die_with_parent(parent_pid, arm_prctl)


def die_with_parent(parent_pid: int, arm_prctl: bool = True, poll_seconds: float = 0.5) -> None:
    """Make this process end when `parent_pid` (its parent) dies: prctl on Linux and a watch thread everywhere.

    Args:
        parent_pid: the pid of the process that started this one.
        arm_prctl: use PR_SET_PDEATHSIG (only safe when the thread that started this process lives as long as its
            process does: the main thread).
        poll_seconds: how often the watch thread checks the parent.
    """
    if arm_prctl and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the watch thread still works
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl was armed
        os._exit(1)
    watch = threading.Thread(target=_watch_parent, args=(parent_pid, poll_seconds), name="parent-watch", daemon=True)
    watch.start()


def _watch_parent(parent_pid: int, poll_seconds: float) -> None:
    while os.getppid() == parent_pid:  # an orphan's parent becomes init or a subreaper: anything but parent_pid
        time.sleep(poll_seconds)
    os._exit(1)  # from any thread: the process ends now, nothing more is computed or written


# -- frame progress ----------------------------------------------------------------------------------------------
class FrameChannel:
    """Receive frame counts from worker processes and hand them to `on_frames` (in a background thread).

    Use as a context manager; `address` is what workers pass to `send_frames`. Closing drains what has arrived,
    so every count sent before a video's result came back is counted.
    """

    def __init__(self, on_frames: Callable[[int], None]):
        self._on_frames = on_frames
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.address: tuple[str, int] = self._sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="frame-progress", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self._count(self._sock.recv(64))
            except TimeoutError:
                continue

    def _count(self, datagram: bytes) -> None:
        try:
            self._on_frames(int(datagram))
        except ValueError:  # not one of ours: ignore it
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.setblocking(False)
        while True:
            try:
                self._count(self._sock.recv(64))
            except OSError:  # BlockingIOError: nothing left
                break
        self._sock.close()

    def __enter__(self) -> "FrameChannel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SENDER: socket.socket | None = None


def send_frames(address: tuple[str, int], frames: int) -> None:
    """In a worker: tell the parent's `FrameChannel` at `address` that `frames` more frames are done."""
    global _SENDER
    try:
        if _SENDER is None:
            _SENDER = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _SENDER.sendto(str(int(frames)).encode(), tuple(address))
    except OSError:  # a full buffer or a closed channel: progress is best effort, the video goes on
        pass
