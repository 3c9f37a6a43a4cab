"""Two-stream training: both streams on the same batches, each with its own classification loss, losses summed.

The streams share no parameters, so summing their losses trains each exactly as if it were trained alone on the
same clips; one optimiser step updates both. Everything is a plain function:

    fit(cfg, out_dir)
      build_model_from_config -> TwoStreamI3D (a stream may be None)     build_loaders -> train/val loaders
      train_epochs: for each epoch: train_one_epoch -> dict; _validate -> dict; save_checkpoint(last.pt [, best.pt])

`train_one_epoch(..., loss_fn=...)` and `train_epochs(cfg, out_dir, Run(...))` are also what knowledge distillation
(i3d/distill_train.py) trains with: a `Run` says what is trained, validated and saved, a `loss_fn` what is minimised.
Around this file: i3d/build.py (config -> model, contract check, optimiser), i3d/loaders.py (config -> DataLoaders),
i3d/checkpoint.py (atomic files, RNG states), i3d/distributed.py (device, DDP, all-reduce), i3d/losses.py,
i3d/board.py (TensorBoard: the curves, each epoch's input clips and the validation confusion matrix as pictures).

Runs on CPU or CUDA, and under `torchrun` with DistributedDataParallel (gloo on CPU, nccl on CUDA; rank 0 writes).

The DFDC recipes (configs/dfdc_*.yaml) use four hooks, all off by default: `data.dataset: dfdc` (metadata.json
parts), `model.num_classes: 1` (one logit + BCE; best.pt by the lowest validation log loss instead of the highest
top-1), `data.sampler: rebalanced` (`RebalancedSampler`) and `train.cutmix_alpha > 0` (one CutMix box per batch,
the same for every stream, soft targets). The RGB input is checked against the model's published input contract,
and the run's `InputSpec` (the stores' extraction settings + the data: section; i3d.data.spec) is saved in every
checkpoint ("input_spec"): eval, predict, the ensemble and distillation read it through i3d.checkpoint.
"""

