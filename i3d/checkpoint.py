"""Checkpoint files: written atomically, read by one function, turned back into a model by one function.

One checkpoint is one dict, written by `i3d.train.fit` and `i3d.distill_train.fit_distill`:

    {"model": TwoStreamI3D.state_dict(), "optimizer", "scheduler", "scaler", "epoch", "step", "rng": rng_state(),
     "config": the resolved config as a plain dict, "classes", "input_spec": InputSpec.to_dict(), "best_score",
     "history", ...}

    read_checkpoint(path)                 the one reader (weights_io.torch_load); CheckpointError names the file
    model_from_checkpoint(path)           -> (model in eval mode, InputSpec, class names, Config, the dict); a file
                                          without "input_spec" (an older layout) is refused, naming what to do
    load_checkpoint(path)                 a resumable checkpoint (optimiser, RNG, ... present); for a damaged last.pt
                                          the error says whether best.pt beside it is whole and how to go on from it
    remove_stale_temporaries(run_dir)     temp files of saves that were killed (a run's start and resume)

Eval, predict, the ensemble and the distillation teacher all come through `model_from_checkpoint`; none of them
imports the training loop.

Every value is a tensor or a plain Python object, so `torch.load(weights_only=True)` reads it. Writes are atomic
(temporary name `.last.tmp-PID.pt` in the same folder + `os.replace`): a checkpoint on disk is always whole, even
after a crash; a save killed outright (SIGKILL, OOM) leaves its temporary file, which the run's next start removes.
"""

import logging
import random
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from common.files import remove_temps, write_atomic
from i3d.build import build_model_from_config
from i3d.config import Config, ConfigError, apply_overrides, config_from_dict
from i3d.data.spec import InputSpec, InputSpecError
from i3d.models.weights_io import WeightsError, holds_objects, short_reason, torch_load

log = logging.getLogger(__name__)

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
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
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
    write_atomic(path, lambda tmp: torch.save(state, tmp))
    return path


def copy_atomic(src: str | Path, dst: str | Path) -> None:
    """Copy `src` to `dst` through a temporary file and os.replace (last.pt -> best.pt)."""
    write_atomic(Path(dst), lambda tmp: shutil.copyfile(src, tmp))


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete the temporary checkpoints that killed saves left in `run_dir`; returns those removed.

    Called by the one process that writes the run's checkpoints (rank 0) when a run starts or resumes. A file whose
    process is still alive is kept (another run writing into the same folder, or a PID reused by an unrelated
    process), except our own PID's: this process has not saved yet.
    """
    removed = remove_temps(run_dir, "*.pt", keep_live=True)
    for path in removed:
        log.warning("removed %s, left by a save that was killed", path)
    return removed


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or of another kind; the message names the file and the fix."""


def read_checkpoint(path: str | Path, required=("model", "config")) -> dict:
    """The dict in a checkpoint file (tensors and plain values only: `torch.load(weights_only=True)`).

    Raises:
        CheckpointError naming the file: missing, unreadable (truncated, foreign) or lacking a `required` key.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found (a run folder of tools/train_two_stream.py holds last.pt "
                              "and best.pt)")
    try:
        ckpt = torch_load(path, "checkpoint")
    except WeightsError as e:
        reason = short_reason(e.__cause__) if e.__cause__ else str(e)  # torch's message runs to paragraphs
        advice = best_checkpoint_advice(path) if path.name == "last.pt" else "copy it again"
        if e.__cause__ is not None and holds_objects(e.__cause__):
            raise CheckpointError(f"{path} is not a readable checkpoint ({reason}); {advice}") from e
        raise CheckpointError(f"{path} is truncated or not a torch file ({reason}); {advice}") from e
    missing = sorted(set(required) - set(ckpt)) if isinstance(ckpt, dict) else sorted(required)
    if missing:
        raise CheckpointError(f"{path} lacks {missing}: not a checkpoint of tools/train_two_stream.py")
    return ckpt


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint a run can resume from (`read_checkpoint` requiring the optimiser, schedule and step)."""
    return read_checkpoint(path, REQUIRED_KEYS)


def best_checkpoint_advice(last: Path) -> str:
    """What to do about a run's unreadable last.pt, after trying to read the best.pt beside it."""
    best = last.with_name("best.pt")
    if not best.is_file():
        return f"there is no {best.name} beside it: start afresh (--config ... --out)"
    try:
        ckpt = read_checkpoint(best, REQUIRED_KEYS)
    except CheckpointError:
        return f"{best} cannot be resumed from either: start afresh (--config ... --out)"
    epoch = ckpt["epoch"]
    return (f"{best} is whole (epoch {epoch}, step {ckpt['step']}): evaluate or predict with it, or, to continue "
            f"training from it, cp {best} {last} and --resume again (the epochs after {epoch} are trained again)")


def config_of_checkpoint(ckpt: dict) -> Config:
    """The run's `Config`, rebuilt from the plain dict stored in the checkpoint."""
    return config_from_dict(ckpt["config"])


def checkpoint_spec(ckpt: dict, path: str | Path = "checkpoint") -> InputSpec:
    """The input spec a checkpoint's model was trained with (its "input_spec").

    Only the current layout is read: a checkpoint without one is from before specs were saved, when the flow was
    divided by a fixed 20 px whatever the stores' bound, so no spec can be inferred for it.
    """
    if not isinstance(ckpt.get("input_spec"), dict):
        raise CheckpointError(f"{path} has no input_spec (a checkpoint of an older layout, which is no longer read); "
                              "train the model again with tools/train_two_stream.py")
    try:
        return InputSpec.from_dict(ckpt["input_spec"])
    except (InputSpecError, TypeError) as e:
        raise CheckpointError(f"{path}: its input_spec cannot be read ({e})") from e


class LoadedCheckpoint(NamedTuple):
    """What `model_from_checkpoint` returns."""

    model: nn.Module  # the TwoStreamI3D, weights loaded, in eval mode
    spec: InputSpec  # how its input must be made
    classes: list[str]  # one name per class (two for a one-logit head: P(second) = sigmoid)
    config: Config  # the run's config
    checkpoint: dict  # the rest of the file (epoch, history, ...)


def model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild a checkpoint's model from its saved config and load its weights (its `pretrained` paths are ignored)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    try:
        cfg = config_from_dict(ckpt["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: its saved config is not valid ({e})") from e
    cfg = apply_overrides(cfg, ["model.rgb.pretrained=", "model.flow.pretrained="])
    model = build_model_from_config(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: its weights do not fit the model its config describes ({e})") from e
    spec = checkpoint_spec(ckpt, path)
    return LoadedCheckpoint(model.to(device).eval(), spec, class_names(ckpt, cfg.model.num_classes), cfg, ckpt)


def class_names(ckpt: dict, num_classes: int) -> list[str]:
    """The checkpoint's "classes", or placeholders; a one-logit head has two names (negative, positive)."""
    wanted = 2 if num_classes == 1 else num_classes
    names = [str(c) for c in ckpt.get("classes") or ()]
    if len(names) == wanted:
        return names
    return ["negative", "positive"] if num_classes == 1 else [f"class {i}" for i in range(num_classes)]
