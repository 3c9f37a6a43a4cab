"""RebalancedSampler: balanced epochs, every rare item once, fresh subsets, reproducible, disjoint DDP shards."""

from collections import Counter

import numpy as np
import pytest

from i3d.data.sampler import RebalancedSampler

# 7 REAL (0), 25 FAKE (1), 11 of a third class: the rarest class has 7 items
LABELS = [0] * 7 + [1] * 25 + [2] * 11
np.random.default_rng(0).shuffle(LABELS)


def test_every_epoch_is_balanced_and_covers_the_rare_class_once():
    sampler = RebalancedSampler(LABELS, seed=3)
    rare = {i for i, y in enumerate(LABELS) if y == 0}
    for epoch in range(4):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        assert len(indices) == len(sampler) == 21
        assert len(set(indices)) == 21  # without replacement
        assert Counter(LABELS[i] for i in indices) == {0: 7, 1: 7, 2: 7}
        assert rare == {i for i in indices if LABELS[i] == 0}


def test_subsets_differ_across_epochs_and_repeat_for_the_same_seed_and_epoch():
    a, b = RebalancedSampler(LABELS, seed=1), RebalancedSampler(LABELS, seed=1)
    fakes = []
    for epoch in range(3):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        first = list(a)
        assert first == list(b) == list(a)  # reproducible from (seed, epoch), not from how often it was iterated
        fakes.append(frozenset(i for i in first if LABELS[i] == 1))
    assert len(set(fakes)) == 3
    other = RebalancedSampler(LABELS, seed=2)
    assert list(other) != list(RebalancedSampler(LABELS, seed=1))


def test_over_many_epochs_the_common_class_is_sampled_uniformly():
    sampler = RebalancedSampler([0] * 2 + [1] * 10, seed=0)
    counts = Counter()
    for epoch in range(500):
        sampler.set_epoch(epoch)
        counts.update(i for i in sampler if i >= 2)
    # each fake is drawn with probability 2/10 per epoch: 100 +- 9 (1 sd)
    assert all(60 < counts[i] < 140 for i in range(2, 12)), counts


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_ddp_ranks_split_the_epoch_disjointly(replicas):
    shards = [RebalancedSampler(LABELS, seed=5, num_replicas=replicas, rank=r) for r in range(replicas)]
    for s in shards:
        s.set_epoch(2)
    parts = [list(s) for s in shards]
    full = RebalancedSampler(LABELS, seed=5)
    full.set_epoch(2)
    everything = list(full)
    padding = -len(everything) % replicas  # 21 items: 1 repeat for 2 ranks, 0 for 3, 3 for 4
    assert all(len(p) == len(shards[0]) == (21 + padding) // replicas for p in parts)
    assert set().union(*parts) == set(everything)
    assert sum(len(p) for p in parts) - len(set().union(*parts)) == padding
    if padding == 0:
        assert all(set(p).isdisjoint(q) for i, p in enumerate(parts) for q in parts[i + 1 :])


def test_unshuffled_order_is_sorted_and_errors_are_clear():
    sampler = RebalancedSampler([1, 0, 1, 1, 0], shuffle=False)
    indices = list(sampler)
    assert indices == sorted(indices) and {1, 4} <= set(indices) and len(indices) == 4
    with pytest.raises(ValueError, match="dataset is empty"):
        RebalancedSampler([])
    with pytest.raises(ValueError, match="rank=2"):
        RebalancedSampler([0, 1], num_replicas=2, rank=2)
