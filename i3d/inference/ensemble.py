"""Ensemble prediction from raw videos: every model's input is made from its own checkpoint's input spec.

    members = [load_member("runs/mc3/best.pt", 1.0), load_foreign_member("r2p1_112", "their_r2p1.model", 2.0)]
    result = predict_videos(members, find_videos(["data/test_videos"]), prior=0.5)
    write_outputs(result, "submission.csv")

For each video:

    read_video once per distinct (fps, short side) among the members   as each member's stores were decoded
      -> per member: i3d.inference.predict.video_inputs (its eval clips, centre crop, normalisation; TV-L1 flow
         with its own engine and bound when it has a flow stream, computed once per distinct flow setting; the
         clips' frames through its stores' JPEG and 8-bit flow when it was trained on stores)
         -> fused logits averaged over clips -> probabilities (sigmoid for a 1-logit head, softmax otherwise)
      -> weighted mean of the members' probabilities

Each video's seconds per stage go into `EnsembleResult.seconds` and the report (`STAGES`): decoding, face detection,
cutting the face clips, reading them back, TV-L1, input making, and each member's forward pass.

A video that cannot be decoded gets the prior probability from every member and is listed in `errors`, one that
shows no face (scoring face clips) in `no_face`; the run goes on. Models must agree on their classes; a binary
(1-logit) head counts as two classes with P(second) = sigmoid(logit), so it averages with a 2-way softmax head trained
on the same classes.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.runner import describe
from faces.extract import cut_faces
from faces.options import FaceOptions
from flow.video import read_video
from i3d.checkpoint import CheckpointError, model_from_checkpoint
from i3d.data.spec import InputSpec
from i3d.inference.foreign import BINARY_CLASSES, load_foreign
from i3d.inference.predict import to_probabilities, video_flow, video_inputs
from i3d.models.weights_io import WeightsError
from i3d.models.zoo import MODELS

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
        model: a TwoStreamI3D in eval mode (every stream it has is used).
        spec: its checkpoint's input spec.
        classes: class names of its outputs (two for a binary head).
        binary: True for a 1-logit head (sigmoid), False for a softmax head.
        load_seconds: how long building the model and loading its weights took (the run's start-up).
    """

    name: str
    checkpoint: Path
    weight: float
    model: nn.Module
    spec: InputSpec
    classes: list[str]
    binary: bool
    load_seconds: float = 0.0

    def describe(self) -> dict:
        return {"name": self.name, "checkpoint": str(self.checkpoint), "weight": self.weight,
                "streams": list(self.model.streams), "input_spec": self.spec.to_dict(), "classes": self.classes,
                "binary": self.binary, "load_seconds": round(self.load_seconds, 3)}


@dataclass
class EnsembleResult:
    """Per video: the ensemble's and every member's class probabilities; the videos that failed or showed no face."""

    filenames: list[str]
    classes: list[str]
    probs: np.ndarray  # (V, K) ensemble probabilities
    member_probs: np.ndarray  # (V, M, K)
    members: list[Member]
    errors: dict[str, str] = field(default_factory=dict)  # filename -> why it could not be scored ("VideoError: ...")
    no_face: dict[str, str] = field(default_factory=dict)  # filename -> why no face clip was cut from it
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # filename -> stage (`STAGES`) -> seconds


# where a video's time goes, in order; "forward:<member name>" for each member, "total" for the whole video
STAGES = ("decode", "detect", "crop", "read_clips", "flow", "inputs", "forward", "total")


# ---------------------------------------------------------------- loading


