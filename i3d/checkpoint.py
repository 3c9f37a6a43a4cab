"""Checkpoint files and RNG state: what makes a stopped run resume exactly where it was.

One checkpoint is one dict (STYLE point 12), written by `i3d.train.fit` and `i3d.distill_train.fit_distill`:

    {"model": TwoStreamI3D.state_dict(), "optimizer", "scheduler", "scaler", "epoch", "step", "rng": rng_state(),
     "config": the resolved config as a plain dict, "classes", "best_score", "history", ...}

Every value is a tensor or a plain Python object, so `torch.load(weights_only=True)` reads it. Writes are atomic
(temporary name in the same folder + `os.replace`): a checkpoint on disk is always whole, even after a crash.
"""

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from i3d.config import Config, config_from_dict

REQUIRED_KEYS = frozenset({"model", "optimizer", "scheduler", "epoch", "step", "config"})


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (the run's start; `set_rng_state` on resume)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG the run draws from, as tensors and plain values (loadable with torch.load(weights_only=True))."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` captured; CUDA states only on a machine with the same number of GPUs."""
    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """torch.save to a temporary name in the same folder, then os.replace: a checkpoint on disk is always whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda tmp: torch.save(state, tmp))
    return path


def copy_atomic(src: str | Path, dst: str | Path) -> None:
    """Copy `src` to `dst` through a temporary file and os.replace (last.pt -> best.pt)."""
    _write_atomic(Path(dst), lambda tmp: shutil.copyfile(src, tmp))


def _write_atomic(path: Path, write) -> None:
    """`write(tmp)` beside `path`, then os.replace; a failed or interrupted write leaves no partial file behind."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint dict written by `save_checkpoint`; a missing or damaged file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found (a run folder holds last.pt and best.pt)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise RuntimeError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
    missing = REQUIRED_KEYS - set(ckpt)
    if missing:
        raise RuntimeError(f"{path} lacks {sorted(missing)}: not a checkpoint of i3d/train.py")
    return ckpt


def config_of_checkpoint(ckpt: dict) -> Config:
    """The run's `Config`, rebuilt from the plain dict stored in the checkpoint."""
    return config_from_dict(ckpt["config"])
