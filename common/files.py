"""Atomic outputs: a file at its final path is always whole, even after a crash, a full disk or a kill -9.

Every writer in the project writes to `temp_path(final)` and renames it into place (`write_atomic` does both for
a callable; stores, videos and checkpoints call `temp_path` themselves). A writer killed before the rename leaves
its temporary, `.STEM.tmp-PID.SUFFIX` beside the final file; `remove_temps` is the one sweep that clears them: a
per-video job before it redoes a video (shards never share a video, so one shard never removes another's work in
progress), a run's record before rewriting it, a training run for its checkpoints.
"""

import errno
import fnmatch
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

TEMP = re.compile(r"\.(?P<stem>.+)\.tmp-(?P<pid>\d+)(?P<suffix>\.[^.]*)?")


def temp_path(path: str | os.PathLike) -> Path:
    """Where `path` is written before its rename: hidden, in the same folder (the rename is atomic on one
    filesystem), one per process, with the same suffix (OpenCV picks a video's container from it)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """`write(tmp)` to `temp_path(path)`, then os.replace; a failed write leaves no partial file behind."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data, default: Callable | None = None) -> None:
    """`data` as indented JSON through `write_atomic`; `default` as json.dumps takes it (None: JSON types only)."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, default=default) + "\n", encoding="utf-8"))


def remove_temps(folder: str | os.PathLike, name: str = "*", keep_live: bool = False) -> list[Path]:
    """Remove the temporaries in `folder` of final files whose name matches the glob `name` ("v_1.h5",
    "v_1_*.avi", "*.pt"); returns what was removed.

    Args:
        keep_live: keep a temporary whose writing process is alive (another run writing into the same folder),
            except this process's own.
    """
    final = Path(name)
    removed = []
    for path in sorted(Path(folder).glob(f".{final.stem}.tmp-*{final.suffix}")):
        match = TEMP.fullmatch(path.name)
        if not match or not fnmatch.fnmatchcase(match["stem"] + (match["suffix"] or ""), name):
            continue
        pid = int(match["pid"])
        if keep_live and pid != os.getpid() and process_alive(pid):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "errno = 28", "errno = 122")
SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's np.save when the disk fills mid-array


def is_disk_full(e: BaseException) -> bool:
    """Whether `e` (or an exception it was raised from) says the disk or the user's quota is full. HDF5 reports it
    only in its message ("Can't close file ... errno = 28"), numpy as a short write without an errno, Python's own
    I/O as OSError.errno."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e)
        if getattr(e, "errno", None) in DISK_FULL or any(t in text for t in DISK_FULL_TEXT):
            return True
        if isinstance(e, OSError) and SHORT_WRITE.search(text):
            return True
        e = e.__cause__ or e.__context__
    return False