def parse_model_spec(spec: str) -> tuple[str | None, Path, float]:
    """Split "[TYPE:]PATH[:WEIGHT]" into (type or None, path, weight).

    TYPE is a zoo model name (`i3d.models.zoo.MODELS`: i3d, res34, mc3_112, ...) for a weight file of
    another codebase (`i3d.inference.foreign`); without it PATH is one of our checkpoints. A suffix that is not a
    number stays part of the path.
    """
    model_type, sep, rest = spec.partition(":")
    looks_like_type = len(model_type) > 1 and model_type.isidentifier() and not Path(model_type).exists()  # not C:/
    if sep and model_type not in MODELS and looks_like_type:
        raise EnsembleError(f"--model {spec}: unknown model type {model_type!r}; use one of {sorted(MODELS)}, or "
                            "give one of our checkpoints without a type")
    if not (sep and model_type in MODELS):
        model_type, rest = None, spec
    path, sep, tail = rest.rpartition(":")
    if sep and path:
        try:
            weight = float(tail)
        except ValueError:
            return model_type, Path(rest), 1.0
        if not weight >= 0:
            raise EnsembleError(f"--model {spec}: weight {tail} must be >= 0")
        return model_type, Path(path), weight
    return model_type, Path(rest), 1.0


def load_member(path: str | Path, weight: float = 1.0, name: str = "m0", device: str | torch.device = "cpu"
                ) -> Member:
    """A checkpoint's model, input spec and classes (`i3d.checkpoint.model_from_checkpoint`)."""
    start = time.perf_counter()
    try:
        loaded = model_from_checkpoint(path, device)
    except CheckpointError as e:
        raise EnsembleError(str(e)) from e
    binary = loaded.config.model.num_classes == 1
    return Member(name, Path(path), float(weight), loaded.model, loaded.spec, loaded.classes, binary,
                  time.perf_counter() - start)


def load_foreign_member(model_type: str, path: str | Path, weight: float = 1.0, name: str = "m0", *,
                        class_order: tuple[str, str] = BINARY_CLASSES, sampling: str = "first", clips: int = 1,
                        device: str | torch.device = "cpu") -> Member:
    """A weight file of another codebase by its type (`i3d.inference.foreign.load_foreign`), as a binary member."""
    start = time.perf_counter()
    try:
        model, spec = load_foreign(model_type, path, class_order=class_order, sampling=sampling, clips=clips,
                                   device=device)
    except (WeightsError, ValueError) as e:
        raise EnsembleError(f"--model {model_type}:{path}: {e}") from e
    return Member(name, Path(path), float(weight), model, spec, list(BINARY_CLASSES), True, time.perf_counter() - start)


def check_members(members: list[Member]) -> list[str]:
    """The class names every member shares; members trained on other classes are an error naming them."""
    if not members:
        raise EnsembleError("no models given; pass --model CKPT[:WEIGHT] at least once")
    classes = members[0].classes
    for m in members[1:]:
        if m.classes != classes:
            raise EnsembleError(f"{m.checkpoint} predicts {m.classes} but {members[0].checkpoint} predicts "
                                f"{classes}; ensemble models trained on the same classes")
    if sum(m.weight for m in members) <= 0:
        raise EnsembleError(f"model weights {[m.weight for m in members]} sum to zero; give a positive weight")
    return classes


# ---------------------------------------------------------------- prediction


def decode_key(spec: InputSpec) -> tuple:
    """Members with equal keys share one decoding of a video."""
    return spec.fps, spec.short_side


def flow_key(spec: InputSpec) -> tuple:
    """Members with equal keys share one TV-L1 computation of a video."""
    return (*decode_key(spec), spec.flow_engine, spec.tvl1, spec.flow_convention)


