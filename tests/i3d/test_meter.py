"""EpochMeter: the data-wait fraction and clips per worker-CPU-second that train_one_epoch logs."""

import math
import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from i3d.meter import EpochMeter

CPU_PER_CLIP = 0.02  # seconds of CPU each clip costs the process that loads it


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class Burning(Dataset):
    """Clips that cost CPU_PER_CLIP seconds of CPU each to load."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> torch.Tensor:
        burn(CPU_PER_CLIP)
        return torch.zeros(3)


@pytest.mark.parametrize("workers, persistent", [(0, False), (1, True), (2, False)])
def test_clips_per_worker_cpu_second_counts_the_loaders_cpu_only(workers, persistent):
    """The loader's CPU, in its workers or (none) in this process while it waits; never the step's own CPU, and
    workers that ended with the loader still count."""
    loader = DataLoader(Burning(), batch_size=2, num_workers=workers, persistent_workers=persistent)
    meter = EpochMeter(loader.num_workers)
    for batch in loader:
        meter.start_batch()
        burn(4 * CPU_PER_CLIP)  # the step: twice the CPU per clip the loader spends, in this process
        time.sleep(0.01)
        meter.end_batch({"loss": 1.0}, len(batch))
    ideal = 1 / CPU_PER_CLIP
    assert 0.45 * ideal < meter.clips_per_worker_cpu_s() <= 1.05 * ideal  # < ideal / 3 if the step counted
    assert 0 < meter.wait_frac < 1
    result = meter.result()
    assert result["clips_per_worker_cpu_s"] == pytest.approx(meter.clips_per_worker_cpu_s(), rel=0.2)
    assert result["loss"] == 1.0 and result["data_wait_frac"] == meter.wait_frac


def test_no_clips_no_rate():
    assert math.isnan(EpochMeter(1).clips_per_worker_cpu_s())