import logging
import math
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from i3d import board
from i3d import evaluate as ev
from i3d.build import build_model_from_config, build_optimizer, check_batch_norm_input, check_input_contract
from i3d.checkpoint import (
    copy_atomic,
    load_checkpoint,
    remove_stale_temporaries,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from i3d.config import Config, config_to_dict
from i3d.data.cutmix import cutmix
from i3d.data.transforms import model_input
from i3d.distributed import all_reduce, broadcast_buffers, setup_device, world_size, wrap_ddp
from i3d.distributed import rank as process_rank
from i3d.loaders import build_loaders
from i3d.losses import classification_loss, predicted_classes
from i3d.meter import EpochMeter
from i3d.models import TwoStreamI3D

log = logging.getLogger(__name__)
LossFn = Callable[[nn.Module, dict, torch.device], tuple[dict, dict]]


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stops and the last good checkpoint is kept."""


# ---------------------------------------------------------------- losses and metrics


def amp_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `train.amp` on CUDA; None (float32) for "none" or off CUDA."""
    if cfg.train.amp == "none" or device.type != "cuda":
        return None
    return torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16


def memory_format(cfg: Config, device: torch.device) -> torch.memory_format:
    """channels_last_3d on CUDA with `train.channels_last` (I3D trains faster in it on a GPU: docs/PERFORMANCE.md,
    "On a GPU"), else the default layout (on the CPU channels_last was not faster)."""
    return torch.channels_last_3d if cfg.train.channels_last and device.type == "cuda" else torch.contiguous_format


def mix_batch(inputs: dict, labels: torch.Tensor, cfg: Config, rng: np.random.Generator) -> tuple[dict, torch.Tensor]:
    """(inputs, targets): unchanged, or video CutMix with one box for every stream and soft targets."""
    t = cfg.train
    if t.cutmix_alpha <= 0:
        return inputs, labels
    mixed = cutmix(inputs, labels, alpha=t.cutmix_alpha, mode=t.cutmix_mode, num_classes=cfg.model.num_classes,
                   rng=rng)
    return mixed.streams, mixed.targets


def stream_loss_fn(cfg: Config, rng: np.random.Generator) -> LossFn:
    """`train_one_epoch`'s default loss: one classification loss per stream of a TwoStreamI3D (or DDP around one).

    With train.cutmix_alpha > 0 the batch is CutMixed first (boxes drawn from `rng`). The fused logits' loss against
    the same targets is reported as the metric loss_fused (monitoring only: the fusion has no parameters).
    """

    def loss_fn(model: nn.Module, batch: dict, device: torch.device) -> tuple[dict, dict]:
        streams = getattr(model, "module", model).streams
        labels = batch["label"].to(device, non_blocking=True)
        fmt = memory_format(cfg, device)
        inputs = {s: batch[s].to(device, non_blocking=True).contiguous(memory_format=fmt) for s in streams}
        inputs, targets = mix_batch(inputs, labels, cfg, rng)
        out = model(**inputs)  # {"rgb", "flow", "fused"}: (B, K) logits of the present streams
        losses = {s: classification_loss(out[s], targets) for s in streams}
        metrics = {"loss_fused": classification_loss(out["fused"].detach(), targets).item()}
        return {**out, "metrics": metrics}, losses

    return loss_fn


def check_finite(losses: dict, *, step: int, epoch: int) -> None:
    """A non-finite loss term on any rank stops every rank, naming the term, the step and the epoch."""
    values = all_reduce(torch.stack([v.detach().float() for v in losses.values()])) / world_size()
    for name, v in zip(losses, values.tolist(), strict=True):
        if not math.isfinite(v):
            raise NonFiniteLossError(f"non-finite {name} loss ({v}) at step {step} (epoch {epoch + 1}); lower "
                                     f"optim.lr or check the {name} inputs")


def batch_metrics(outputs: dict, losses: dict, labels: torch.Tensor) -> dict:
    """One batch's metrics as plain floats: loss_<term> of every loss term, the loss_fn's own "metrics", and
    acc_<name> of every logits in `outputs` against the clips' own labels (not CutMix's soft targets)."""
    metrics = {f"loss_{name}": v.item() for name, v in losses.items()}
    metrics.update({name: float(v) for name, v in outputs.get("metrics", {}).items()})
    for name, logits in outputs.items():
        if name != "metrics":
            metrics[f"acc_{name}"] = (predicted_classes(logits) == labels).float().mean().item()
    return metrics


# ---------------------------------------------------------------- one epoch


def train_one_epoch(model, loader, optimizer, scheduler, scaler, cfg: Config, *, epoch: int, step: int,
                    device: torch.device, writer=None, loss_fn: LossFn | None = None) -> dict:
    """One pass over `loader`; returns the mean of every batch metric, clips/s, data-wait fraction (the time spent
    waiting for batches / the epoch's), clips per worker-CPU-second (`EpochMeter.clips_per_worker_cpu_s`) and the step.

    8-bit batches (`TwoStreamClipDataset(compact=True)`) become float32 model input on `device` first
    (`transforms.model_input`): that lookup counts as compute, not as waiting for data.

    Args:
        loss_fn: `loss_fn(model, batch, device) -> (outputs, losses)`, run under autocast. `losses`: already weighted
            scalar terms; their sum is back-propagated and each is logged as train/loss_<name>. `outputs`: (B, K)
            logits by name (accuracy against batch["label"], train/acc_<name>) and optionally "metrics", a dict of
            further scalars logged as train/<name>. None: `stream_loss_fn` (one loss per stream).
    """
    accum, amp = cfg.train.accum_steps, amp_dtype(cfg, device)
    rng = np.random.default_rng([cfg.train.seed, epoch, process_rank(), 0xC07])  # CutMix: (seed, epoch, rank)
    loss_fn = loss_fn or stream_loss_fn(cfg, rng)
    model.train()
    meter = EpochMeter(getattr(loader, "num_workers", 0))
    # a bar on a terminal; in a batch log (stderr not a terminal) a line every log_every steps instead
    lines = writer is not None and cfg.train.progress and not sys.stderr.isatty()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=writer is None or not cfg.train.progress or lines,
               leave=False)
    for i, batch in enumerate(bar):
        meter.start_batch()
        batch = model_input(batch, device)
        if i == 0 and writer is not None:  # once per epoch: a few clips as the model receives them
            board.log_inputs(writer, batch, cfg.data.normalization, step)
        sync = (i + 1) % accum == 0 or i + 1 == len(loader)
        with nullcontext() if sync or not hasattr(model, "no_sync") else model.no_sync():
            with torch.autocast(device.type, dtype=amp) if amp else nullcontext():
                outputs, losses = loss_fn(model, batch, device)
            check_finite(losses, step=step, epoch=epoch)
            scaler.scale(sum(losses.values()) / accum).backward()
        if sync:
            optimizer_step(model, optimizer, scaler, cfg.optim.clip_grad_norm)
            scheduler.step()
            step += 1
        labels = batch["label"].to(device, non_blocking=True)
        metrics = batch_metrics(outputs, losses, labels)
        clips_per_s = meter.end_batch(metrics, len(labels))
        if writer is not None and sync and step % cfg.train.log_every == 0:
            board.log_step(writer, metrics, optimizer, step, clips_per_s, meter.wait_frac)
            if lines:
                log.info("epoch %d batch %d/%d step %d: %s; %.1f clips/s, data wait %.0f%%, %.1f clips per "
                         "worker-CPU-s", epoch + 1, i + 1, len(loader), step,
                         ", ".join(f"{k} {float(v):.3f}" for k, v in losses.items()), clips_per_s,
                         100 * meter.wait_frac, meter.clips_per_worker_cpu_s())
        bar.set_postfix({name: f"{v.item():.3f}" for name, v in losses.items()})
    return {**meter.result(), "step": step}


