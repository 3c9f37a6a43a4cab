"""Atomic writes: a file at its final path is always whole, even after a crash or a kill -9.

Every stage writes through `write_atomic` (stores have their own temporary names, `flow.store.temp_path`): reports
and indexes here, checkpoints in `i3d.checkpoint`, features in `i3d.inference.feature_run`, face-clip labels in
`faces.labels`.
"""

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """`write(tmp)` to `.NAME.tmp-PID` beside `path`, then os.replace; a failed write leaves no partial file behind
    (a killed process leaves its temporary, which `i3d.checkpoint.remove_stale_temporaries` clears for checkpoints)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
