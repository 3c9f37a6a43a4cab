"""Distillation runs: the run config (its `distill:` section), the frozen teacher, the epoch loop, the run.

Training is the trainer's: `i3d.train.train_epochs` (optimiser, resume, DDP, validation, checkpoints) around
`i3d.train.train_one_epoch`, whose `loss_fn` hook is `distill_loss_fn` here. Nothing of the loop is copied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from torch import nn

from i3d.build import build_model_from_config, check_batch_norm_input
from i3d.checkpoint import load_checkpoint, model_from_checkpoint, seed_everything
from i3d.config import (
    Config,
    ConfigError,
    DistillConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    validate,
)
from i3d.data.dataset import STREAMS
from i3d.data.spec import InputSpec, check_matches
from i3d.distill import Distiller, DistillError, distill_inputs, make_adapters
from i3d.distributed import setup_device
from i3d.loaders import build_loaders
from i3d.losses import predicted_classes
from i3d.train import Run, train_epochs

# ------------------------------------------------------------------------------------------------------------ config


def load_distill_config(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Config, DistillConfig]:
    """A distillation YAML: the student's run (`model:`, `data:`, `optim:`, `train:`) and its `distill:` section.

    One config system: `i3d.config.load_config` reads the file and the `--set` overrides (`distill.kd=1.0` as any
    other key). Returns (the run's Config, its distill section).
    """
    return _checked(load_config(path, overrides), str(path))


def load_distill_run(run_dir: str | Path, overrides: Sequence[str] = ()) -> tuple[Config, DistillConfig, str]:
    """The settings of a distillation run folder, from its last.pt: for `--resume RUN_DIR` without `--config`.

    Returns:
        (the student's run Config, its distill section, the teacher checkpoint path recorded in the run).
    """
    path = Path(run_dir) / "last.pt"
    ckpt = load_checkpoint(path)
    if "distill" not in ckpt:
        raise DistillError(f"{path} is not a distillation checkpoint (no 'distill' entry): resume it with "
                           "tools/train_two_stream.py --resume, or give --config and --teacher")
    try:
        cfg = validate(apply_overrides(config_from_dict(ckpt["config"]), overrides))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
    run_cfg, dcfg = _checked(cfg, str(path))
    return run_cfg, dcfg, str(ckpt.get("teacher", ""))


def _checked(cfg: Config, where: str) -> tuple[Config, DistillConfig]:
    if tuple(cfg.model.streams) != (cfg.distill.student_stream,):
        raise DistillError(
            f"{where}: model.streams={list(cfg.model.streams)} describes the student and must be "
            f"[{cfg.distill.student_stream}] (distill.student_stream); the teacher comes from --teacher"
        )
    return cfg, cfg.distill


# ---------------------------------------------------------------------------------------------------------- training


def load_teacher(path: str | Path, cfg: DistillConfig, num_classes: int) -> tuple[nn.Module, InputSpec]:
    """The frozen teacher from a checkpoint (`model_from_checkpoint`): its `teacher_stream` backbone, or the
    TwoStreamI3D, and the input spec it was trained with."""
    teacher = model_from_checkpoint(path)
    net, m = teacher.model, teacher.config.model
    if m.num_classes != num_classes:
        raise DistillError(f"teacher {path} has {m.num_classes} classes, the student's model.num_classes={num_classes}")
    needed = STREAMS if cfg.teacher_stream == "both" else (cfg.teacher_stream,)
    missing = [s for s in needed if s not in m.streams]
    if missing:
        raise DistillError(
            f"teacher {path} was trained with model.streams={list(m.streams)} and has no {missing} stream for "
            f"distill.teacher_stream={cfg.teacher_stream}; pick a matching teacher or teacher_stream"
        )
    return (net if cfg.teacher_stream == "both" else getattr(net, cfg.teacher_stream)), teacher.spec


def check_teacher_input(teacher_spec: InputSpec, spec: InputSpec, cfg: DistillConfig) -> None:
    """The teacher must see input made as in its own training: the same extraction and, if it sees RGB, RGB
    normalisation (a DistillError naming the difference otherwise)."""
    check_matches(teacher_spec, spec.extraction(), "the teacher's checkpoint against the student's stores")
    sees_rgb = cfg.teacher_stream in ("rgb", "both")
    if sees_rgb and teacher_spec.normalization != spec.normalization:
        raise DistillError(f"the teacher was trained on {teacher_spec.normalization!r} RGB but the student's run "
                           f"feeds {spec.normalization!r}; set data.normalization={teacher_spec.normalization}")


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
    agreement = (predicted_classes(out["logits"]) == predicted_classes(out["teacher_logits"])).float().mean()
    metrics = {**{term: out[term].detach() for term in weights}, "agreement": agreement}
    student, teacher = out["logits"], out["teacher_logits"]
    return {net.cfg.student_stream: student, "fused": student, "teacher": teacher, "metrics": metrics}, losses


def fit_distill(run_cfg: Config, cfg: DistillConfig, teacher: nn.Module, out_dir: str | Path, *, resume: bool = False,
                student=None, teacher_path: str = "", teacher_spec: InputSpec | None = None):
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
        teacher_spec: the teacher's input spec (`load_teacher`); the student's stores must match it.
    """
    out_dir = Path(out_dir)
    run_cfg = dataclasses.replace(run_cfg, distill=cfg)  # one config: the checkpoint's holds its distill: section
    device, rank, world = setup_device(run_cfg)
    seed_everything(run_cfg.train.seed)
    distiller, wrapper = build_distiller(run_cfg, cfg, teacher, student)
    check_batch_norm_input(run_cfg, wrapper)  # the student trains; the teacher stays in eval mode
    distiller.to(device)
    both = dataclasses.replace(run_cfg, model=dataclasses.replace(run_cfg.model, streams=distill_inputs(cfg)))
    pin = device.type == "cuda"
    train_loader, _, classes, spec = build_loaders(both, rank, world, pin_memory=pin)  # paired clips
    _, val_loader, _, _ = build_loaders(run_cfg, rank, world, pin_memory=pin)  # the student's stream only
    if teacher_spec is not None:
        check_teacher_input(teacher_spec, spec, cfg)
    trainable = nn.ModuleList([distiller.student, distiller.adapters])  # the order fixes the optimiser's state
    extra = {"distill": _plain(cfg), "teacher": str(teacher_path), "classes": classes, "input_spec": spec.to_dict()}
    run = Run(model=distiller, net=wrapper, params=trainable, train_loader=train_loader, val_loader=val_loader,
              device=device, rank=rank, world=world, modules={"adapters": distiller.adapters}, extra=extra,
              loss_fn=distill_loss_fn)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "distill.yaml").write_text(yaml.safe_dump(_plain(cfg), sort_keys=False))
    return wrapper, train_epochs(run_cfg, out_dir, run, resume=resume)


def _plain(cfg: DistillConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["pairs"] = dict(cfg.pairs)
    return d
