"""Two-stream training: both streams on the same batches, each with its own classification loss, losses summed.

The streams share no parameters, so summing their losses trains each exactly as if it were trained alone on the
same clips; one optimiser step updates both. Everything is a plain function:

    fit(cfg, out_dir)
      build_model_from_config -> TwoStreamI3D (a stream may be None)     build_loaders -> train/val loaders
      for each epoch: train_one_epoch -> dict; evaluate -> dict; save_checkpoint(last.pt [, best.pt])

Runs on CPU or CUDA, and under `torchrun` with DistributedDataParallel (gloo on CPU, nccl on CUDA; rank 0 writes).

The DFDC recipes (configs/dfdc_*.yaml) use four hooks, all off by default: `data.dataset: dfdc` (metadata.json
parts), `model.num_classes: 1` (one logit + BCE; best.pt by the lowest validation log loss instead of the highest
top-1), `data.sampler: rebalanced` (`RebalancedSampler`) and `train.cutmix_alpha > 0` (one CutMix box per batch,
the same for every stream, soft targets). The RGB input is checked against the model's input contract, and the
contract trained with is saved in every checkpoint ("input_contract") for tools that feed raw videos.
"""

import dataclasses
import logging
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from tqdm import tqdm

from flow.store import VideoStore
from i3d import evaluate as ev
from i3d.config import Config, ConfigError, OptimConfig, StreamConfig, config_from_dict, config_to_dict, save_config
from i3d.data import index as idx
from i3d.data.cutmix import cutmix
from i3d.data.dataset import TwoStreamClipDataset
from i3d.data.dfdc import dfdc_index
from i3d.data.sampler import RebalancedSampler
from i3d.models import InceptionI3d, TwoStreamI3D
from i3d.models.contracts import CONTRACTS, InputContract
from i3d.models.zoo import build_model
from i3d.weights import load_pretrained
from i3d.weights_zoo import load_zoo_pretrained

log = logging.getLogger(__name__)
IN_CHANNELS = {"rgb": 3, "flow": 2}


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stops and the last good checkpoint is kept."""


# ---------------------------------------------------------------- model, data, optimiser


def build_backbone(stream: str, scfg: StreamConfig, num_classes: int, dropout: float) -> nn.Module:
    """One stream's net, initialised from `scfg.pretrained` when given (a different class count resets the head)."""
    if scfg.name == "i3d":  # built here rather than by the zoo: the zoo's builder takes no dropout
        net = InceptionI3d(num_classes=num_classes, in_channels=IN_CHANNELS[stream], dropout=dropout)
    else:
        net = build_model(scfg.name, num_classes, in_channels=IN_CHANNELS[stream])
    if scfg.pretrained:
        if not Path(scfg.pretrained).is_file():
            raise FileNotFoundError(f"model.{stream}.pretrained={scfg.pretrained} not found; fix the path or set ''")
        load = load_pretrained if scfg.name == "i3d" else load_zoo_pretrained  # torchvision / kenshohara / ours
        load(net, scfg.pretrained, prefix=scfg.pretrained_prefix)  # keeps a fresh head of another size
    return net


def build_model_from_config(cfg: Config) -> TwoStreamI3D:
    """TwoStreamI3D with a backbone for each of `cfg.model.streams` and None for the other."""
    m = cfg.model
    nets = {s: build_backbone(s, getattr(m, s), m.num_classes, m.dropout) if s in m.streams else None
            for s in ("rgb", "flow")}  # fmt: skip
    return TwoStreamI3D(nets["rgb"], nets["flow"], weights=tuple(m.fusion_weights))


def run_input_contract(cfg: Config, short_side: int | None = None) -> InputContract | None:
    """The input contract the RGB stream trains with: crop, normalisation and clip length from `cfg.data`.

    The short side is `short_side` (the stores' frame size, which the validation centre crop sees) or else the zoo
    contract's, scaled by data.crop_size / its crop. None without an RGB stream or for a model with no contract.
    """
    base = CONTRACTS.get(cfg.model.rgb.name)
    if "rgb" not in cfg.model.streams or base is None:
        return None
    d = cfg.data
    short_side = short_side or max(d.crop_size, round(base.short_side * d.crop_size / base.crop_size))
    return InputContract(d.crop_size, max(short_side, d.crop_size), d.normalization, min_frames=d.num_frames)


