"""flow.convert / tools/convert_stores.py: format 1 stores become format 2 with the same frames; a killed or failed
conversion leaves the old store whole, and a rerun finishes the job."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from flow.convert import convert_store, convert_stores, find_stores, needs_conversion
from flow.store import FlowStoreError, VideoStore, is_complete, verify_store
from flow.store_writer import write_store
from tests.helpers import textured_frames

REPO = Path(__file__).resolve().parents[2]


def _old_store(path: Path, n: int = 8, crcs: bool = True) -> Path:
    """A store as format 1 wrote it (gzip flow, format_version 1, no flow_codec); without `crcs`, as written before
    the checksums (no rgb_crc32)."""
    rgb = textured_frames(n, 32, 40, dx=1.0, dy=0.5)
    flow = np.random.default_rng(0).uniform(-15, 15, (n, 32, 40, 2)).astype(np.float32)
    path = write_store(path, rgb, flow, {"video_id": path.stem, "source_fps": 30.0}, compression="gzip")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 1
        del f.attrs["flow_codec"]
        if not crcs:
            del f["rgb_crc32"]
    return path


def _content(path: Path) -> tuple:
    with h5py.File(path) as f:
        return [bytes(b) for b in f["rgb"][:]], f["flow"][:], {k: v for k, v in f.attrs.items()}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_conversion_keeps_every_frame_and_attribute(tmp_path):
    path = _old_store(tmp_path / "v_a.h5")
    jpegs, codes, attrs = _content(path)
    assert needs_conversion(path) and convert_store(path)
    new_jpegs, new_codes, new_attrs = _content(path)
    assert new_jpegs == jpegs
    np.testing.assert_array_equal(new_codes, codes)
    assert new_attrs["format_version"] == 2 and new_attrs["flow_codec"] == "lz4hc"
    assert attrs.pop("format_version") == 1 and "flow_codec" not in attrs
    assert {k: v for k, v in new_attrs.items() if k not in ("format_version", "flow_codec")} == attrs
    with h5py.File(path) as f:
        assert f["flow"].fletcher32 and f["flow"].chunks == (1, 2, 32, 40)
    assert verify_store(path) is None and is_complete(path)
    assert not needs_conversion(path) and convert_store(path) is False  # a rerun skips it
    assert [p.name for p in tmp_path.iterdir()] == ["v_a.h5"]  # no temporary file left


def test_store_from_before_the_checksums_gets_its_crcs(tmp_path):
    path = _old_store(tmp_path / "v.h5", crcs=False)
    assert convert_store(path)
    with h5py.File(path) as f:
        assert f["rgb_crc32"].shape == (8,) and f["rgb_crc32"].fletcher32
    with VideoStore(path) as store:
        store.read_rgb(range(8))  # every CRC matches its JPEG


def test_corrupt_store_is_reported_and_left_alone(tmp_path):
    path = _old_store(tmp_path / "v.h5")
    with h5py.File(path) as f:
        chunk = f["flow"].id.get_chunk_info(5)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset + chunk.size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before = _digest(path)
    with pytest.raises(FlowStoreError, match="flow frames .* corrupt.*not converted"):
        convert_store(path)
    assert _digest(path) == before and [p.name for p in tmp_path.iterdir()] == ["v.h5"]


def test_a_broken_jpeg_in_a_store_without_crcs_is_reported(tmp_path):
    path = _old_store(tmp_path / "v.h5", crcs=False)
    with h5py.File(path, "a") as f:
        f["rgb"][2] = np.frombuffer(b"not a jpeg", np.uint8)
    with pytest.raises(FlowStoreError, match=r"v\.h5: RGB frame 2 cannot be read .*not a JPEG.*not converted"):
        convert_store(path)


def test_an_error_mid_conversion_leaves_the_old_store(tmp_path, monkeypatch):
    import flow.convert

    path = _old_store(tmp_path / "v.h5")
    before = _digest(path)

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(flow.convert, "_copy_flow", fail)
    result = convert_stores([path])
    assert result["failed"] == [f"{path}: disk full"] and _digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.h5"]


def test_kill_9_mid_conversion_leaves_the_old_store_and_a_rerun_finishes(tmp_path):
    path = _old_store(tmp_path / "v.h5", n=12)
    before, (jpegs, codes, _) = _digest(path), _content(path)
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        import flow.convert
        copy = flow.convert._copy_flow
        def copy_then_die(flow, dst, codec, step):
            copy(flow, dst, codec, 4)
            dst.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # killed with the new file half written
        flow.convert._copy_flow = copy_then_die
        flow.convert.convert_store({str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = [p for p in tmp_path.iterdir() if p.name != "v.h5"]
    assert leftovers and leftovers[0].name.startswith(".v.tmp-")  # the half-written copy, never at the final path
    assert _digest(path) == before and needs_conversion(path)
    with open(leftovers[0], "r+b") as f:  # and a truncated one is no better
        f.truncate(os.path.getsize(leftovers[0]) // 2)
    assert convert_store(path)
    assert [p.name for p in tmp_path.iterdir()] == ["v.h5"]
    new_jpegs, new_codes, _ = _content(path)
    assert new_jpegs == jpegs
    np.testing.assert_array_equal(new_codes, codes)


def test_tool_converts_a_folder_then_skips_it(tmp_path):
    _old_store(tmp_path / "out" / "ClassA" / "v_1.h5")
    _old_store(tmp_path / "out" / "ClassB" / "v_2.h5")
    write_store(tmp_path / "out" / "v_3.h5", *_frames(), {})  # already format 2
    assert [p.name for p in find_stores(tmp_path / "out")] == ["v_1.h5", "v_2.h5", "v_3.h5"]
    cmd = [sys.executable, str(REPO / "tools" / "convert_stores.py"), str(tmp_path / "out")]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert first.returncode == 0 and "converted 2, already current 1, failed 0 of 3 stores" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert "converted 0, already current 3, failed 0 of 3 stores" in second.stdout
    missing = subprocess.run(cmd[:2] + [str(tmp_path / "nowhere")], capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and missing.stderr == f"error: {tmp_path / 'nowhere'}: no such store or folder\n"


def _frames():
    return textured_frames(4, 32, 40, dx=1.0, dy=0.0), np.zeros((4, 32, 40, 2), np.float32)