def optimizer_step(model: nn.Module, optimizer, scaler, clip_grad_norm: float) -> None:
    """Unscale and clip the gradients (when clip_grad_norm > 0), step, update the scaler, zero the gradients."""
    if clip_grad_norm > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def gather_predictions(model, loader, cfg: Config, device: torch.device) -> ev.Predictions:
    """Every clip's logits of `loader`, from every rank."""
    preds = ev.predict_clips(model, loader, device, amp_dtype(cfg, device))
    if torch.distributed.is_initialized():
        parts = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, preds)
        preds = ev.Predictions.concatenate(parts)
    return preds


def validation_results(preds: ev.Predictions, cfg: Config) -> dict:
    """Validation metrics {stream: {top1, top5, mean_class_acc, loss, num, clip: {...}}} of gathered predictions."""
    weights = dict(zip(("rgb", "flow"), cfg.model.fusion_weights, strict=True))
    return ev.compute_results(preds, weights, cfg.model.num_classes)


def val_score(val: dict) -> float:
    """Higher is better: the fused top-1, or minus the fused log loss for a binary head; -inf when not validated."""
    fused = val.get("fused", {})
    score = -fused["log_loss"] if "log_loss" in fused else fused.get("top1", -math.inf)
    return score if math.isfinite(score) else -math.inf


# ---------------------------------------------------------------- the run


def fit(cfg: Config, out_dir: str | Path, *, resume: bool = False, model: TwoStreamI3D | None = None):
    """Train `cfg` into `out_dir` (config.yaml, last.pt, best.pt, tb/). Returns (model, history of epoch dicts).

    Args:
        resume: continue from `out_dir/last.pt`: weights, optimiser, scheduler, scaler, epoch, step and RNG states,
            so the result equals an uninterrupted run's (exactly on CPU).
        model: a TwoStreamI3D to train instead of `build_model_from_config(cfg)` (a custom or test backbone).
    """
    check_input_contract(cfg)
    device, rank, world = setup_device(cfg)
    seed_everything(cfg.train.seed)
    model = model or build_model_from_config(cfg)
    check_batch_norm_input(cfg, model)  # before the stores are opened: a batch of one clip may be too small
    model = model.to(device, memory_format=memory_format(cfg, device))
    train_loader, val_loader, classes, spec = build_loaders(cfg, rank, world, pin_memory=device.type == "cuda")
    extra = {"classes": classes, "input_spec": spec.to_dict()}  # what every consumer of the checkpoint feeds it
    run = Run(model=model, net=model, params=model, train_loader=train_loader, val_loader=val_loader, device=device,
              rank=rank, world=world, extra=extra)
    return model, train_epochs(cfg, Path(out_dir), run, resume=resume)


@dataclass(kw_only=True)
class Run:
    """What `train_epochs` trains, validates and saves (`fit`: one TwoStreamI3D; distillation: a Distiller).

    Attributes:
        model: the module `train_one_epoch` runs (wrapped in DistributedDataParallel when world > 1).
        net: the TwoStreamI3D validated and saved as the checkpoint's "model" (`model` itself, or the student).
        params: the module whose parameters the optimiser updates, in a fixed order.
        train_loader, val_loader, device, rank, world: from `build_loaders` and `setup_device`.
        modules: further trained modules, saved and resumed under their key (a distiller's "adapters").
        extra: constant entries of every checkpoint (classes, input contract, distillation settings).
        loss_fn: `train_one_epoch`'s loss hook; None: one classification loss per stream.
    """

    model: nn.Module
    net: nn.Module
    params: nn.Module
    train_loader: DataLoader
    val_loader: DataLoader
    device: torch.device
    rank: int = 0
    world: int = 1
    modules: dict[str, nn.Module] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    loss_fn: LossFn | None = None


