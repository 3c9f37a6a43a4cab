"""What one epoch of training measured: the clip-weighted means of the batch metrics, the time spent waiting for
data against computing, and the CPU time the DataLoader's workers spent per clip (`train_one_epoch` logs them)."""

import math
import multiprocessing
import os
import resource
import time
from pathlib import Path

import torch

from i3d.distributed import all_reduce, world_size


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's children so far: those that ended (getrusage) plus those alive
    (/proc, Linux). While an epoch runs, its children are the training DataLoader's workers."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total, ticks = usage.ru_utime + usage.ru_stime, os.sysconf("SC_CLK_TCK")
    for child in multiprocessing.active_children():  # also reaps the ended ones, so that getrusage counts them next
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # ended in between
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15 of stat
    return total


class EpochMeter:
    """Clip-weighted sums of the batch metrics, the epoch's time split into waiting for data and computing, and the
    CPU time the loader spent on the epoch's clips."""

    def __init__(self, workers: int = 0):
        self.keys, self.sums, self.wait, self.busy, self.wait_cpu, self.clips = None, None, 0.0, 0.0, 0.0, 0
        self.workers, self.children_at_start = workers, children_cpu_seconds()
        self.last = self.now = time.perf_counter()  # [last, now) waits for data, [now, end) computes
        self.last_cpu = time.process_time()

    def start_batch(self) -> None:
        self.now = time.perf_counter()
        self.wait += self.now - self.last
        self.wait_cpu += time.process_time() - self.last_cpu

    def end_batch(self, metrics: dict, clips: int) -> float:
        """Add one batch; returns the clips/s of all ranks over this batch's wait + compute."""
        if self.keys is None:
            self.keys = list(metrics)
            self.sums = torch.zeros(len(self.keys) + 1, dtype=torch.float64)  # the metrics, then the clip count
        self.sums += torch.tensor([metrics[k] * clips for k in self.keys] + [clips], dtype=torch.float64)
        end = time.perf_counter()
        self.busy += end - self.now
        rate = clips * world_size() / max(end - self.last, 1e-9)
        self.last, self.last_cpu, self.clips = end, time.process_time(), self.clips + clips
        return rate

    @property
    def wait_frac(self) -> float:
        return self.wait / max(self.wait + self.busy, 1e-9)

    def clips_per_worker_cpu_s(self) -> float:
        """This rank's clips so far per CPU second its DataLoader workers spent since the epoch began; with no workers,
        per CPU second this process spent waiting for batches (it loads them itself then). What one worker delivers
        on a core of its own, whoever else shares the machine."""
        cpu = children_cpu_seconds() - self.children_at_start if self.workers else self.wait_cpu
        return self.clips / cpu if cpu > 0 else math.nan

    def result(self) -> dict:
        """Means over every clip of every rank, plus clips_per_s, data_wait_frac and clips_per_worker_cpu_s of this
        rank."""
        sums = all_reduce(self.sums if self.sums is not None else torch.zeros(1, dtype=torch.float64))
        n = max(sums[-1].item(), 1)
        result = {key: sums[k].item() / n for k, key in enumerate(self.keys or ())}
        result.update(clips_per_s=sums[-1].item() / max(self.wait + self.busy, 1e-9), data_wait_frac=self.wait_frac,
                      clips_per_worker_cpu_s=self.clips_per_worker_cpu_s())
        return result
