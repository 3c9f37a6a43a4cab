"""i3d.loaders: how many DataLoader workers a run starts (never more than the CPUs this process may use)."""

import os
import warnings
from pathlib import Path

import pytest

from i3d import loaders
from i3d.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_cpus(monkeypatch):
    """This process may use CPUs 0 and 1 (torch's own worker check reads the same affinity)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)


def test_workers_default_to_the_cpus_and_a_larger_number_is_capped(two_cpus, monkeypatch):
    assert load_config().data.num_workers == -1
    assert [loaders.loader_workers(n) for n in (-1, 0, 1, 2, 8)] == [2, 0, 1, 2, 2]
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun's two processes on this node share the two CPUs
    assert [loaders.loader_workers(n) for n in (-1, 0, 8)] == [1, 0, 1]
    with pytest.raises(ConfigError, match="data.num_workers=-2"):
        load_config(overrides=["data.num_workers=-2"])


def test_a_config_asking_for_8_workers_on_2_cpus_gets_2_and_no_warning(two_cpus):
    cfg = load_config(REPO / "configs" / "ucf101_i3d_two_stream.yaml")
    assert cfg.data.num_workers == 8
    loader = loaders.build_eval_loader(cfg, list(range(4)))
    assert loader.num_workers == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "This DataLoader will create 8 worker processes in total..."
        loader.check_worker_number_rationality()