def train_epochs(cfg: Config, out_dir: Path, run: Run, *, resume: bool = False) -> list[dict]:
    """The epoch loop of `fit`: optimiser, stale temporary files removed, [resume], DDP, then train / validate /
    checkpoint each epoch.

    Returns the history: one {"epoch", "step", "train": {...}, "val": {...}} per epoch, resumed ones included.
    """
    steps_per_epoch = math.ceil(len(run.train_loader) / cfg.train.accum_steps)
    optimizer, scheduler = build_optimizer(cfg, run.params, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.train.amp == "fp16" and run.device.type == "cuda")
    opt = (optimizer, scheduler, scaler)
    start_epoch, step, best, history = 0, 0, -math.inf, []
    if run.rank == 0:  # the one writer of out_dir: what its killed predecessors left half-written
        remove_stale_temporaries(out_dir)
    if resume:
        start_epoch, step, best, history = _resume(out_dir / "last.pt", run, *opt)
    model = wrap_ddp(run.model, run.device, cfg.train.seed + run.rank, resume) if run.world > 1 else run.model
    writer = board.tensorboard_writer(out_dir, cfg) if run.rank == 0 else None
    for epoch in range(start_epoch, cfg.train.epochs):
        stats = _train_epoch(model, run, cfg, opt, epoch=epoch, step=step, writer=writer, out_dir=out_dir)
        step = stats.pop("step")
        val, preds = _validate(run, cfg, epoch)
        is_best, best = val_score(val) > best, max(best, val_score(val))
        history.append({"epoch": epoch + 1, "step": step, "train": stats, "val": val})
        if run.rank == 0:
            board.log_epoch(writer, stats, val, step, epoch)
            if preds is not None:
                board.log_confusion(writer, preds, cfg, run.extra.get("classes"), step)
            save_checkpoint(out_dir / "last.pt", _checkpoint(cfg, run, opt, epoch + 1, step, best, history))
            if is_best:
                copy_atomic(out_dir / "last.pt", out_dir / "best.pt")
    if writer is not None:
        writer.close()
    return history


def _train_epoch(model, run: Run, cfg: Config, opt: tuple, *, epoch: int, step: int, writer, out_dir: Path) -> dict:
    run.train_loader.sampler.set_epoch(epoch)
    run.train_loader.dataset.set_epoch(epoch)
    try:
        return train_one_epoch(model, run.train_loader, *opt, cfg, epoch=epoch, step=step, device=run.device,
                               writer=writer, loss_fn=run.loss_fn)
    except NonFiniteLossError as e:
        kept = out_dir / "last.pt"
        kept = kept if kept.exists() else "none yet"
        raise NonFiniteLossError(f"{e}; the last good checkpoint is kept: {kept}") from None


def _validate(run: Run, cfg: Config, epoch: int) -> tuple[dict, ev.Predictions | None]:
    """Validation of `run.net` every train.eval_every epochs and after the last one: (metrics, clip predictions);
    ({}, None) in between."""
    if (epoch + 1) % cfg.train.eval_every != 0 and epoch + 1 != cfg.train.epochs:
        return {}, None
    if run.world > 1:  # rank 0's batch-norm statistics on every rank, as DDP's next forward would broadcast them
        broadcast_buffers(run.net)
    preds = gather_predictions(run.net, run.val_loader, cfg, run.device)
    return validation_results(preds, cfg), preds


def _checkpoint(cfg: Config, run: Run, opt: tuple, epoch: int, step: int, best: float, history: list) -> dict:
    optimizer, scheduler, scaler = opt
    return {"model": run.net.state_dict(), **{key: m.state_dict() for key, m in run.modules.items()},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "epoch": epoch, "step": step, "rng": rng_state(), "config": config_to_dict(cfg), "best_score": best,
            "history": history, **run.extra}


def _resume(path: Path, run: Run, optimizer, scheduler, scaler) -> tuple[int, int, float, list]:
    """Load every state of `path` into the run's objects; returns (epoch, step, best score, history)."""
    ckpt = load_checkpoint(path)
    run.net.load_state_dict(ckpt["model"])
    for key, module in run.modules.items():
        module.load_state_dict(ckpt[key])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    return ckpt["epoch"], ckpt["step"], ckpt["best_score"], ckpt["history"]
