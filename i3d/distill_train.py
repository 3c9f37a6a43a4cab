"""Distillation runs: the YAML config (trainer sections + `distill:`), the frozen teacher, the epoch loop, the run.

Training is the trainer's: `i3d.train.train_epochs` (optimiser, resume, DDP, validation, checkpoints) around
`i3d.train.train_one_epoch`, whose `loss_fn` hook is `distill_loss_fn` here. Nothing of the loop is copied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import yaml
from torch import nn

from i3d.build import build_model_from_config
from i3d.checkpoint import config_of_checkpoint, load_checkpoint, seed_everything
from i3d.config import Config, ConfigError, apply_overrides, config_from_dict, read_yaml_sections, validate
from i3d.distill import STREAMS, DistillConfig, Distiller, DistillError, distill_inputs, make_adapters
from i3d.distributed import setup_device
from i3d.loaders import build_loaders
from i3d.train import Run, train_epochs

# ------------------------------------------------------------------------------------------------------------ config


def distill_config_from_dict(data: Mapping | None, where: str = "distill") -> DistillConfig:
    """`DistillConfig` from the YAML `distill:` mapping, checking key names and value types."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(DistillConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise DistillError(f"{where}: unknown key(s) {unknown} in distill:; known keys: {sorted(fields)}")
    for key, value in data.items():
        default = getattr(DistillConfig(), key)
        if key == "pairs":
            ok = isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
            if not ok:
                raise DistillError(f"{where}: distill.pairs must map student to teacher endpoint names, got {value!r}")
            data[key] = dict(value)
        elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
            data[key] = float(value)
        elif not isinstance(value, type(default)):
            raise DistillError(f"{where}: distill.{key} must be a {type(default).__name__}, got {value!r}")
    try:
        return DistillConfig(**data)
    except DistillError as e:
        raise DistillError(f"{where}: {e}") from e


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], dict]:
    """Separate `distill.key=value` overrides (returned parsed, as a dict) from the trainer's own ones."""
    rest, distill = [], {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if sep and key.strip().startswith("distill."):
            distill[key.strip()[len("distill.") :]] = yaml.safe_load(text) if text.strip() else ""
        else:
            rest.append(item)
    return rest, distill


def load_distill_config(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Config, DistillConfig]:
    """A distillation YAML: the trainer's sections (the student's run) plus a `distill:` section.

    Args:
        path: YAML file; `model:`, `data:`, `optim:`, `train:` as for `tools/train_two_stream.py` (with
            `model.streams: [rgb]`, the student), and `distill:` (`DistillConfig`'s fields).
        overrides: dotted `key=value` strings; `distill.*` ones go to the distill section.

    Returns:
        (i3d.config.Config of the student's run, DistillConfig).
    """
    raw = read_yaml_sections(path, "model:, data:, optim:, train:, distill:")
    distill_raw = raw.pop("distill", None) or {}
    if not isinstance(distill_raw, dict):
        raise DistillError(f"{path}: distill: must be a mapping of DistillConfig fields, got {distill_raw!r}")
    return _resolve(raw, distill_raw, overrides, str(path))


def load_distill_run(run_dir: str | Path, overrides: Sequence[str] = ()) -> tuple[Config, DistillConfig, str]:
    """The settings of a distillation run folder, from its last.pt: for `--resume RUN_DIR` without `--config`.

    Args:
        run_dir: a folder written by `fit_distill` (holding last.pt).
        overrides: as for `load_distill_config`, applied on top of the saved settings (e.g. train.epochs=20).

    Returns:
        (the student's run Config, DistillConfig, the teacher checkpoint path recorded in the run).
    """
    path = Path(run_dir) / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {path} not found; run once without --resume first")
    ckpt = load_checkpoint(path)
    if "distill" not in ckpt:
        raise DistillError(f"{path} is not a distillation checkpoint (no 'distill' entry): resume it with "
                           "tools/train_two_stream.py --resume, or give --config and --teacher")  # fmt: skip
    run_cfg, cfg = _resolve(dict(ckpt["config"]), dict(ckpt["distill"]), overrides, str(path))
    return run_cfg, cfg, str(ckpt.get("teacher", ""))


def _resolve(raw: dict, distill_raw: dict, overrides: Sequence[str], where: str) -> tuple[Config, DistillConfig]:
    """(Config, DistillConfig) of the trainer's sections and the distill: section, with the overrides on top."""
    rest, distill_overrides = split_overrides(overrides)
    try:
        cfg = config_from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    cfg = validate(apply_overrides(cfg, rest))
    dcfg = distill_config_from_dict({**distill_raw, **distill_overrides}, where)
    if tuple(cfg.model.streams) != (dcfg.student_stream,):
        raise DistillError(
            f"{where}: model.streams={list(cfg.model.streams)} describes the student and must be "
            f"[{dcfg.student_stream}] (distill.student_stream); the teacher comes from --teacher"
        )
    return cfg, dcfg


# ---------------------------------------------------------------------------------------------------------- training


def load_teacher(path: str | Path, cfg: DistillConfig, num_classes: int) -> nn.Module:
    """The frozen teacher from one of i3d/train.py's checkpoints: its `teacher_stream` backbone, or the TwoStreamI3D.

    The teacher's config (stored in the checkpoint) rebuilds the architecture; its `pretrained` paths are ignored
    since the checkpoint holds every weight.
    """
    ckpt = load_checkpoint(path)
    tcfg = config_of_checkpoint(ckpt)
    m = tcfg.model
    no_init = dataclasses.replace(
        m, rgb=dataclasses.replace(m.rgb, pretrained=""), flow=dataclasses.replace(m.flow, pretrained="")
    )
    net = build_model_from_config(dataclasses.replace(tcfg, model=no_init))
    net.load_state_dict(ckpt["model"])
    if m.num_classes != num_classes:
        raise DistillError(f"teacher {path} has {m.num_classes} classes, the student's model.num_classes={num_classes}")
    needed = STREAMS if cfg.teacher_stream == "both" else (cfg.teacher_stream,)
    missing = [s for s in needed if s not in m.streams]
    if missing:
        raise DistillError(
            f"teacher {path} was trained with model.streams={list(m.streams)} and has no {missing} stream for "
            f"distill.teacher_stream={cfg.teacher_stream}; pick a matching teacher or teacher_stream"
        )
    return net if cfg.teacher_stream == "both" else getattr(net, cfg.teacher_stream)


def build_distiller(
    run_cfg: Config, cfg: DistillConfig, teacher: nn.Module, student: nn.Module | None = None
) -> tuple[Distiller, nn.Module]:
    """(Distiller, the student as a single-stream TwoStreamI3D). Adapters are sized by a probe at the clip size."""
    wrapper = student if student is not None else build_model_from_config(run_cfg)
    backbone = getattr(wrapper, cfg.student_stream)
    d = run_cfg.data
    probe = {s: torch.zeros(1, c, d.num_frames, d.crop_size, d.crop_size) for s, c in (("rgb", 3), ("flow", 2))}
    t_stream = cfg.feature_stream if cfg.teacher_stream == "both" else cfg.teacher_stream
    t_model = getattr(teacher, t_stream) if cfg.teacher_stream == "both" else teacher
    adapters = make_adapters(backbone, t_model, cfg.feature_pairs, probe[cfg.student_stream], probe[t_stream])
    return Distiller(backbone, teacher, cfg, adapters), wrapper


def distill_loss_fn(model: nn.Module, batch: dict, device: torch.device) -> tuple[dict, dict]:
    """`i3d.train.train_one_epoch`'s loss_fn for a Distiller (or DDP around one).

    Returns (outputs, losses). losses: the weighted terms "task", "kd", "feature" (train/loss_<term>; their sum is
    the Distiller's "loss"). outputs: the student's logits under its stream and "fused" (train/acc_rgb, acc_fused),
    the teacher's under "teacher" (train/acc_teacher), and as metrics the unweighted terms (train/task, kd, feature)
    and the fraction of clips where student and teacher predict the same class (train/agreement).
    """
    net = getattr(model, "module", model)
    out = model({s: batch[s].to(device, non_blocking=True) for s in (*net.inputs, "label")})
    weights = {"task": net.cfg.task, "kd": net.cfg.kd, "feature": net.cfg.feature}
    losses = {term: w * out[term] for term, w in weights.items()}
    agreement = (out["logits"].argmax(1) == out["teacher_logits"].argmax(1)).float().mean()
    metrics = {**{term: out[term].detach() for term in weights}, "agreement": agreement}
    student, teacher = out["logits"], out["teacher_logits"]
    return {net.cfg.student_stream: student, "fused": student, "teacher": teacher, "metrics": metrics}, losses


def fit_distill(run_cfg: Config, cfg: DistillConfig, teacher: nn.Module, out_dir: str | Path, *, resume: bool = False,
                student=None, teacher_path: str = ""):  # fmt: skip
    """Train a student into `out_dir` (config.yaml, distill.yaml, last.pt, best.pt, tb/). Returns (student, history).

    The trainer's own loop (`i3d.train.train_epochs` and `train_one_epoch` with `distill_loss_fn`), so resume, DDP,
    TensorBoard and checkpoints behave as for `i3d.train.fit`. Checkpoints are the trainer's, with "model" the
    student alone (a single-stream TwoStreamI3D, so tools/eval.py reads it as any RGB model) plus "adapters",
    "distill" (this config) and "teacher" (its path). Validation runs the student on `cfg.student_stream` only: flow
    is never opened for an RGB student.

    Args:
        run_cfg: the student's i3d.config.Config (model.streams = [student_stream]).
        cfg: the distillation settings.
        teacher: from `load_teacher`; frozen (eval mode, no gradient) for the whole run.
        resume: continue from `out_dir/last.pt` (weights, adapters, optimiser, schedule, RNG, history).
        student: a single-stream TwoStreamI3D to train instead of the one `run_cfg` builds (tests).
        teacher_path: recorded in the checkpoints.
    """
    out_dir = Path(out_dir)
    device, rank, world = setup_device(run_cfg)
    seed_everything(run_cfg.train.seed)
    distiller, wrapper = build_distiller(run_cfg, cfg, teacher, student)
    distiller.to(device)
    both = dataclasses.replace(run_cfg, model=dataclasses.replace(run_cfg.model, streams=distill_inputs(cfg)))
    pin = device.type == "cuda"
    train_loader, _, classes = build_loaders(both, rank, world, pin_memory=pin)  # paired clips
    _, val_loader, _ = build_loaders(run_cfg, rank, world, pin_memory=pin)  # the student's stream only
    trainable = nn.ModuleList([distiller.student, distiller.adapters])  # the order fixes the optimiser's state
    extra = {"distill": _plain(cfg), "teacher": str(teacher_path), "classes": classes}
    run = Run(distiller, wrapper, trainable, train_loader, val_loader, device, rank, world,
              modules={"adapters": distiller.adapters}, extra=extra, loss_fn=distill_loss_fn)  # fmt: skip
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "distill.yaml").write_text(yaml.safe_dump(_plain(cfg), sort_keys=False))
    return wrapper, train_epochs(run_cfg, out_dir, run, resume=resume)


def _plain(cfg: DistillConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["pairs"] = dict(cfg.pairs)
    return d
