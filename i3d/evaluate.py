"""Evaluation: clip- and video-level top-1/top-5 and mean class accuracy per stream and fused, from saved logits.

A binary head (one logit per clip, P(positive) = sigmoid) is scored instead by the DFDC metrics: log loss on
clipped probabilities, ROC AUC and accuracy (`i3d.metrics.binary_metrics`).

    predict_clips(model, loader) -> Predictions    one row per clip: video_id, clip number, label, logits per stream
    video_level(preds)     -> Predictions          one row per video: the mean of its clips' logits
    compute_results(preds, weights, num_classes)   {"rgb": {...}, "flow": {...}, "fused": {...}}
    save_predictions / load_predictions            an .npz with every clip's per-stream logits, to re-fuse offline

Fusion is the weighted mean of the streams' logits (`TwoStreamI3D`'s rule), recomputed here from the per-stream
logits so that other weights can be tried without running the model again.
"""

import json
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from i3d import metrics
from i3d.data.dataset import STREAMS
from i3d.data.transforms import model_input
from i3d.losses import predicted_classes


@dataclass
class Predictions:
    """Rows of clips (or videos): `logits[stream]` is (N, num_classes) float32 for each stream that was run."""

    video_ids: list[str]
    clips: np.ndarray  # (N,) clip number within its video
    labels: np.ndarray  # (N,) int64
    logits: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.video_ids)

    @staticmethod
    def concatenate(parts: Sequence["Predictions"]) -> "Predictions":
        """Join parts (e.g. one per DDP rank) and sort rows by (video_id, clip) so the order is reproducible."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Predictions([], np.zeros(0, np.int64), np.zeros(0, np.int64), {})
        ids = [v for p in parts for v in p.video_ids]
        clips = np.concatenate([p.clips for p in parts])
        order = sorted(range(len(ids)), key=lambda i: (ids[i], int(clips[i])))
        return Predictions(
            [ids[i] for i in order],
            clips[order],
            np.concatenate([p.labels for p in parts])[order],
            {s: np.concatenate([p.logits[s] for p in parts])[order] for s in parts[0].logits},
        )


@torch.no_grad()
def predict_clips(model: torch.nn.Module, loader, device: torch.device | str = "cpu", amp_dtype=None) -> Predictions:
    """Run `model` (a TwoStreamI3D, or DDP around one) on every batch; one row per clip.

    Batches may carry K clips per video (rgb (B, K, 3, T, S, S)); they are flattened to B*K rows. 8-bit batches
    (`TwoStreamClipDataset(compact=True)`) become float32 input on `device` (`transforms.model_input`).
    """
    model.eval()
    net = getattr(model, "module", model)
    device = torch.device(device)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    ids, clips, labels, logits = [], [], [], {s: [] for s in net.streams}
    for batch in loader:
        batch = model_input(batch, device)
        inputs = {s: batch[s] for s in net.streams}
        k = inputs[net.streams[0]].shape[1] if inputs[net.streams[0]].ndim == 6 else 1
        inputs = {s: x.flatten(0, 1) if k > 1 or x.ndim == 6 else x for s, x in inputs.items()}
        with autocast:
            out = model(**{s: x.to(device, non_blocking=True) for s, x in inputs.items()})
        for s in net.streams:
            logits[s].append(out[s].float().cpu().numpy())
        for video_id, label in zip(batch["video_id"], batch["label"].tolist(), strict=True):
            ids += [video_id] * k
            clips += list(range(k))
            labels += [label] * k
    return Predictions(
        ids, np.asarray(clips, np.int64), np.asarray(labels, np.int64),
        {s: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for s, v in logits.items()},
    )


def video_level(preds: Predictions) -> Predictions:
    """Average each video's clip logits: one row per video, in order of first appearance."""
    first: dict[str, int] = {}
    for i, video_id in enumerate(preds.video_ids):
        first.setdefault(video_id, i)
    position = {video_id: n for n, video_id in enumerate(first)}
    group = np.asarray([position[v] for v in preds.video_ids], np.int64)
    counts = np.bincount(group, minlength=len(first)).astype(np.float32)[:, None]
    logits = {}
    for s, x in preds.logits.items():
        total = np.zeros((len(first), x.shape[1]), np.float64)
        np.add.at(total, group, x)
        logits[s] = (total / counts).astype(np.float32)
    rows = list(first.values())
    return Predictions(list(first), np.zeros(len(first), np.int64), preds.labels[rows], logits)


