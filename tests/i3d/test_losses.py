"""i3d.losses: the trainer's and the distiller's losses against hand computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from i3d.losses import classification_loss, kd_loss, multilabel_loss, predicted_classes

# ------------------------------------------------------------------------------------------------------------ kd_loss


def test_kd_loss_equals_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5]])
    t = torch.tensor([[0.0, 3.0, 1.0]])
    T = 2.0
    ps = [math.exp(v / T) for v in (1.0, 2.0, 0.5)]
    pt = [math.exp(v / T) for v in (0.0, 3.0, 1.0)]
    ps = [p / sum(ps) for p in ps]
    pt = [p / sum(pt) for p in pt]
    expected = sum(q * math.log(q / p) for q, p in zip(pt, ps, strict=True)) * T * T
    assert kd_loss(s, t, T).item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0.05  # the hand computation is not trivially zero


def test_kd_loss_is_batch_mean():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    t = torch.tensor([[0.0, 3.0, 1.0], [1.0, -1.0, 2.0]])
    per_row = [kd_loss(s[i : i + 1], t[i : i + 1], 3.0).item() for i in range(2)]
    assert kd_loss(s, t, 3.0).item() == pytest.approx(sum(per_row) / 2, rel=1e-6)


def test_kd_loss_zero_for_identical_logits():
    x = torch.randn(4, 10)
    assert kd_loss(x, x.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(x, x + 3.0, 4.0).item() == pytest.approx(0.0, abs=1e-5)  # softmax ignores a per-row shift


def test_kd_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="T=0"):
        kd_loss(torch.zeros(1, 3), torch.zeros(1, 3), 0)
    with pytest.raises(ValueError, match="num_classes"):
        kd_loss(torch.zeros(1, 3), torch.zeros(1, 4), 1.0)


def test_binary_kd_is_the_bernoulli_kl_by_hand():
    """One logit: softmax over one class is constant (zero KD); the sigmoid form is KL(Bern(p_t) || Bern(p_s))."""
    s, t, T = torch.tensor([[0.5], [-1.0]]), torch.tensor([[2.0], [1.0]]), 2.0
    sig = lambda x: 1 / (1 + math.exp(-x / T))  # noqa: E731
    rows = [sig(b) * math.log(sig(b) / sig(a)) + (1 - sig(b)) * math.log((1 - sig(b)) / (1 - sig(a)))
            for a, b in ((0.5, 2.0), (-1.0, 1.0))]
    expected = sum(rows) / 2 * T * T
    assert kd_loss(s, t, T).item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0.1  # a real signal, where softmax KD would give exactly 0
    assert kd_loss(t, t, T).item() == pytest.approx(0.0, abs=1e-7)
    s.requires_grad_(True)
    kd_loss(s, t, T).backward()
    assert (s.grad < 0).all()  # the student is pulled up towards the more confident teacher


def test_classification_loss_forms():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    assert classification_loss(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item())
    soft = F.one_hot(labels, 3).float()
    assert classification_loss(logits, soft).item() == pytest.approx(F.cross_entropy(logits, labels).item())
    one = torch.tensor([[1.5], [-0.5]])
    p = [1 / (1 + math.exp(-1.5)), 1 / (1 + math.exp(0.5))]
    expected = -(math.log(p[0]) + math.log(1 - p[1])) / 2  # labels 1 and 0
    assert classification_loss(one, torch.tensor([1, 0])).item() == pytest.approx(expected, rel=1e-6)
    assert predicted_classes(one).tolist() == [1, 0] and predicted_classes(logits).tolist() == [0, 1]
    multi = multilabel_loss(logits, labels)
    assert multi.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, soft).item())