def check_input_contract(cfg: Config) -> None:
    """Refuse an RGB normalisation other than the model's contract (a silent mix-up); log another crop size."""
    name, d = cfg.model.rgb.name, cfg.data
    base = CONTRACTS.get(name)
    if "rgb" not in cfg.model.streams or base is None:
        return
    if d.normalization != base.normalization:
        raise ConfigError(f"model.rgb.name={name} takes {base.normalization!r} input (i3d.models.contracts) but "
                          f"data.normalization={d.normalization!r}; set --set data.normalization={base.normalization}")
    if d.crop_size != base.crop_size:
        log.warning("data.crop_size=%d differs from %s's contract (%d px); tools will feed the checkpoint %d px",
                    d.crop_size, name, base.crop_size, d.crop_size)  # fmt: skip


def build_index(cfg: Config, train: bool, classes=None) -> tuple[list, list[str]]:
    """(video_id, label) pairs and class names of the training or validation part, by `data.dataset`."""
    d = cfg.data
    path = d.val_index if (not train and d.val_index) else d.index
    subset = (d.train_subset if train else d.val_subset) or None
    if not path:
        raise ValueError(f"data.index is empty; set it to the {d.dataset} split files (--set data.index=PATH)")
    if d.dataset == "folder" and not train and not d.val_index:
        raise ValueError("data.dataset=folder validates on another class-folder tree: set data.val_index=FOLDER")
    if d.dataset == "ucf101":
        return idx.ucf101_index(path, d.split, subset)
    if d.dataset == "hmdb51":
        return idx.hmdb51_index(path, d.split, subset)
    if d.dataset == "kinetics":
        return idx.kinetics_index(path, subset, classes=classes)
    if d.dataset == "csv":
        return idx.csv_index(path, subset, classes=classes)
    if d.dataset == "dfdc":
        return dfdc_index(path, split=subset)  # ["REAL", "FAKE"]
    return idx.folder_index(path)  # "folder": index / val_index are the class-folder roots


def build_dataset(cfg: Config, train: bool, classes=None) -> tuple[TwoStreamClipDataset, list[str]]:
    """The training (random clips) or validation (centre crop, `eval_num_frames` x `eval_num_clips`) dataset."""
    d = cfg.data
    if not d.store_root:
        raise ValueError("data.store_root is empty; set it to tools/extract_flow.py's --out folder")
    pairs, found = build_index(cfg, train, classes)
    if classes is not None and list(found) != list(classes):
        raise ValueError(f"{d.dataset}: validation classes differ from training classes ({len(found)} vs "
                         f"{len(classes)}); give both parts the same class list")  # fmt: skip
    if len(found) != cfg.model.num_classes and not (cfg.model.num_classes == 1 and len(found) == 2):
        raise ValueError(f"the index has {len(found)} classes but model.num_classes={cfg.model.num_classes}; "
                         f"set --set model.num_classes={len(found)} (or 1 for a binary head on two classes)")
    items = idx.resolve_stores(d.store_root, pairs, d.skip_missing, with_video_id=True)
    common = dict(crop_size=d.crop_size, seed=cfg.train.seed, streams=cfg.model.streams, normalization=d.normalization)
    if train:
        return TwoStreamClipDataset(items, num_frames=d.num_frames, train=True, flip=d.flip, **common), list(found)
    dataset = TwoStreamClipDataset(items, num_frames=d.eval_num_frames, train=False, num_clips=d.eval_num_clips,
                                   **common)  # fmt: skip
    return dataset, list(found)


def build_datasets(cfg: Config) -> tuple[TwoStreamClipDataset, TwoStreamClipDataset, list[str]]:
    train_ds, classes = build_dataset(cfg, train=True)
    val_ds, _ = build_dataset(cfg, train=False, classes=classes)
    return train_ds, val_ds, classes