@torch.no_grad()
def predict_decoded(members: list[Member], decoded: dict[tuple, np.ndarray], timings: dict | None = None
                    ) -> np.ndarray:
    """(M, K) probabilities of every member for one video, decoded once per `decode_key` in `decoded`.

    Args:
        timings: seconds are added to its "flow", "inputs" and "forward:<member name>" entries (the forward pass
            includes the copy to the model's device and back, which waits for the device to finish).
    """
    out, flows, timings = [], {}, {} if timings is None else timings
    for m in members:
        frames = decoded[decode_key(m.spec)]
        flow = None
        if "flow" in m.model.streams:
            if flow_key(m.spec) not in flows:
                tick = time.perf_counter()
                flows[flow_key(m.spec)] = video_flow(frames, m.spec)
                add_seconds(timings, "flow", tick)
            flow = flows[flow_key(m.spec)]
        tick = time.perf_counter()
        inputs = video_inputs(frames, m.spec, m.model.streams, flow)
        device = next(m.model.parameters()).device
        add_seconds(timings, "inputs", tick)
        tick = time.perf_counter()
        logits = m.model(**{s: x.to(device) for s, x in inputs.items()})["fused"].float().cpu()  # (clips, classes)
        add_seconds(timings, f"forward:{m.name}", tick)
        out.append(to_probabilities(logits.mean(0), m.binary))
    return np.stack(out)


def add_seconds(timings: dict, stage: str, since: float) -> None:
    """Add the seconds from `since` (a `time.perf_counter()` reading) until now to `timings[stage]`."""
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - since


def format_seconds(timings: dict[str, float]) -> str:
    """One video's stages in `STAGES` order, e.g. "12.3 s: decode 2.10, detect 3.20, ..., forward:m0 4.00"."""
    order = sorted((s for s in timings if s != "total"), key=lambda s: STAGES.index(s.partition(":")[0]))
    return f"{timings.get('total', 0.0):.1f} s: " + ", ".join(f"{s} {timings[s]:.2f}" for s in order)


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


def predict_videos(members: list[Member], videos: list[tuple[str, Path]], *, prior: float | None = None,
                   faces: FaceOptions | None = None, face_dir: str | Path | None = None, aggregate: str = "max"
                   ) -> EnsembleResult:
    """Run the ensemble on (video_id, path) pairs; each video is decoded once per distinct (fps, short side).

    Args:
        members: from `load_member` / `load_foreign_member`.
        videos: e.g. `flow.extract.find_videos(specs)`; output rows are named by the file name (DFDC's
            submission format).
        prior: probability of the second class (FAKE) given to videos that fail to decode or, with `faces`, show
            no face (None: 0.5, or uniform beyond two classes).
        faces: score face clips instead of whole frames, as the models were trained (DFDC): each raw video goes
            through `faces.extract.cut_faces` into `face_dir` (the training clips' recipe), every clip is scored,
            and the video gets its clips' `aggregate`: "max" (the clip with the highest P(FAKE): one fake face
            among real ones makes the video fake) or "mean".
    """
    if aggregate not in ("max", "mean"):
        raise EnsembleError(f"aggregate={aggregate!r}: use 'max' or 'mean'")
    if faces is not None and face_dir is None:
        raise EnsembleError("scoring face clips needs a folder to cut them into (face_dir)")
    classes = check_members(members)
    fallback = prior_vector(prior, classes)
    keys = list(dict.fromkeys(decode_key(m.spec) for m in members))
    weights = [m.weight for m in members]
    names, rows, errors, no_face, seconds = [], [], {}, {}, {}
    for video_id, path in videos:
        name, start, timings = Path(path).name, time.perf_counter(), {}
        try:
            if faces is None:
                rows.append(_score(members, path, keys, timings=timings))
            else:
                rows.append(_score_faces(members, video_id, path, keys, faces, Path(face_dir), weights, aggregate,
                                         timings))
        except NoFaceError as e:
            no_face[name] = str(e)
            rows.append(np.tile(fallback, (len(members), 1)))
        except Exception as e:  # any decoder failure (VideoError, cv2.error, ...) -> the prior, never a crash
            errors[name] = describe(e).removeprefix(f"{path}: ")  # the caller lists it once, with the path
            rows.append(np.tile(fallback, (len(members), 1)))
        add_seconds(timings, "total", start)
        log.info("%s: %s", name, format_seconds(timings))
        names.append(name)
        seconds[name] = timings
    member_probs = np.stack(rows) if rows else np.zeros((0, len(members), len(classes)))
    return EnsembleResult(names, classes, ensemble_mean(member_probs, weights), member_probs, members, errors,
                          no_face, seconds)