def fuse(logits: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean of the present streams' logits (the stream's own logits when only one is present)."""
    present = [s for s in STREAMS if s in logits]
    total = sum(weights[s] for s in present)
    if not present or total <= 0:
        raise ValueError(f"cannot fuse streams {present} with weights {dict(weights)}: need a positive total weight")
    return sum(weights[s] * logits[s] for s in present) / total


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """top1, top5 (top-k with k = min(5, classes)), mean_class_acc (over the classes present), loss, num."""
    labels = np.asarray(labels, np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    if len(labels) == 0:
        return {"top1": float("nan"), "top5": float("nan"), "mean_class_acc": float("nan"), "loss": float("nan"),
                "num": 0}
    k = min(5, logits.shape[1])
    topk = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    correct1 = topk[:, 0] == labels
    per_class = [correct1[labels == c].mean() for c in range(num_classes) if np.any(labels == c)]
    loss = F.cross_entropy(torch.from_numpy(logits.astype(np.float32)), torch.from_numpy(labels)).item()
    return {
        "top1": float(correct1.mean()),
        "top5": float((topk == labels[:, None]).any(axis=1).mean()),
        "mean_class_acc": float(np.mean(per_class)),
        "loss": float(loss),
        "num": int(len(labels)),
    }


def binary_classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """log_loss (clipped, DFDC's metric), auc, accuracy, num, positive_rate of (N, 1) logits of a binary head."""
    return metrics.binary_metrics(metrics.sigmoid(np.asarray(logits).reshape(-1)), np.asarray(labels))


def is_binary(logits: Mapping[str, np.ndarray]) -> bool:
    """True when the streams' logits have one column: a binary head trained with BCE."""
    return any(x.ndim == 2 and x.shape[1] == 1 for x in logits.values())


def compute_results(clip_preds: Predictions, fusion_weights: Mapping[str, float], num_classes: int) -> dict:
    """Per stream and fused: video-level metrics at the top, the clip-level ones under "clip".

    Multi-class heads get `classification_metrics`; a binary head (1 logit) gets `binary_classification_metrics`.
    """
    videos = video_level(clip_preds)
    binary = is_binary(clip_preds.logits)
    results = {}
    for name in [*clip_preds.logits, "fused"]:
        per_level = []
        for preds in (videos, clip_preds):
            logits = fuse(preds.logits, fusion_weights) if name == "fused" else preds.logits[name]
            per_level.append(binary_classification_metrics(logits, preds.labels) if binary
                             else classification_metrics(logits, preds.labels, num_classes))
        results[name] = {**per_level[0], "clip": per_level[1]}
    return results


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return cm


def confusion_figure(cm: np.ndarray, class_names: Sequence[str], title: str = ""):
    """Row-normalised confusion matrix as a matplotlib figure (Agg backend: no display needed); the caller closes
    it (TensorBoard's `add_figure` does)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(cm)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.12 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(rates, vmin=0, vmax=1, cmap="viridis")
    if n <= 60:  # beyond that the names are unreadable anyway
        ax.set_xticks(range(n), list(class_names), rotation=90, fontsize=6)
        ax.set_yticks(range(n), list(class_names), fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, fraction=0.046)
    fig.tight_layout()
    return fig


def save_confusion_png(cm: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """`confusion_figure` as a PNG."""
    import matplotlib.pyplot as plt

    fig = confusion_figure(cm, class_names, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def fused_confusion(clip_preds: Predictions, fusion_weights: Mapping[str, float], num_classes: int) -> np.ndarray:
    """The video-level confusion matrix of the fused logits (what results_confusion.png shows)."""
    videos = video_level(clip_preds)
    predicted = predicted_classes(torch.from_numpy(fuse(videos.logits, fusion_weights))).numpy()
    return confusion_matrix(predicted, videos.labels, num_classes)


def save_predictions(path: str | Path, preds: Predictions, class_names: Sequence[str] = ()) -> Path:
    """An .npz with video_ids, clips, labels, class_names and `logits_<stream>` (N, C) for every stream."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"logits_{s}": x for s, x in preds.logits.items()}
    with open(path, "wb") as f:
        np.savez(f, video_ids=np.asarray(preds.video_ids, dtype=str), clips=preds.clips, labels=preds.labels,
                 class_names=np.asarray(list(class_names), dtype=str), **arrays)
    return path


def load_predictions(path: str | Path) -> tuple[Predictions, list[str]]:
    """Inverse of `save_predictions`: (Predictions, class_names)."""
    with np.load(path, allow_pickle=False) as z:
        logits = {s: z[f"logits_{s}"] for s in STREAMS if f"logits_{s}" in z}
        preds = Predictions([str(v) for v in z["video_ids"]], z["clips"], z["labels"], logits)
        return preds, [str(c) for c in z["class_names"]]


def write_report(out_json: str | Path, clip_preds: Predictions, fusion_weights: Mapping[str, float],
                 class_names: Sequence[str], extra: Mapping | None = None) -> dict:
    """Write results.json, `<stem>_predictions.npz` and `<stem>_confusion.png` (fused, video level) side by side."""
    out_json = Path(out_json)
    num_classes = len(class_names)
    results = compute_results(clip_preds, fusion_weights, num_classes)
    videos = video_level(clip_preds)
    cm = fused_confusion(clip_preds, fusion_weights, num_classes)
    stem = out_json.with_suffix("")
    png = save_confusion_png(cm, class_names, f"{stem}_confusion.png", title=f"fused, {len(videos)} videos")
    npz = save_predictions(f"{stem}_predictions.npz", clip_preds, class_names)
    results.update(
        fusion_weights={s: float(w) for s, w in fusion_weights.items()},
        num_videos=len(videos), num_clips=len(clip_preds), confusion_png=png.name, predictions=npz.name,
        **dict(extra or {}),
    )
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n")
    return results