class ShardSampler(Sampler):
    """Every `world`-th index from `rank`: each rank evaluates its own share, nothing padded or repeated."""

    def __init__(self, length: int, rank: int = 0, world: int = 1):
        self.indices = list(range(rank, length, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_loaders(cfg: Config, rank: int = 0, world: int = 1, pin_memory: bool = False):
    """(train_loader, val_loader, class_names). The train order depends only on (seed, epoch), via set_epoch."""
    train_ds, val_ds, classes = build_datasets(cfg)
    t, workers = cfg.train, cfg.data.num_workers
    sampler = build_train_sampler(cfg, train_ds, rank, world)
    if len(sampler) < t.batch_size:
        raise ValueError(f"{len(sampler)} training clips per process and epoch (data.sampler={cfg.data.sampler}, "
                         f"{len(train_ds)} videos, {world} processes) < train.batch_size={t.batch_size}")
    extra = dict(num_workers=workers, pin_memory=pin_memory, persistent_workers=workers > 0)
    train = DataLoader(train_ds, t.batch_size, sampler=sampler, drop_last=True, **extra)
    return train, build_eval_loader(cfg, val_ds, rank, world, pin_memory), classes


def build_train_sampler(cfg: Config, dataset: TwoStreamClipDataset, rank: int = 0, world: int = 1) -> Sampler:
    """A shuffle of every video (data.sampler=random) or a class-rebalanced subset (rebalanced), sharded over ranks.

    Both reshuffle by (train.seed, epoch) through `set_epoch`.
    """
    if cfg.data.sampler == "rebalanced":
        labels = [label for _path, label, _video_id in dataset.items]
        return RebalancedSampler(labels, seed=cfg.train.seed, num_replicas=world, rank=rank)
    return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed,
                              drop_last=True)  # fmt: skip


def build_eval_loader(cfg: Config, dataset, rank: int = 0, world: int = 1, pin_memory: bool = False) -> DataLoader:
    """Each rank its share of `dataset`; batches of 1 for whole videos (`eval_num_frames=0`: lengths differ)."""
    batch = 1 if cfg.data.eval_num_frames == 0 else cfg.train.batch_size
    return DataLoader(dataset, batch, sampler=ShardSampler(len(dataset), rank, world), pin_memory=pin_memory,
                      num_workers=cfg.data.num_workers)  # fmt: skip


def lr_factor(step: int, o: OptimConfig, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of `optim.lr` after `step` optimiser steps: linear warm-up, then step / cosine / constant."""
    warmup = round(o.warmup_epochs * steps_per_epoch)
    if o.schedule == "step":
        factor = o.gamma ** sum(step >= round(m * steps_per_epoch) for m in o.milestones)
    elif o.schedule == "cosine":
        progress = min(max(step - warmup, 0) / max(total_steps - warmup, 1), 1.0)
        floor = o.min_lr / o.lr
        factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    if step < warmup:
        factor *= o.warmup_factor + (1 - o.warmup_factor) * step / warmup
    return factor


def build_optimizer(cfg: Config, model: nn.Module, steps_per_epoch: int):
    """SGD with momentum and a LambdaLR stepped once per optimiser step."""
    o = cfg.optim
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                          nesterov=o.nesterov)  # fmt: skip
    total = steps_per_epoch * cfg.train.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, o, steps_per_epoch, total))
    return opt, sched


# ---------------------------------------------------------------- one epoch


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x)
    return x


def _amp_dtype(cfg: Config, device: torch.device):
    if cfg.train.amp == "none" or device.type != "cuda":
        return None
    return torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on (B, K) logits, or BCE with logits for a binary head (B, 1).

    Targets are class ids (B,) or soft targets from CutMix: (B, K) probabilities, or (B, 1) / (B,) P(positive).
    """
    logits = logits.float()
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits, targets.float().reshape(-1, 1))
    return F.cross_entropy(logits, targets)


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """argmax, or logit > 0 (p > 0.5) for a binary head."""
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def stream_losses(out: dict, targets: torch.Tensor, streams, *, step: int, epoch: int) -> dict:
    """The loss of each stream; a non-finite value on any rank stops every rank with the step and stream named."""
    losses = {s: classification_loss(out[s], targets) for s in streams}
    world = dist.get_world_size() if dist.is_initialized() else 1
    values = _all_reduce(torch.stack([v.detach() for v in losses.values()])) / world
    for s, v in zip(streams, values.tolist(), strict=True):
        if not math.isfinite(v):
            raise NonFiniteLossError(f"non-finite {s} loss ({v}) at step {step} (epoch {epoch + 1}); lower optim.lr "
                                     f"or check the {s} inputs")  # fmt: skip
    return losses


def train_one_epoch(model, loader, optimizer, scheduler, scaler, cfg: Config, *, epoch: int, step: int,
                    device: torch.device, writer=None) -> dict:  # fmt: skip
    """One pass over `loader`; returns mean losses and accuracies per stream, clips/s, data-wait fraction, step."""
    net = getattr(model, "module", model)
    streams, accum, amp = net.streams, cfg.train.accum_steps, _amp_dtype(cfg, device)
    model.train()
    keys = [f"{m}_{s}" for m in ("loss", "acc") for s in (*streams, "fused")]
    sums = torch.zeros(len(keys) + 1, dtype=torch.float64)  # each metric summed over clips, then the clip count
    wait = busy = 0.0
    last = time.perf_counter()  # end of the previous iteration: [last, now) waits for data, [now, end) computes
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=writer is None or not cfg.train.progress, leave=False)
    rank = dist.get_rank() if dist.is_initialized() else 0
    rng = np.random.default_rng([cfg.train.seed, epoch, rank, 0xC07])  # CutMix boxes: a function of (seed, epoch, rank)
    for i, batch in enumerate(bar):
        now = time.perf_counter()
        wait += now - last
        labels = batch["label"].to(device, non_blocking=True)
        sync = (i + 1) % accum == 0 or i + 1 == len(loader)
        with nullcontext() if sync or not hasattr(model, "no_sync") else model.no_sync():
            inputs, targets = mix_batch({s: batch[s].to(device, non_blocking=True) for s in streams}, labels, cfg, rng)
            with torch.autocast(device.type, dtype=amp) if amp else nullcontext():
                out = model(**inputs)
            losses = stream_losses(out, targets, streams, step=step, epoch=epoch)
            scaler.scale(sum(losses.values()) / accum).backward()
        if sync:
            _optimizer_step(model, optimizer, scaler, cfg.optim.clip_grad_norm)
            scheduler.step()
            step += 1
        metrics = batch_metrics(out, losses, labels, targets)
        sums += torch.tensor([metrics[k] * len(labels) for k in keys] + [len(labels)], dtype=torch.float64)
        end = time.perf_counter()
        busy += end - now
        if writer is not None and sync and step % cfg.train.log_every == 0:
            for key, value in metrics.items():
                writer.add_scalar(f"train/{key}", value, step)
            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
            writer.add_scalar("train/clips_per_s", len(labels) * _world() / max(end - last, 1e-9), step)
            writer.add_scalar("train/data_wait_frac", wait / max(wait + busy, 1e-9), step)
        last = end
        bar.set_postfix({s: f"{v.item():.3f}" for s, v in losses.items()})
    sums = _all_reduce(sums)
    n = max(sums[-1].item(), 1)
    result = {key: sums[k].item() / n for k, key in enumerate(keys)}
    result.update(clips_per_s=sums[-1].item() / max(wait + busy, 1e-9), data_wait_frac=wait / max(wait + busy, 1e-9),
                  step=step)  # fmt: skip
    return result


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def _optimizer_step(model, optimizer, scaler, clip_grad_norm: float) -> None:
    if clip_grad_norm > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def batch_metrics(out: dict, losses: dict, labels: torch.Tensor, targets: torch.Tensor | None = None) -> dict:
    """Loss and accuracy of each stream and of the fused logits on one batch (plain floats).

    Losses are against `targets` (CutMix's soft ones; default `labels`), accuracy against the clips' own labels.
    """
    targets = labels if targets is None else targets
    metrics = {f"loss_{s}": v.item() for s, v in losses.items()}
    metrics["loss_fused"] = classification_loss(out["fused"].detach(), targets).item()
    for s in (*losses, "fused"):
        metrics[f"acc_{s}"] = (predicted_classes(out[s]) == labels).float().mean().item()
    return metrics


