"""Checksums in the stores: bytes changed inside a file (not a truncation) are caught on read and by verify_store,
with an error that names the store and the command that redoes it; a store written before the checksums, in which
a changed byte could pass unnoticed, is refused with an error that names the converter (which adds them)."""

import h5py
import numpy as np
import pytest

from flow.convert import convert_store
from flow.store import FlowStoreError, VideoStore, is_complete, verify_store
from flow.store_writer import write_store
from tests.helpers import textured_frames


@pytest.fixture
def store(tmp_path):
    rgb = textured_frames(6, 32, 40, dx=1.0, dy=0.0)
    flow = np.random.default_rng(0).uniform(-10, 10, (6, 32, 40, 2)).astype(np.float32)
    return write_store(tmp_path / "out" / "cls" / "v.h5", rgb, flow, {"video_id": "cls/v"})


def _flip(path, offset: int, count: int = 8) -> None:
    """Invert `count` bytes at `offset` in place: the file keeps its size and its HDF5 structure."""
    data = bytearray(path.read_bytes())
    data[offset : offset + count] = bytes(b ^ 0xFF for b in data[offset : offset + count])
    path.write_bytes(bytes(data))


def test_new_stores_carry_checksums(store):
    with h5py.File(store) as f:
        assert f["flow"].fletcher32 and f["rgb_crc32"].shape == (6,)
        assert "fletcher32" in f.attrs["checksums"] and f.attrs["format_version"] == 2  # version 2 came with the codec
    assert verify_store(store) is None


def test_corrupt_flow_chunk_names_the_store_and_the_fix(store):
    with h5py.File(store) as f:
        chunk = f["flow"].id.get_chunk_info(2)  # frame 2's chunk
    _flip(store, chunk.byte_offset + chunk.size // 2)
    assert is_complete(store)  # attributes and shapes are intact: only reading the data can tell
    reader = VideoStore(store)
    np.testing.assert_array_equal(reader.read_flow([0, 1]).shape, (2, 32, 40, 2))  # other chunks still read
    with pytest.raises(FlowStoreError) as info:
        reader.read_flow(range(6))
    message = str(info.value)
    assert str(store) in message and "corrupt" in message and "flow frames 0-5" in message
    assert f"--out {store.parents[1]} --overwrite cls/v" in message and "--verify" in message
    assert "flow frames" in verify_store(store)


def test_corrupt_jpeg_is_caught_by_its_crc(store):
    with h5py.File(store) as f:
        blob = f["rgb"][3].tobytes()
    offset = store.read_bytes().find(blob)
    assert offset > 0
    _flip(store, offset + len(blob) // 2, count=2)  # inside the entropy-coded data: it might still decode
    reader = VideoStore(store)
    reader.read_rgb([0, 1, 2])
    with pytest.raises(FlowStoreError, match=r"v\.h5: RGB frame 3 cannot be read .*CRC-32.*--overwrite cls/v"):
        reader.read_rgb([2, 3])
    assert "RGB frame 3" in verify_store(store)


@pytest.mark.parametrize("missing", ["rgb_crc32", "fletcher32"])
def test_a_store_without_checksums_is_refused_until_converted(store, tmp_path, missing):
    """A store as written before the checksums: no rgb_crc32 or no fletcher32 filter on the flow, no video_id."""
    old = tmp_path / "old.h5"
    with h5py.File(store) as src, h5py.File(old, "w") as dst:
        for name in ("rgb", "rgb_crc32") if missing == "fletcher32" else ("rgb",):
            src.copy(src[name], dst, name)
        flow, fletcher32 = src["flow"][:], missing != "fletcher32"
        dst.create_dataset("flow", data=flow, chunks=(1, 2, 32, 40), compression="gzip", fletcher32=fletcher32)
        for key, value in src.attrs.items():
            if key not in ("checksums", "video_id"):
                dst.attrs[key] = value
        dst.attrs["flow_codec"] = "gzip"
    message = f"{old} is a store of an older layout (written before the checksums), which is no longer read; "
    message += f"rewrite it as format 2 with tools/convert_stores.py {old} "
    with pytest.raises(FlowStoreError) as info:
        VideoStore(old).read_rgb([0])
    assert str(info.value).startswith(message)
    assert not is_complete(old) and verify_store(old).startswith(message)
    assert convert_store(old) and verify_store(old) is None
    with VideoStore(old) as a, VideoStore(store) as b:
        np.testing.assert_array_equal(a.read_rgb(range(6)), b.read_rgb(range(6)))
        np.testing.assert_array_equal(a.read_flow_codes(range(6)), flow)
