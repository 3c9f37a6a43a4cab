"""Distillation runs: the YAML config (trainer sections + `distill:`), the frozen teacher, the epoch loop, the run.

Reuses i3d.train's model/data/optimiser builders, evaluation, checkpoint files, RNG capture, device and DDP set-up
and TensorBoard writer. Only the epoch loop is its own, because `i3d.train.train_one_epoch` hard-wires one
cross-entropy per stream (see docs/DISTILLATION.md for the hook that would let it be reused as well).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from i3d import train
from i3d.config import Config, ConfigError, apply_overrides, config_from_dict, config_to_dict, validate
from i3d.distill import STREAMS, DistillConfig, Distiller, DistillError, distill_inputs, make_adapters

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
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass one of configs/distill_*.yaml")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (model:, data:, optim:, train:, distill:)")
    distill_raw = raw.pop("distill", None) or {}
    if not isinstance(distill_raw, dict):
        raise DistillError(f"{path}: distill: must be a mapping of DistillConfig fields, got {distill_raw!r}")
    rest, distill_overrides = split_overrides(overrides)
    try:
        cfg = config_from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
    cfg = validate(apply_overrides(cfg, rest))
    dcfg = distill_config_from_dict({**distill_raw, **distill_overrides}, str(path))
    if tuple(cfg.model.streams) != (dcfg.student_stream,):
        raise DistillError(
            f"{path}: model.streams={list(cfg.model.streams)} describes the student and must be "
            f"[{dcfg.student_stream}] (distill.student_stream); the teacher comes from --teacher"
        )
    return cfg, dcfg


# ---------------------------------------------------------------------------------------------------------- training


def load_teacher(path: str | Path, cfg: DistillConfig, num_classes: int) -> nn.Module:
    """The frozen teacher from one of i3d/train.py's checkpoints: its `teacher_stream` backbone, or the TwoStreamI3D.

    The teacher's config (stored in the checkpoint) rebuilds the architecture; its `pretrained` paths are ignored
    since the checkpoint holds every weight.
    """
    ckpt = train.load_checkpoint(path)
    tcfg = train.config_of_checkpoint(ckpt)
    m = tcfg.model
    no_init = dataclasses.replace(
        m, rgb=dataclasses.replace(m.rgb, pretrained=""), flow=dataclasses.replace(m.flow, pretrained="")
    )
    net = train.build_model_from_config(dataclasses.replace(tcfg, model=no_init))
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
    wrapper = student if student is not None else train.build_model_from_config(run_cfg)
    backbone = getattr(wrapper, cfg.student_stream)
    d = run_cfg.data
    probe = {s: torch.zeros(1, c, d.num_frames, d.crop_size, d.crop_size) for s, c in (("rgb", 3), ("flow", 2))}
    t_stream = cfg.feature_stream if cfg.teacher_stream == "both" else cfg.teacher_stream
    t_model = getattr(teacher, t_stream) if cfg.teacher_stream == "both" else teacher
    adapters = make_adapters(backbone, t_model, cfg.feature_pairs, probe[cfg.student_stream], probe[t_stream])
    return Distiller(backbone, teacher, cfg, adapters), wrapper


def distill_one_epoch(model, loader, optimizer, scheduler, scaler, run_cfg, *, epoch: int, step: int,
                      device: torch.device, writer=None) -> dict:  # fmt: skip
    """One pass of `model` (a Distiller, or DDP around one); mean loss terms, student/teacher accuracy, step."""
    net = getattr(model, "module", model)
    accum, amp = run_cfg.train.accum_steps, train._amp_dtype(run_cfg, device)
    model.train()
    keys = ("loss", "task", "kd", "feature", "acc_student", "acc_teacher", "agreement")
    sums, n = torch.zeros(len(keys), dtype=torch.float64), 0
    for i, batch in enumerate(loader):
        inputs = {s: batch[s].to(device, non_blocking=True) for s in (*net.inputs, "label")}
        sync = (i + 1) % accum == 0 or i + 1 == len(loader)
        with nullcontext() if sync or not hasattr(model, "no_sync") else model.no_sync():
            with torch.autocast(device.type, dtype=amp) if amp else nullcontext():
                out = model(inputs)
            _check_finite(out["loss"], step, epoch)
            scaler.scale(out["loss"] / accum).backward()
        if sync:
            train._optimizer_step(net, optimizer, scaler, run_cfg.optim.clip_grad_norm)
            scheduler.step()
            step += 1
        s_pred, t_pred, labels = out["logits"].argmax(1), out["teacher_logits"].argmax(1), inputs["label"]
        row = [out[k].item() for k in keys[:4]]
        row += [(s_pred == labels).float().mean().item(), (t_pred == labels).float().mean().item(),
                (s_pred == t_pred).float().mean().item()]  # fmt: skip
        sums += torch.tensor(row, dtype=torch.float64) * len(labels)
        n += len(labels)
        if writer is not None and sync and step % run_cfg.train.log_every == 0:
            for k, v in zip(keys, row, strict=True):
                writer.add_scalar(f"train/{k}", v, step)
            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
    totals = train._all_reduce(torch.cat([sums, torch.tensor([n], dtype=torch.float64)]))
    result = {k: (totals[j] / max(totals[-1], 1)).item() for j, k in enumerate(keys)}
    return {**result, "step": step}


def _check_finite(loss: torch.Tensor, step: int, epoch: int) -> None:
    value = train._all_reduce(loss.detach().float().clone()).item()
    if not math.isfinite(value):
        raise train.NonFiniteLossError(
            f"non-finite distillation loss ({value}) at step {step} (epoch {epoch}); the last good checkpoint is "
            "kept; lower optim.lr or the loss weights"
        )


def fit_distill(run_cfg: Config, cfg: DistillConfig, teacher: nn.Module, out_dir: str | Path, *, resume: bool = False,
                student=None, teacher_path: str = ""):  # fmt: skip
    """Train a student into `out_dir` (config.yaml, distill.yaml, last.pt, best.pt, tb/). Returns (student, history).

    Checkpoints are i3d/train.py's, with "model" the student alone (a single-stream TwoStreamI3D, so tools/eval.py
    reads it as any RGB model) plus "adapters", "distill" (this config) and "teacher" (its path). Validation runs
    the student on `cfg.student_stream` only: flow is never opened for an RGB student.

    Args:
        run_cfg: the student's i3d.config.Config (model.streams = [student_stream]).
        cfg: the distillation settings.
        teacher: from `load_teacher`.
        resume: continue from `out_dir/last.pt` (weights, adapters, optimiser, schedule, RNG, history).
        student: a single-stream TwoStreamI3D to train instead of the one `run_cfg` builds (tests).
        teacher_path: recorded in the checkpoints.
    """
    out_dir = Path(out_dir)
    device, rank, world = train.setup_device(run_cfg)
    _seed_everything(run_cfg.train.seed)
    distiller, wrapper = build_distiller(run_cfg, cfg, teacher, student)
    distiller.to(device)
    both = dataclasses.replace(run_cfg, model=dataclasses.replace(run_cfg.model, streams=distill_inputs(cfg)))
    pin = device.type == "cuda"
    train_loader, _, classes = train.build_loaders(both, rank, world, pin_memory=pin)  # paired clips
    _, val_loader, _ = train.build_loaders(run_cfg, rank, world, pin_memory=pin)  # the student's stream only
    trainable = nn.ModuleList([distiller.student, distiller.adapters])  # the order fixes the optimiser's state
    steps_per_epoch = math.ceil(len(train_loader) / run_cfg.train.accum_steps)
    optimizer, scheduler = train.build_optimizer(run_cfg, trainable, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=run_cfg.train.amp == "fp16" and device.type == "cuda")
    start_epoch, step, best, history = 0, 0, -1.0, []
    if resume:
        ckpt = train.load_checkpoint(out_dir / "last.pt")
        wrapper.load_state_dict(ckpt["model"])
        distiller.adapters.load_state_dict(ckpt["adapters"])
        for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
            obj.load_state_dict(ckpt[key])
        start_epoch, step, best, history = ckpt["epoch"], ckpt["step"], ckpt["best_top1"], ckpt["history"]
        train.set_rng_state(ckpt["rng"])
    wrapped = distiller
    if world > 1:  # the teacher's frozen parameters are ignored by DDP; student and adapters are synchronised
        ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(distiller, device_ids=ids)
        if not resume:
            torch.manual_seed(run_cfg.train.seed + rank)
    writer = train._writer(out_dir, run_cfg) if rank == 0 else None
    if rank == 0:
        (out_dir / "distill.yaml").write_text(yaml.safe_dump(_plain(cfg), sort_keys=False))
    for epoch in range(start_epoch, run_cfg.train.epochs):
        train_loader.sampler.set_epoch(epoch)
        train_loader.dataset.set_epoch(epoch)
        stats = distill_one_epoch(wrapped, train_loader, optimizer, scheduler, scaler, run_cfg, epoch=epoch,
                                  step=step, device=device, writer=writer)  # fmt: skip
        step = stats.pop("step")
        if world > 1:  # rank 0's batch-norm statistics, as DDP's forward would broadcast them (and the trainer's eval)
            for buffer in wrapper.buffers():
                torch.distributed.broadcast(buffer, 0)
        last = epoch + 1 == run_cfg.train.epochs
        val = train.evaluate(wrapper, val_loader, run_cfg, device) if (epoch + 1) % run_cfg.train.eval_every == 0 \
            or last else {}  # fmt: skip
        top1 = val.get("fused", {}).get("top1", -1.0)
        is_best, best = top1 > best, max(best, top1)
        history.append({"epoch": epoch + 1, "step": step, "train": stats, "val": val})
        if rank == 0:
            train._log_epoch(writer, stats, val, step, epoch)
            state = {"model": wrapper.state_dict(), "adapters": distiller.adapters.state_dict(),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict(), "epoch": epoch + 1, "step": step, "rng": train.rng_state(),
                     "config": config_to_dict(run_cfg), "distill": _plain(cfg), "teacher": str(teacher_path),
                     "classes": classes, "best_top1": best, "history": history}  # fmt: skip
            train.save_checkpoint(out_dir / "last.pt", state)
            if is_best:
                train._copy_atomic(out_dir / "last.pt", out_dir / "best.pt")
    if writer is not None:
        writer.close()
    return wrapper, history


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _plain(cfg: DistillConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["pairs"] = dict(cfg.pairs)
    return d