def mix_batch(inputs: dict, labels: torch.Tensor, cfg: Config, rng: np.random.Generator) -> tuple[dict, torch.Tensor]:
    """(inputs, targets): unchanged, or video CutMix with one box for every stream and soft targets."""
    t = cfg.train
    if t.cutmix_alpha <= 0:
        return inputs, labels
    mixed = cutmix(inputs, labels, alpha=t.cutmix_alpha, mode=t.cutmix_mode, num_classes=cfg.model.num_classes,
                   rng=rng)  # fmt: skip
    return mixed.streams, mixed.targets


def evaluate(model, loader, cfg: Config, device: torch.device) -> dict:
    """Validation metrics {stream: {top1, top5, mean_class_acc, loss, num, clip: {...}}}, gathered over ranks."""
    preds = ev.predict(model, loader, device, _amp_dtype(cfg, device))
    if dist.is_initialized():
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, preds)
        preds = ev.Predictions.concatenate(parts)
    weights = dict(zip(("rgb", "flow"), cfg.model.fusion_weights, strict=True))
    return ev.compute_results(preds, weights, cfg.model.num_classes)


# ---------------------------------------------------------------- checkpoints and RNG


def rng_state() -> dict:
    """Every RNG the run draws from, as tensors and plain values (loadable with torch.load(weights_only=True))."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint dict written by `save_checkpoint`; a missing or damaged file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found (a run folder holds last.pt and best.pt)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise RuntimeError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
    missing = {"model", "optimizer", "scheduler", "epoch", "step", "config"} - set(ckpt)
    if missing:
        raise RuntimeError(f"{path} lacks {sorted(missing)}: not a checkpoint of i3d/train.py")
    return ckpt


def config_of_checkpoint(ckpt: dict) -> Config:
    return config_from_dict(ckpt["config"])


# ---------------------------------------------------------------- the run


def setup_device(cfg: Config) -> tuple[torch.device, int, int]:
    """(device, rank, world). Under torchrun (WORLD_SIZE > 1) joins the process group: nccl on CUDA, else gloo."""
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible; use --set train.device=cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    if cfg.train.amp != "none" and not cuda:
        log.warning("train.amp=%s needs CUDA; training in float32 on %s", cfg.train.amp, device)
    return device, rank, world


def fit(cfg: Config, out_dir: str | Path, *, resume: bool = False, model: TwoStreamI3D | None = None):
    """Train `cfg` into `out_dir` (config.yaml, last.pt, best.pt, tb/). Returns (model, history of epoch dicts).

    Args:
        resume: continue from `out_dir/last.pt`: weights, optimiser, scheduler, scaler, epoch, step and RNG states,
            so the result equals an uninterrupted run's (exactly on CPU).
        model: a TwoStreamI3D to train instead of `build_model_from_config(cfg)` (a custom or test backbone).
    """
    out_dir = Path(out_dir)
    check_input_contract(cfg)
    device, rank, world = setup_device(cfg)
    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    model = (model or build_model_from_config(cfg)).to(device)
    train_loader, val_loader, classes = build_loaders(cfg, rank, world, pin_memory=device.type == "cuda")
    steps_per_epoch = math.ceil(len(train_loader) / cfg.train.accum_steps)
    optimizer, scheduler = build_optimizer(cfg, model, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.train.amp == "fp16" and device.type == "cuda")
    start_epoch, step, best, history = 0, 0, -math.inf, []
    if resume:
        start_epoch, step, best, history = _resume(out_dir / "last.pt", model, optimizer, scheduler, scaler)
    wrapped = _wrap_ddp(model, device, cfg.train.seed + rank, resume) if world > 1 else model
    contract = run_input_contract(cfg, _store_short_side(val_loader.dataset))
    writer = _writer(out_dir, cfg) if rank == 0 else None
    for epoch in range(start_epoch, cfg.train.epochs):
        train_loader.sampler.set_epoch(epoch)
        train_loader.dataset.set_epoch(epoch)
        try:
            stats = train_one_epoch(wrapped, train_loader, optimizer, scheduler, scaler, cfg, epoch=epoch, step=step,
                                    device=device, writer=writer)  # fmt: skip
        except NonFiniteLossError as e:
            kept = out_dir / "last.pt"
            kept = kept if kept.exists() else "none yet"
            raise NonFiniteLossError(f"{e}; the last good checkpoint is kept: {kept}") from None
        step = stats.pop("step")
        last_epoch = epoch + 1 == cfg.train.epochs
        val = evaluate(wrapped, val_loader, cfg, device) if (epoch + 1) % cfg.train.eval_every == 0 or last_epoch \
            else {}  # fmt: skip
        is_best = val_score(val) > best
        best = max(best, val_score(val))
        history.append({"epoch": epoch + 1, "step": step, "train": stats, "val": val})
        if rank == 0:
            _log_epoch(writer, stats, val, step, epoch)
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch + 1,
                     "step": step, "rng": rng_state(), "config": config_to_dict(cfg), "classes": classes,
                     "best_score": best, "history": history,
                     "input_contract": dataclasses.asdict(contract) if contract else None}  # fmt: skip
            if cfg.model.num_classes > 1:
                state["best_top1"] = best
            save_checkpoint(out_dir / "last.pt", state)
            if is_best:
                _copy_atomic(out_dir / "last.pt", out_dir / "best.pt")
    if writer is not None:
        writer.close()
    return model, history


def val_score(val: dict) -> float:
    """Higher is better: the fused top-1, or minus the fused log loss for a binary head; -inf when not validated."""
    fused = val.get("fused", {})
    score = -fused["log_loss"] if "log_loss" in fused else fused.get("top1", -math.inf)
    return score if math.isfinite(score) else -math.inf


def _resume(path: Path, model, optimizer, scheduler, scaler) -> tuple[int, int, float, list]:
    """Load every state of `path` into the run's objects; returns (epoch, step, best score, history)."""
    ckpt = load_checkpoint(path)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    best = ckpt.get("best_score", ckpt.get("best_top1", -math.inf))  # runs from before binary heads saved best_top1
    return ckpt["epoch"], ckpt["step"], best, ckpt["history"]


