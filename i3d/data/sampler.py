"""A class-rebalancing sampler that also shards across DDP ranks.

DFDC has about five fake videos for every real one. Rather than weight the loss, the DFDC solution resampled
every epoch: all real videos, and as many fakes, drawn afresh. `RebalancedSampler` does that for any number of
classes and any imbalance:

    epoch e:  every item of the rarest class once
              + n_min items of every other class, drawn without replacement by a generator seeded with (seed, e)
              -> shuffled -> padded -> dealt out to the ranks

so one epoch holds n_classes * n_min items, a different subset of the common classes each epoch, and the same
subset on every rank and on every re-run with the same (seed, epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler


class RebalancedSampler(Sampler[int]):
    """Yield dataset indices so each class appears equally often in every epoch.

    Like `DistributedSampler`, the epoch's index list is padded (by repeating its first indices) to a multiple of
    `num_replicas`, and rank r takes positions r, r + num_replicas, ...; the ranks' shares are therefore disjoint
    except for those at most num_replicas - 1 padding repeats, and every rank yields `len(self)` indices.
    Call `set_epoch(epoch)` before each epoch, as with `DistributedSampler`.

    Args:
        labels: the class of every dataset item, in dataset order (any hashable values; for DFDC 0=REAL, 1=FAKE).
        seed: base seed; an epoch's subset and order depend only on (seed, epoch).
        num_replicas: number of DDP processes (default: the world size, or 1 without torch.distributed).
        rank: this process's rank (default: the current rank, or 0).
        shuffle: shuffle the epoch's indices (False keeps them sorted, the subset is still drawn at random).
    """

    def __init__(
        self,
        labels: Sequence,
        *,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
    ) -> None:
        if len(labels) == 0:
            raise ValueError("RebalancedSampler got no labels: the dataset is empty (check the index / split)")
        distributed = dist.is_available() and dist.is_initialized()
        self.num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if distributed else 1)
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank={self.rank} must lie in [0, num_replicas={self.num_replicas})")
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        classes, inverse = np.unique(np.asarray(list(labels)), return_inverse=True)
        self.classes = classes.tolist()
        self.class_indices = [np.flatnonzero(inverse == k) for k in range(len(classes))]
        self.per_class = min(len(idx) for idx in self.class_indices)
        self.epoch_size = self.per_class * len(self.class_indices)
        self.num_samples = math.ceil(self.epoch_size / self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose subset and order `__iter__` yields next."""
        self.epoch = epoch

    def epoch_indices(self) -> np.ndarray:
        """All ranks' indices for the current epoch, before padding and sharding (epoch_size of them)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        chosen = [rng.choice(idx, self.per_class, replace=False) if len(idx) > self.per_class else idx
                  for idx in self.class_indices]
        indices = np.concatenate(chosen)
        return rng.permutation(indices) if self.shuffle else np.sort(indices)

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        total = self.num_samples * self.num_replicas
        indices = np.concatenate([indices, np.resize(indices, total - len(indices))])  # pad by wrapping around
        return iter(indices[self.rank : total : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
