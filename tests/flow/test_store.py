import os
import pickle

import h5py
import numpy as np
import pytest

from flow.quantize import max_error
from flow.store import FORMAT_VERSION, FlowStoreError, VideoStore, is_complete
from flow.store_writer import write_store
from tests.helpers import psnr, textured_frames


@pytest.fixture
def clip():
    rgb = textured_frames(8, 32, 40, dx=1.0, dy=0.0)
    rng = np.random.default_rng(0)
    flow = rng.uniform(-25, 25, (8, 32, 40, 2)).astype(np.float32)
    flow[0] = 0
    return rgb, flow


def test_round_trip(tmp_path, clip):
    rgb, flow = clip
    path = write_store(tmp_path / "a" / "v.h5", rgb, flow, {"source_fps": 30.0, "convention": "backward"})
    with VideoStore(path) as store:
        assert (store.num_frames, store.height, store.width, store.has_flow) == (8, 32, 40, True)
        assert store.attrs["source_fps"] == 30.0 and store.attrs["convention"] == "backward"
        assert store.attrs["format_version"] == FORMAT_VERSION == 2
        assert psnr(store.read_rgb(range(8)), rgb) > 30
        back = store.read_flow(range(8))
        assert back.dtype == np.float32 and back.shape == (8, 32, 40, 2)
        assert (back[0] == 0).all()
        assert np.abs(back - np.clip(flow, -20, 20)).max() <= max_error() + 1e-6
    assert is_complete(path)
    assert not [p for p in path.parent.iterdir() if p.name != "v.h5"]  # no temporary left behind


def test_unsorted_repeated_indices(tmp_path, clip):
    rgb, flow = clip
    store = VideoStore(write_store(tmp_path / "v.h5", rgb, flow, {}))
    idx = [5, 1, 5, 0, 7, 1]
    all_rgb, all_flow = store.read_rgb(range(8)), store.read_flow(range(8))
    np.testing.assert_array_equal(store.read_rgb(idx), all_rgb[idx])
    np.testing.assert_array_equal(store.read_flow(idx), all_flow[idx])
    np.testing.assert_array_equal(store.read_flow([0, 7]), all_flow[[0, 7]])  # sparse read path
    with pytest.raises(IndexError, match="8 frames"):
        store.read_rgb([8])


def test_rgb_only_store(tmp_path, clip):
    store = VideoStore(write_store(tmp_path / "v.h5", clip[0], None, {}))
    assert not store.has_flow and store.read_rgb([0]).shape == (1, 32, 40, 3)
    with pytest.raises(FlowStoreError, match="no 'flow' dataset"):
        store.read_flow([0])


def test_pickle_reopens_lazily(tmp_path, clip):
    store = VideoStore(write_store(tmp_path / "v.h5", *clip, {}))
    first = store.read_flow([3])
    clone = pickle.loads(pickle.dumps(store))
    assert clone._file is None
    np.testing.assert_array_equal(clone.read_flow([3]), first)
    store._pid = -1  # as seen from a forked child: the inherited handle must not be reused
    old = store._file
    np.testing.assert_array_equal(store.read_flow([3]), first)
    assert store._file is not old


def test_errors_name_the_file(tmp_path, clip):
    with pytest.raises(FlowStoreError, match="missing.h5"):
        _ = VideoStore(tmp_path / "missing.h5").num_frames
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(FlowStoreError, match="junk.h5.*--overwrite"):
        VideoStore(junk).read_rgb([0])
    assert not is_complete(junk)
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(FlowStoreError, match="no 'rgb' dataset"):
        _ = VideoStore(empty).num_frames
    with pytest.raises(ValueError, match="match rgb"):
        write_store(tmp_path / "bad.h5", clip[0], clip[1][:3], {})
    assert not os.path.exists(tmp_path / "bad.h5")


def test_crop_box_reads_the_same_pixels(tmp_path, clip):
    store = VideoStore(write_store(tmp_path / "v.h5", *clip, {}))
    idx, box = [6, 2, 2, 3], (5, 7, 20, 24)
    np.testing.assert_array_equal(store.read_flow(idx, box=box), store.read_flow(idx)[:, 5:25, 7:31])
    np.testing.assert_array_equal(store.read_rgb(idx, box=box), store.read_rgb(idx)[:, 5:25, 7:31])
    assert store.read_flow([], box=box).shape == (0, 20, 24, 2) and store.read_rgb([]).shape == (0, 32, 40, 3)
    with pytest.raises(ValueError, match="does not fit 32x40"):
        store.read_flow([0], box=(20, 0, 20, 10))