def _wrap_ddp(model: nn.Module, device: torch.device, dropout_seed: int, resume: bool) -> nn.Module:
    """DistributedDataParallel; DDP broadcasts rank 0's weights, then each rank draws its own dropout masks."""
    wrapped = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if not resume:
        torch.manual_seed(dropout_seed)
    return wrapped


def _store_short_side(dataset: TwoStreamClipDataset) -> int | None:
    """min(H, W) of the first store: the frames the validation centre crop is cut from (None without stores)."""
    if not dataset.items:
        return None
    with VideoStore(dataset.items[0][0]) as store:
        return min(store.height, store.width)


def _writer(out_dir: Path, cfg: Config):
    from torch.utils.tensorboard import SummaryWriter

    save_config(cfg, out_dir / "config.yaml")
    return SummaryWriter(str(out_dir / "tb"))


def _log_epoch(writer, stats: dict, val: dict, step: int, epoch: int) -> None:
    for key, value in stats.items():
        writer.add_scalar(f"epoch/{key}", value, step)
    for stream, metrics in val.items():  # top1, top5, mean_class_acc, loss; or log_loss, auc, accuracy (binary)
        for key, value in metrics.items():
            if key not in ("num", "clip", "positive_rate"):
                writer.add_scalar(f"val/{key}_{stream}", value, step)
    writer.flush()
    headline = "log_loss" if "log_loss" in val.get("fused", {}) else "top1"
    log.info("epoch %d step %d: %s; val %s %s", epoch + 1, step,
             ", ".join(f"{k} {v:.4g}" for k, v in stats.items()), headline,
             {s: round(m[headline], 4) for s, m in val.items()})  # fmt: skip


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