class NoFaceError(ValueError):
    """A video in which no face clip could be cut (no face, or only clips shorter than the minimum)."""


def _score(members: list[Member], path: Path, keys: list[tuple], *, timings: dict | None = None,
           stage: str = "decode") -> np.ndarray:
    """(M, K) probabilities of every member for one video file, decoded once per key (the time under `stage`)."""
    timings = {} if timings is None else timings
    tick = time.perf_counter()
    decoded = {key: read_video(path, fps=key[0], short_side=key[1])[0] for key in keys}
    add_seconds(timings, stage, tick)
    return predict_decoded(members, decoded, timings)


def _score_faces(members, video_id: str, path: Path, keys, opts: FaceOptions, face_dir: Path, weights,
                 aggregate: str, timings: dict | None = None) -> np.ndarray:
    """(M, K) of one raw video from its face clips: each clip scored, then the clips' max or mean."""
    timings = {} if timings is None else timings
    record = cut_faces(video_id, path, out=face_dir, opts=opts)  # a video that cannot be read raises, naming it
    for stage, key in (("decode", "decode_seconds"), ("detect", "detect_seconds"), ("crop", "cut_seconds")):
        timings[stage] = timings.get(stage, 0.0) + record[key]
    if not record["crops"]:
        raise NoFaceError("; ".join(record["warnings"]) or "no face clip")
    clips = np.stack([_score(members, face_dir / c["file"], keys, timings=timings, stage="read_clips")
                      for c in record["crops"]])  # (C, M, K)
    if aggregate == "mean":
        return clips.mean(axis=0)
    return clips[int(np.argmax(ensemble_mean(clips, weights)[:, -1]))]  # the clip the ensemble finds most positive


# ---------------------------------------------------------------- files


def _class_columns(classes: list[str]) -> tuple[list[str], list[int]]:
    """Binary: one "label" column holding P(second class), DFDC's format; otherwise one column per class."""
    return (["label"], [1]) if len(classes) == 2 else (list(classes), list(range(len(classes))))


def write_outputs(result: EnsembleResult, out_csv: str | Path) -> dict[str, Path]:
    """Write the submission and, beside it, `<stem>_per_model.csv` and `<stem>_report.json`.

    submission.csv: filename,label (P(FAKE)) for two classes, else filename and one column per class.
    <stem>_per_model.csv: filename, status ("ok", "failed" or "no_face"), then each member's columns ("m0", "m1",
    ... or "m0:<class>"), then the ensemble's.
    <stem>_report.json: members (checkpoint, weight, streams, input spec, load seconds), classes, the videos that failed
    and those without a face, with the reason, and each video's seconds per stage (`STAGES`).
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
                                                         for c in columns)])
        for v, name in enumerate(result.filenames):
            values = [result.member_probs[v, m, k] for m in range(len(result.members)) for k in idx]
            values += [result.probs[v, k] for k in idx]
            writer.writerow([name, _status(result, name), *(f"{x:.6f}" for x in values)])
    report = out_csv.with_name(f"{out_csv.stem}_report.json")
    report.write_text(json.dumps({"classes": result.classes, "num_videos": len(result.filenames),
                                  "members": [m.describe() for m in result.members],
                                  "failed": [{"filename": k, "error": v} for k, v in result.errors.items()],
                                  "no_face": [{"filename": k, "reason": v} for k, v in result.no_face.items()],
                                  "seconds": {k: {s: round(t, 4) for s, t in v.items()}
                                              for k, v in result.seconds.items()}}, indent=2) + "\n")
    return {"submission": out_csv, "per_model": per_model, "report": report}


def _status(result: EnsembleResult, name: str) -> str:
    return "failed" if name in result.errors else "no_face" if name in result.no_face else "ok"
