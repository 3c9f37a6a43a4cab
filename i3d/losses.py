"""Every loss the trainer and the distiller minimise, in one place.

    classification_loss   (B, K) logits: cross-entropy on class ids or soft (CutMix) targets;
                          (B, 1) logits (a binary head): BCE on P(positive) targets
    multilabel_loss       BCE of every class against one-hot or multi-hot targets
    kd_loss               response-based distillation (Hinton et al. 2015): KL of the teacher's and the student's
                          softened distributions x T^2; softmax over K classes, or for a one-logit head the
                          Bernoulli distribution sigmoid(logit / T) (a softmax over one class is constant: zero loss)
    predicted_classes     argmax, or logit > 0 for a binary head

Feature-based distillation (MSE between endpoints through adapters) lives in `i3d.distill` beside its adapters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on (B, K) logits, or BCE with logits for a binary head (B, 1).

    Targets are class ids (B,) or soft targets from CutMix: (B, K) probabilities, or (B, 1) / (B,) P(positive).
    """
    logits = logits.float()
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits, targets.float().reshape(-1, 1))
    return F.cross_entropy(logits, targets)


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE with logits of every class; class-id targets (B,) are one-hot encoded first."""
    if targets.shape != logits.shape:
        targets = F.one_hot(targets.long(), logits.shape[1])
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """argmax, or logit > 0 (p > 0.5) for a binary head."""
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """Response-based distillation loss: KL(p_teacher || p_student) at temperature T, times T^2, batch mean.

    K > 1 classes: p = softmax(logits / T). One logit (a binary head): p = sigmoid(logit / T), the KL of two
    Bernoulli distributions, p_t log(p_t / p_s) + (1 - p_t) log((1 - p_t) / (1 - p_s)).

    Args:
        student_logits: (B, K) raw class scores of the student.
        teacher_logits: (B, K) raw class scores of the teacher (no gradient is wanted through them).
        T: temperature > 0; a higher T raises the weight of the teacher's small probabilities.

    Returns:
        A scalar, zero when the two sets of logits are equal (softmax: up to a per-row constant).
    """
    if T <= 0:
        raise ValueError(f"kd temperature T={T} must be > 0 (Hinton et al. use 1-20; 4 is a common choice)")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ: "
            "both models must be built with the same num_classes"
        )
    s, t = student_logits.float() / T, teacher_logits.float() / T
    if s.shape[1] == 1:  # (B, 2): log p and log (1 - p) of each Bernoulli, as logsigmoid(x) and logsigmoid(-x)
        log_s = torch.cat([F.logsigmoid(s), F.logsigmoid(-s)], 1)
        log_t = torch.cat([F.logsigmoid(t), F.logsigmoid(-t)], 1)
    else:
        log_s, log_t = F.log_softmax(s, dim=1), F.log_softmax(t, dim=1)
    return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * (T * T)
