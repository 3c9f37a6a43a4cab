"""Store format 2: the flow codec is recorded and checksummed, crop reads equal full reads cropped, gzip stores read
where `hdf5plugin` is not installed, and stores of an older layout are refused with one line naming the converter."""

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from flow.convert import convert_store
from flow.quantize import quantize_flow
from flow.store import FlowStoreError, VideoStore, is_complete, read_attrs, verify_store
from flow.store_writer import FLOW_CODEC, FLOW_CODECS, write_store
from tests.helpers import textured_frames

REPO = Path(__file__).resolve().parents[2]


def _clip(n=7, h=32, w=40, seed=0):
    rgb = textured_frames(n, h, w, dx=1.0, dy=0.5, seed=seed)
    flow = np.random.default_rng(seed).uniform(-25, 25, (n, h, w, 2)).astype(np.float32)
    return rgb, flow


def write_v1(path: Path, rgb: np.ndarray, flow: np.ndarray) -> Path:
    """A store as format 1 wrote it: gzip-6 flow, format_version 1, no flow_codec attribute."""
    path = write_store(path, rgb, flow, {"video_id": path.stem}, compression="gzip")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 1
        del f.attrs["flow_codec"]
    return path


@pytest.mark.parametrize("codec", FLOW_CODECS)
def test_every_codec_round_trips_the_codes_with_fletcher32(tmp_path, codec):
    rgb, flow = _clip()
    path = write_store(tmp_path / "v.h5", rgb, flow, {}, compression=codec)
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == 2 and f.attrs["flow_codec"] == codec and f["flow"].fletcher32
        assert f["flow"].chunks == (1, 2, 32, 40)
    with VideoStore(path) as store:
        np.testing.assert_array_equal(store.read_flow_codes(range(7)), quantize_flow(flow).transpose(0, 3, 1, 2))
    assert verify_store(path) is None and is_complete(path)


def test_new_stores_use_the_measured_codec(tmp_path):
    rgb, flow = _clip()
    with h5py.File(write_store(tmp_path / "v.h5", rgb, flow, {})) as f:
        assert FLOW_CODEC == "lz4hc" and f.attrs["flow_codec"] == "lz4hc"


def test_unknown_codec_is_refused_before_any_file(tmp_path):
    rgb, flow = _clip()
    with pytest.raises(ValueError, match="flow codec 'zip'.*lz4hc, gzip, lzf, none"):
        write_store(tmp_path / "v.h5", rgb, flow, {}, compression="zip")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("codec", ["lz4hc", "gzip"])
def test_crop_reads_equal_full_reads_cropped(tmp_path, codec):
    rgb, flow = _clip(n=9, h=36, w=44)
    path = write_store(tmp_path / "v.h5", rgb, flow, {}, compression=codec)
    indices = [5, 2, 2, 8, 0]  # unsorted, repeated
    with VideoStore(path) as store:
        for y0, x0, h, w in [(0, 0, 36, 44), (3, 7, 24, 24), (12, 20, 24, 24), (35, 43, 1, 1)]:
            codes = store.read_flow_codes(indices)
            box, y, x = (y0, x0, h, w), slice(y0, y0 + h), slice(x0, x0 + w)
            np.testing.assert_array_equal(store.read_flow_codes(indices, box), codes[..., y, x])
            np.testing.assert_array_equal(store.read_flow(indices, box), store.read_flow(indices)[:, y, x])
            np.testing.assert_array_equal(store.read_rgb(indices, box), store.read_rgb(indices)[:, y, x])


def test_older_layouts_are_refused_with_one_line_naming_the_converter(tmp_path):
    rgb, flow = _clip()
    old = write_v1(tmp_path / "old.h5", rgb, flow)
    unversioned = write_v1(tmp_path / "unversioned.h5", rgb, flow)
    with h5py.File(unversioned, "a") as f:
        del f.attrs["format_version"]
    for path, layout in ((old, "format 1"), (unversioned, "format unknown")):
        expected = f"{path} is a store of an older layout ({layout}), which is no longer read; rewrite it as format 2 "
        expected += f"with tools/convert_stores.py {path} "
        with pytest.raises(FlowStoreError) as info:
            VideoStore(path).read_flow([0])
        assert str(info.value).startswith(expected) and "\n" not in str(info.value)
        assert not is_complete(path) and verify_store(path).startswith(expected)
        with pytest.raises(FlowStoreError, match="older layout"):
            read_attrs(path, ("fps",))
    assert convert_store(old)  # the fix the message names: the same frames as a store written today
    with VideoStore(old) as a, VideoStore(write_store(tmp_path / "new.h5", rgb, flow, {})) as b:
        assert (a.format_version, b.format_version) == (2, 2)
        np.testing.assert_array_equal(a.read_flow(range(7)), b.read_flow(range(7)))
        np.testing.assert_array_equal(a.read_rgb(range(7)), b.read_rgb(range(7)))


def test_a_newer_format_is_refused(tmp_path):
    rgb, flow = _clip()
    path = write_store(tmp_path / "v.h5", rgb, flow, {})
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 3
    assert not is_complete(path)
    with pytest.raises(FlowStoreError, match=r"v\.h5 is a format 3 store, newer than this code reads \(2\)"):
        VideoStore(path).read_rgb([0])


def test_gzip_stores_read_without_hdf5plugin_and_lz4hc_ones_say_what_to_install(tmp_path):
    rgb, flow = _clip()
    gzip = write_store(tmp_path / "gzip.h5", rgb, flow, {}, compression="gzip")
    lz4hc = write_store(tmp_path / "lz4hc.h5", rgb, flow, {})
    script = textwrap.dedent(f"""
        import sys
        sys.modules["hdf5plugin"] = None  # import hdf5plugin now raises ImportError, as if it were not installed
        sys.path.insert(0, {str(REPO)!r})
        from flow.store import FlowStoreError, VideoStore
        print(VideoStore({str(gzip)!r}).read_flow([0, 1]).shape)
        try:
            VideoStore({str(lz4hc)!r}).read_flow([0, 1])
        except FlowStoreError as e:
            print("ERROR", e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "(2, 32, 40, 2)" in out
    assert f"ERROR {lz4hc} is a format 2 store whose flow codec needs the hdf5plugin package: pip install" in out


@pytest.mark.parametrize("codec", ["lz4hc", "gzip"])
def test_corrupt_flow_chunk_is_caught_with_either_codec(tmp_path, codec):
    rgb, flow = _clip()
    path = write_store(tmp_path / "v.h5", rgb, flow, {}, compression=codec)
    with h5py.File(path) as f:
        chunk = f["flow"].id.get_chunk_info(3)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset + chunk.size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with VideoStore(path) as store:
        store.read_flow_codes([0, 1, 2], (0, 0, 16, 16))
        with pytest.raises(FlowStoreError, match="corrupt"):
            store.read_flow_codes([3], (0, 0, 16, 16))  # a crop read still checks its whole chunk
    assert "flow frames" in verify_store(path)
