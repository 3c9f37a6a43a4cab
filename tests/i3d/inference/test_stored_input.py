"""Train and serve see the same input: a real mp4 through predict and the feature extractor gives, bit for bit, what
the evaluation dataset and the store reader give on the store extracted from it (JPEG frames, 8-bit flow)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from flow.extract import ExtractOptions, extract_store
from flow.store import VideoStore
from flow.store_writer import as_stored, write_store
from flow.tvl1 import TVL1Params
from i3d.config import load_config
from i3d.data import transforms as T
from i3d.data.spec import InputSpec, read_extraction
from i3d.inference import predict
from i3d.inference.features import FeatureExtractor, FeatureOptions
from i3d.inference.frames import gather_frames, store_chunks, video_chunks, video_reader
from i3d.loaders import build_clip_dataset
from i3d.models import InceptionI3d

FRAMES = 10  # of bikes.mp4 at 25 fps
STREAMS = ("rgb", "flow")
FAST = TVL1Params(nscales=2, warps=2, outer_iterations=2, inner_iterations=5)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["opencv", "numba"])
def bikes_store(request, bikes_mp4, tmp_path_factory) -> tuple[Path, InputSpec]:
    """The store of bikes.mp4's first frames at short side 40, and the spec a model trained on such stores saves."""
    if request.param == "numba":
        pytest.importorskip("numba")
        request.getfixturevalue("numba_tvl1")
    store = tmp_path_factory.mktemp(request.param) / "bikes.h5"
    opts = ExtractOptions(short_side=40, max_frames=FRAMES, engine=request.param, tvl1=FAST, jpeg_quality=90,
                          bound=12.0)
    assert extract_store("bikes", bikes_mp4, store, opts)["status"] == "done"
    spec = InputSpec(**read_extraction(store), crop_size=32, num_frames=8, eval_num_frames=0)
    assert (spec.jpeg_quality, spec.flow_bound, spec.stored) == (90, 12.0, True)  # what the store recorded
    return store, spec


def eval_sample(store: Path, spec: InputSpec) -> dict:
    """The float32 input tools/eval.py feeds for `store`: its dataset (8-bit values and tables) expanded."""
    cfg = load_config(None, ["model.streams=rgb,flow"])
    dataset = build_clip_dataset(cfg, [(store, 0, "bikes")], False, spec)
    return T.expand_compact(dataset[0])


def test_predict_on_the_raw_video_equals_eval_on_its_store(bikes_store, bikes_mp4):
    store, spec = bikes_store
    sample = eval_sample(store, spec)
    inputs = predict.video_inputs(predict.decode(bikes_mp4, spec, max_frames=FRAMES), spec, STREAMS)
    assert inputs["rgb"].shape == (1, 3, FRAMES, 32, 32) and inputs["flow"].abs().max() > 0.05  # it moves
    for s in STREAMS:
        assert torch.equal(inputs[s][0], sample[s]), s


def test_the_test_clips_predict_video_gathers_equal_the_stored_frames(bikes_store, bikes_mp4):
    store, spec = bikes_store
    spec = dataclasses.replace(spec, eval_num_frames=4, eval_num_clips=2)
    indices = predict.eval_indices(FRAMES, spec)
    wanted = np.unique(indices)
    gathered = gather_frames(video_reader(bikes_mp4, spec, FRAMES), spec, STREAMS, wanted)
    with VideoStore(store) as s:
        np.testing.assert_array_equal(gathered["rgb"], s.read_rgb(wanted))
        np.testing.assert_array_equal(gathered["flow"], s.read_flow(wanted))
    inputs = predict.clip_inputs(gathered, np.searchsorted(wanted, indices), spec, STREAMS)
    sample = eval_sample(store, spec)
    for s in STREAMS:
        assert torch.equal(inputs[s], sample[s]), s


def test_without_the_storage_the_inputs_differ(bikes_store, bikes_mp4):
    """What the test above guards: the decoded frames and float flow are not what the store gives back."""
    store, spec = bikes_store
    raw = dataclasses.replace(spec, stored=False)
    inputs = predict.video_inputs(predict.decode(bikes_mp4, raw, max_frames=FRAMES), raw, STREAMS)
    sample = eval_sample(store, spec)
    for s in STREAMS:
        assert not torch.equal(inputs[s][0], sample[s]), s
        assert (inputs[s][0] - sample[s]).abs().max() < 0.2  # the storage error, not another video


def test_features_of_the_raw_video_equal_the_features_of_its_store(bikes_store, bikes_mp4):
    store, spec = bikes_store
    torch.manual_seed(0)
    nets = {"rgb": InceptionI3d(4, in_channels=3), "flow": InceptionI3d(4, in_channels=2)}
    extractor = FeatureExtractor(nets, spec, FeatureOptions(snippet=8, stride=2))
    raw = list(video_chunks(video_reader(bikes_mp4, spec, FRAMES), spec, STREAMS))
    stored = list(store_chunks(store, STREAMS))
    for s in STREAMS:
        np.testing.assert_array_equal(np.concatenate([c[s] for c in raw]), np.concatenate([c[s] for c in stored]))
    a, b = extractor.extract_chunks(iter(raw)), extractor.extract_chunks(iter(stored))
    for s in STREAMS:
        assert a.features[s].shape == (2, 1024)
        np.testing.assert_array_equal(a.features[s], b.features[s])


def test_as_stored_is_what_a_written_store_reads_back(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 24, 40, 3), dtype=np.uint8)
    flow = (rng.normal(0, 6, (3, 24, 40, 2)) * [1, -1]).astype(np.float32)
    flow[0, 0, 0] = [np.nan, 100.0]  # NaN counts as 0; beyond the bound is clipped
    write_store(tmp_path / "s.h5", rgb, flow, {}, jpeg_quality=70, bound=8.0)
    got = as_stored({"rgb": rgb, "flow": flow}, 70, 8.0)
    with VideoStore(tmp_path / "s.h5") as store:
        np.testing.assert_array_equal(got["rgb"], store.read_rgb([0, 1, 2]))
        np.testing.assert_array_equal(got["flow"], store.read_flow([0, 1, 2]))
    assert got["flow"].dtype == np.float32 and got["flow"][0, 0, 0].tolist() == [0.0, 8.0]
    assert not np.array_equal(got["rgb"], rgb)  # JPEG at 70 changes noise
    assert set(as_stored({"flow": flow}, 70, 8.0)) == {"flow"}
    with pytest.raises(ValueError, match=r"streams must be 'rgb' and/or 'flow', got \['depth'\]"):
        as_stored({"depth": flow}, 70, 8.0)


def test_specs_saved_before_the_storage_fields_load_with_the_writer_defaults():
    old = InputSpec().to_dict()
    del old["jpeg_quality"], old["stored"]
    spec = InputSpec.from_dict(old)
    assert (spec.jpeg_quality, spec.stored) == (95, True)  # StoreWriter's default quality; trained on stores
    with pytest.raises(ValueError, match="jpeg_quality=101 must be 0-100"):
        InputSpec(jpeg_quality=101)
