"""The DFDC binary metrics as plain numpy functions (multi-class ones: `i3d.evaluate.classification_metrics`).

DFDC scored submissions by the binary log loss of P(FAKE), with probabilities clipped away from 0 and 1 so one
confident mistake costs a lot but not infinitely (Kaggle's clip: eps = 1e-15). A well-calibrated 0.5 everywhere
scores ln 2 = 0.693.
"""

from __future__ import annotations

import numpy as np

KAGGLE_EPS = 1e-15


def _binary_inputs(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, np.float64).reshape(-1), np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"got {scores.size} predictions for {labels.size} labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"binary labels must be 0 (REAL) or 1 (FAKE), got values {np.unique(labels)[:5].tolist()}")
    return scores, labels.astype(np.float64)


def binary_log_loss(probs: np.ndarray, labels: np.ndarray, eps: float = KAGGLE_EPS) -> float:
    """Mean -[y ln p + (1 - y) ln(1 - p)] with p clipped to [eps, 1 - eps], the DFDC competition metric.

    Args:
        probs: predicted probability of the positive class (FAKE), any shape.
        labels: 0/1 of the same size.
        eps: the clip (1e-15 as in Kaggle's scorer).
    """
    p, y = _binary_inputs(probs, labels)
    if p.size == 0:
        return float("nan")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])  # first position of each run of ties
    ends = np.r_[starts[1:], len(x)]
    run_rank = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U), ties counted one half; NaN if a class is absent."""
    s, y = _binary_inputs(scores, labels)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _average_ranks(s)[y == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_accuracy(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of videos whose p > threshold agrees with the label (p == threshold counts as REAL)."""
    p, y = _binary_inputs(probs, labels)
    return float(np.mean((p > threshold) == (y == 1))) if p.size else float("nan")


def binary_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """{"log_loss", "auc", "accuracy", "num", "positive_rate"} for P(FAKE) predictions."""
    _, y = _binary_inputs(probs, labels)
    return {
        "log_loss": binary_log_loss(probs, labels),
        "auc": roc_auc(probs, labels),
        "accuracy": binary_accuracy(probs, labels),
        "num": int(y.size),
        "positive_rate": float(y.mean()) if y.size else float("nan"),
    }


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically stable 1 / (1 + exp(-x)) (a binary head's logit -> P(FAKE))."""
    x = np.asarray(logits, np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

