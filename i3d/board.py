"""What a training run writes to TensorBoard (`out_dir/tb`), rank 0 only.

    every log_every steps   train/loss_<term>, train/acc_<logits>, train/lr, train/clips_per_s, train/data_wait_frac
    every epoch             epoch/<mean of the epoch>, val/<metric>_<stream> when validated
                            inputs/clips: the epoch's first clips as the model receives them (`log_inputs`)
                            val/confusion_fused: the validation confusion matrix, fused, video level

The pictures cost once per epoch (a few clips coloured, one matplotlib figure per validation), never per step.
`image_to_png` copies a picture out of the event files (the README's pictures were made so).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from common.pictures import save_picture
from i3d import evaluate as ev
from i3d.config import Config, save_config
from i3d.data.pictures import batch_picture

log = logging.getLogger("i3d.train")  # the trainer's log: its epoch lines
INPUT_CLIPS = 4  # clips of the epoch's first batch shown
INPUT_FRAMES = 8  # frames of each shown clip
SHOWN_HEIGHT = (64, 112)  # shown frame rows: small crops enlarged, large ones shrunk


def tensorboard_writer(out_dir: Path, cfg: Config):
    """Save the resolved config as out_dir/config.yaml and open a SummaryWriter on out_dir/tb."""
    from torch.utils.tensorboard import SummaryWriter

    save_config(cfg, out_dir / "config.yaml")
    return SummaryWriter(str(out_dir / "tb"))


def log_step(writer, metrics: dict, optimizer, step: int, clips_per_s: float, wait_frac: float) -> None:
    for key, value in metrics.items():
        writer.add_scalar(f"train/{key}", value, step)
    writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
    writer.add_scalar("train/clips_per_s", clips_per_s, step)
    writer.add_scalar("train/data_wait_frac", wait_frac, step)


def log_inputs(writer, batch: dict, normalization: str, step: int) -> None:
    """The first clips of `batch` as the model receives them (crop, flip and normalisation undone only for the eye:
    RGB over flow in the colour-wheel code, the bound as full colour), as the image inputs/clips."""
    streams = [s for s in ("rgb", "flow") if s in batch]
    if not streams:
        return
    size = batch[streams[0]].shape[-2]
    height = min(max(size, SHOWN_HEIGHT[0]), SHOWN_HEIGHT[1])
    picture = batch_picture(batch, normalization, clips=INPUT_CLIPS, frames=INPUT_FRAMES, height=height)
    writer.add_image("inputs/clips", picture, step, dataformats="HWC")


def log_confusion(writer, preds: ev.Predictions, cfg: Config, classes: list[str] | None, step: int) -> None:
    """The validation's fused video-level confusion matrix (rows: true class, row-normalised) as val/confusion_fused."""
    names = list(classes or []) or [str(k) for k in range(max(cfg.model.num_classes, 2))]
    weights = dict(zip(("rgb", "flow"), cfg.model.fusion_weights, strict=True))
    cm = ev.fused_confusion(preds, weights, len(names))
    writer.add_figure("val/confusion_fused", ev.confusion_figure(cm, names, f"fused, {int(cm.sum())} videos"), step)


def log_epoch(writer, stats: dict, val: dict, step: int, epoch: int) -> None:
    """The epoch's means (epoch/<key>) and validation metrics (val/<key>_<stream>) to TensorBoard and the log."""
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
             {s: round(m[headline], 4) for s, m in val.items()})


def read_images(tb_dir: str | Path, tag: str) -> list[tuple[int, np.ndarray]]:
    """Every (step, RGB image) of `tag` in the event files under `tb_dir`."""
    import cv2
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={IMAGES: 0}).Reload()  # 0: keep every image
    if tag not in events.Tags()["images"]:
        raise ValueError(f"{tb_dir}: no image {tag!r}; it has {sorted(events.Tags()['images'])}")
    out = []
    for event in events.Images(tag):
        bgr = cv2.imdecode(np.frombuffer(event.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
        out.append((event.step, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out


def image_to_png(tb_dir: str | Path, tag: str, path: str | Path, index: int = -1) -> Path:
    """Write one image of `tag` (by default the last one logged) as a PNG file."""
    return save_picture(path, read_images(tb_dir, tag)[index][1])
