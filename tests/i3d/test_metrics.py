"""Metrics against hand computations."""

import math

import numpy as np
import pytest

from i3d.metrics import (
    binary_accuracy,
    binary_log_loss,
    binary_metrics,
    roc_auc,
    sigmoid,
)


def test_log_loss_by_hand():
    probs, labels = [0.9, 0.2, 0.6, 0.5], [1, 0, 0, 1]
    hand = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.5)) / 4
    assert binary_log_loss(probs, labels) == pytest.approx(hand, rel=1e-12)
    assert binary_log_loss([0.5] * 3, [0, 1, 1]) == pytest.approx(math.log(2))


def test_log_loss_clips_like_the_competition():
    # a certain and wrong answer costs -ln(eps), not infinity
    assert binary_log_loss([0.0], [1]) == pytest.approx(-math.log(1e-15))
    assert binary_log_loss([1.0, 0.0], [1, 0]) == pytest.approx(-math.log(1 - 1e-15))
    assert binary_log_loss([0.0], [1], eps=0.01) == pytest.approx(-math.log(0.01))


def test_auc_by_hand_with_ties():
    # positives score 0.8, 0.4, 0.4; negatives 0.4, 0.1: of the 6 pairs, 4 won, 2 tied (0.4 vs 0.4) -> 5/6
    assert roc_auc([0.8, 0.4, 0.4, 0.4, 0.1], [1, 1, 0, 1, 0]) == pytest.approx(5 / 6)
    assert roc_auc([0.1, 0.2, 0.3], [0, 0, 1]) == 1.0
    assert roc_auc([0.3, 0.2, 0.1], [0, 0, 1]) == 0.0
    assert math.isnan(roc_auc([0.3, 0.2], [1, 1]))


def test_auc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 5, 60) / 4, rng.integers(0, 2, 60)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])).mean()
    assert roc_auc(scores, labels) == pytest.approx(pairwise)


def test_accuracy_and_summary():
    assert binary_accuracy([0.9, 0.2, 0.6, 0.5], [1, 0, 0, 1]) == 0.5
    summary = binary_metrics(np.array([0.9, 0.2, 0.6, 0.5]), np.array([1, 0, 0, 1]))
    assert summary["num"] == 4 and summary["positive_rate"] == 0.5 and summary["auc"] == 0.75
    np.testing.assert_allclose(sigmoid([-800.0, 0.0, 2.0, 800.0]), [0.0, 0.5, 1 / (1 + math.exp(-2)), 1.0])
    with pytest.raises(ValueError, match="0 \\(REAL\\) or 1 \\(FAKE\\)"):
        binary_log_loss([0.5], [2])
    with pytest.raises(ValueError, match="2 predictions for 3 labels"):
        roc_auc([0.5, 0.5], [0, 1, 1])

