"""Ensemble prediction from raw videos: every model prepares its own input from its input contract.

    members = [load_member("runs/mc3/best.pt", 1.0), load_member("runs/r3d/best.pt", 2.0)]
    result = predict_videos(members, find_videos(["data/test_videos"]), fps=25.0, prior=0.5)
    write_outputs(result, "submission.csv")

For each video:

    read_video(short side = the largest any member needs)          decoded once, shared by all members
      -> per member: evenly spaced clips (eval_num_frames x eval_num_clips of its run; short videos loop)
         -> contracts.prepare (resize short side, centre crop, normalise: the member's own contract)
         -> RGB logits, averaged over clips -> probabilities (sigmoid for a 1-logit head, softmax otherwise)
      -> weighted mean of the members' probabilities

A video that cannot be decoded gets the prior probability from every member and is listed in `failed`; the run
goes on. Models must agree on their classes; a binary (1-logit) head counts as the classes ["REAL", "FAKE"]
with P(FAKE) = sigmoid(logit), so it averages with a 2-way softmax head trained on the same classes.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flow.video import read_video
from i3d.config import Config, config_from_dict
from i3d.data.dfdc import CLASSES as BINARY_CLASSES
from i3d.data.transforms import clip_indices, even_starts
from i3d.models.contracts import InputContract, prepare

log = logging.getLogger(__name__)


class EnsembleError(ValueError):
    """A model spec, checkpoint or argument the ensemble cannot use; the message names it and the fix."""


@dataclass
class Member:
    """One model of the ensemble and how to feed it.

    Attributes:
        name: a short label for output columns ("m0", "m1", ...).
        checkpoint: the file it was loaded from.
        weight: its weight in the ensemble mean (normalised over all members by `ensemble_mean`).
        model: a TwoStreamI3D with an RGB stream, in eval mode.
        contract: crop, short side, normalisation and minimum frames it was trained with.
        clip_frames: frames per clip (0 = the whole video, looped up to `contract.min_frames`).
        num_clips: evenly spaced clips per video; their logits are averaged.
        classes: class names of its outputs (["REAL", "FAKE"] for a binary head).
        binary: True for a 1-logit head (sigmoid), False for a softmax head.
    """

    name: str
    checkpoint: Path
    weight: float
    model: nn.Module
    contract: InputContract
    clip_frames: int
    num_clips: int
    classes: list[str]
    binary: bool

    def describe(self) -> dict:
        return {"name": self.name, "checkpoint": str(self.checkpoint), "weight": self.weight,
                "contract": asdict(self.contract), "clip_frames": self.clip_frames, "num_clips": self.num_clips,
                "classes": self.classes, "binary": self.binary}  # fmt: skip


@dataclass
class EnsembleResult:
    """Per video: the ensemble's and every member's class probabilities, and which videos failed to decode."""

    filenames: list[str]
    classes: list[str]
    probs: np.ndarray  # (V, K) ensemble probabilities
    member_probs: np.ndarray  # (V, M, K)
    members: list[Member]
    errors: dict[str, str] = field(default_factory=dict)  # filename -> why it was not decoded


# ---------------------------------------------------------------- loading


def parse_model_spec(spec: str) -> tuple[Path, float]:
    """Split "CKPT[:WEIGHT]" into (path, weight); a suffix that is not a number stays part of the path."""
    path, sep, tail = spec.rpartition(":")
    if sep and path:
        try:
            weight = float(tail)
        except ValueError:
            return Path(spec), 1.0
        if not weight >= 0:
            raise EnsembleError(f"--model {spec}: weight {tail} must be >= 0")
        return Path(path), weight
    return Path(spec), 1.0


def contract_of_run(cfg: Config, ckpt: dict) -> InputContract:
    """The input contract a checkpoint's model was trained with.

    The trainer saves it in every checkpoint ("input_contract", with the short side of the stores it validated
    on); older checkpoints get `i3d.train.run_input_contract(cfg)`: the run's data.crop_size, data.normalization
    and data.num_frames, with the short side scaled from the zoo contract (crop 112 / short side 128 -> crop 32 /
    short side 37). The run's own values are what the weights saw, whatever the zoo contract says.
    """
    from i3d.train import run_input_contract

    if isinstance(ckpt.get("input_contract"), dict):
        return InputContract(**ckpt["input_contract"])
    contract = run_input_contract(cfg)
    if contract is None:
        raise EnsembleError(f"model.rgb.name={cfg.model.rgb.name!r} has no input contract in "
                            "i3d.models.contracts.CONTRACTS")  # fmt: skip
    return contract


def read_checkpoint(path: Path) -> dict:
    """A checkpoint dict with "model" and "config"; a missing or foreign file is an EnsembleError naming it."""
    if not path.is_file():
        raise EnsembleError(f"checkpoint {path} not found (a run folder of tools/train_two_stream.py holds best.pt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise EnsembleError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or not {"model", "config"} <= set(ckpt):
        raise EnsembleError(f"{path} has no 'model' and 'config': not a checkpoint of tools/train_two_stream.py")
    return ckpt


def load_member(path: str | Path, weight: float = 1.0, name: str = "m0", device: str | torch.device = "cpu"
                ) -> Member:  # fmt: skip
    """Rebuild a checkpoint's model from its saved config and load its weights (its RGB stream is used)."""
    from i3d.train import build_model_from_config  # the trainer's builder: one way to turn a config into a model

    path = Path(path)
    ckpt = read_checkpoint(path)
    cfg = config_from_dict(ckpt["config"])
    if "rgb" not in cfg.model.streams:
        raise EnsembleError(f"{path} has no RGB stream (model.streams={list(cfg.model.streams)}); the ensemble "
                            "predicts from decoded frames, so it needs RGB models")  # fmt: skip
    cfg = _without_pretrained(cfg)
    model = build_model_from_config(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise EnsembleError(f"{path}: weights do not fit the model its config describes ({e})") from e
    binary = cfg.model.num_classes == 1
    classes = list(ckpt.get("classes") or (BINARY_CLASSES if binary else range(cfg.model.num_classes)))
    classes = [str(c) for c in classes]
    if binary and len(classes) != 2:  # a 1-logit head scores the second of two classes
        classes = list(BINARY_CLASSES)
    d = cfg.data
    return Member(name, path, float(weight), model.to(device).eval(), contract_of_run(cfg, ckpt),
                  d.eval_num_frames, d.eval_num_clips, classes, binary)  # fmt: skip


def _without_pretrained(cfg: Config) -> Config:
    """The run's config with pretrained paths cleared: the checkpoint holds the trained weights."""
    from i3d.config import apply_overrides

    return apply_overrides(cfg, ["model.rgb.pretrained=", "model.flow.pretrained="])


def check_members(members: list[Member]) -> list[str]:
    """The class names every member shares; members trained on other classes are an error naming them."""
    if not members:
        raise EnsembleError("no models given; pass --model CKPT[:WEIGHT] at least once")
    classes = members[0].classes
    for m in members[1:]:
        if m.classes != classes:
            raise EnsembleError(f"{m.checkpoint} predicts {m.classes} but {members[0].checkpoint} predicts "
                                f"{classes}; ensemble models trained on the same classes")  # fmt: skip
    if sum(m.weight for m in members) <= 0:
        raise EnsembleError(f"model weights {[m.weight for m in members]} sum to zero; give a positive weight")
    return classes


# ---------------------------------------------------------------- prediction


def member_clips(frames: np.ndarray, member: Member) -> torch.Tensor:
    """(num_clips, 3, T, S, S) inputs of `member` from decoded (N, H, W, 3) uint8 frames, by its contract."""
    n = len(frames)
    if member.clip_frames == 0:  # the whole video, looped up to min_frames by prepare
        return prepare(frames, member.contract)[None]
    starts = even_starts(n, member.clip_frames, member.num_clips)
    return torch.stack([prepare(frames[clip_indices(n, member.clip_frames, s)], member.contract) for s in starts])


def to_probabilities(logits: torch.Tensor, binary: bool) -> np.ndarray:
    """(K,) class probabilities from one row of logits: [1 - p, p] with p = sigmoid for a binary head, else softmax."""
    logits = logits.double()
    if binary:
        p = torch.sigmoid(logits.reshape(-1)[0]).item()
        return np.asarray([1.0 - p, p])
    return torch.softmax(logits.reshape(-1), 0).numpy()


@torch.no_grad()
def predict_frames(members: list[Member], frames: np.ndarray) -> np.ndarray:
    """(M, K) probabilities of every member for one decoded video; clip logits are averaged before the softmax."""
    out = []
    for m in members:
        device = next(m.model.parameters()).device
        logits = m.model(rgb=member_clips(frames, m).to(device))["rgb"].float().cpu()  # (clips, classes)
        out.append(to_probabilities(logits.mean(0), m.binary))
    return np.stack(out)


def ensemble_mean(member_probs: np.ndarray, weights: list[float]) -> np.ndarray:
    """Weighted mean over members (axis -2) of (..., M, K) probabilities."""
    w = np.asarray(weights, np.float64)
    return np.tensordot(w / w.sum(), member_probs, axes=([0], [-2]))


def prior_vector(prior: float | None, classes: list[str]) -> np.ndarray:
    """Probabilities given to an undecodable video: [1 - prior, prior] for two classes, else uniform."""
    k = len(classes)
    if k == 2:
        p = 0.5 if prior is None else float(prior)
        if not 0 <= p <= 1:
            raise EnsembleError(f"--prior {p} must be a probability in [0, 1]")
        return np.asarray([1.0 - p, p])
    if prior is not None:
        raise EnsembleError(f"--prior applies to two-class models; these predict {k} classes (uniform is used)")
    return np.full(k, 1.0 / k)


def largest_short_side(members: list[Member]) -> int:
    return max(m.contract.short_side for m in members)


def predict_videos(members: list[Member], videos: list[tuple[str, Path]], *, fps: float = 25.0,
                   prior: float | None = None) -> EnsembleResult:  # fmt: skip
    """Run the ensemble on (video_id, path) pairs; each video is decoded once for all members.

    Args:
        members: from `load_member`.
        videos: e.g. `flow.extract.find_videos(specs)`; output rows are named by the file name (DFDC's
            submission format).
        fps: decoding frame rate (the one the training stores were extracted at).
        prior: probability of the second class (FAKE) given to videos that fail to decode (None: 0.5, or uniform
            beyond two classes).
    """
    classes = check_members(members)
    fallback = prior_vector(prior, classes)
    short_side = largest_short_side(members)
    weights = [m.weight for m in members]
    names, rows, errors = [], [], {}
    for _video_id, path in videos:
        name = Path(path).name
        try:
            frames, _ = read_video(path, fps=fps, short_side=short_side)
        except Exception as e:  # any decoder failure (VideoError, cv2.error, ...) -> the prior, never a crash
            errors[name] = f"{type(e).__name__}: {e}"
            log.warning("%s could not be decoded (%s); it gets the prior %s", path, e, fallback.tolist())
            rows.append(np.tile(fallback, (len(members), 1)))
        else:
            rows.append(predict_frames(members, frames))
        names.append(name)
    member_probs = np.stack(rows) if rows else np.zeros((0, len(members), len(classes)))
    return EnsembleResult(names, classes, ensemble_mean(member_probs, weights), member_probs, members, errors)


# ---------------------------------------------------------------- files


def _class_columns(classes: list[str]) -> tuple[list[str], list[int]]:
    """Binary: one "label" column holding P(second class), DFDC's format; otherwise one column per class."""
    return (["label"], [1]) if len(classes) == 2 else (list(classes), list(range(len(classes))))


def write_outputs(result: EnsembleResult, out_csv: str | Path) -> dict[str, Path]:
    """Write the submission and, beside it, `<stem>_per_model.csv` and `<stem>_report.json`.

    submission.csv: filename,label (P(FAKE)) for two classes, else filename and one column per class.
    <stem>_per_model.csv: filename, status ("ok" or "failed"), then each member's columns ("m0", "m1", ... or
    "m0:<class>"), then the ensemble's.
    <stem>_report.json: members (checkpoint, weight, contract), classes, failed videos with the reason.
    """
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    columns, idx = _class_columns(result.classes)
    with open(out_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", *columns])
        for name, p in zip(result.filenames, result.probs, strict=True):
            writer.writerow([name, *(f"{p[k]:.6f}" for k in idx)])
    per_model = out_csv.with_name(f"{out_csv.stem}_per_model.csv")
    tags = [m.name if len(idx) == 1 else f"{m.name}:{c}" for m in result.members for c in columns]
    with open(per_model, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "status", *tags, *(f"ensemble:{c}" if len(idx) > 1 else "ensemble"
                                                         for c in columns)])  # fmt: skip
        for v, name in enumerate(result.filenames):
            values = [result.member_probs[v, m, k] for m in range(len(result.members)) for k in idx]
            values += [result.probs[v, k] for k in idx]
            writer.writerow([name, "failed" if name in result.errors else "ok", *(f"{x:.6f}" for x in values)])
    report = out_csv.with_name(f"{out_csv.stem}_report.json")
    report.write_text(json.dumps({"classes": result.classes, "num_videos": len(result.filenames),
                                  "members": [m.describe() for m in result.members],
                                  "failed": [{"filename": k, "error": v} for k, v in result.errors.items()]},
                                 indent=2) + "\n")  # fmt: skip
    return {"submission": out_csv, "per_model": per_model, "report": report}
