"""Rewrite stores of an older layout in the current format (`flow.store`), without redoing TV-L1.

The older layouts, which `flow.store` refuses and only this module reads: format 1 (flow codes compressed with gzip,
`format_version` 1 or absent, no `flow_codec`) and stores written before the checksums (no `rgb_crc32`, flow chunks
without fletcher32). A current store is rewritten too when its flow is in another codec than the one asked for.

Per store: every frame is read back first (the checksums it has, every JPEG decoded, every flow chunk inflated: a
corrupt store is reported, never converted), the JPEGs are copied byte for byte and get their CRC-32s if they had
none, the flow codes are re-encoded with the new codec (the codes are the same: only their compression changes), the
attributes are carried over with the new `format_version`, `flow_codec` and `checksums`, and the result is checked
and renamed over the old file. Until that rename the old store is untouched, so a killed conversion leaves it whole;
a rerun skips converted stores and removes the stale temporary files of a killed one.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from pathlib import Path

import cv2
import h5py
import numpy as np

from common.files import remove_temps, temp_path
from flow.store import (
    FORMAT_VERSION,
    FlowStoreError,
    VideoStore,
    corrupt_error,
    format_problem,
    load_plugins,
    store_problem,
)
from flow.store_writer import CHECKSUMS, FLOW_CODEC, flow_filter

STEP = 64  # frames read or copied at a time: memory stays bounded for long videos


def needs_conversion(path: str | os.PathLike, codec: str = FLOW_CODEC) -> bool:
    """True unless `path` is already a store of the current format with flow in `codec` (or without flow)."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        if format_problem(f, path):
            return True
    with VideoStore(path) as store:
        return store.has_flow and store.attrs.get("flow_codec") != codec


def convert_store(path: str | os.PathLike, codec: str = FLOW_CODEC) -> bool:
    """Rewrite one store in the current format with `codec` for the flow. Returns False if it already was.

    Raises:
        FlowStoreError: the store is incomplete or does not read back (re-extract it; the message says how).
    """
    path = Path(path)
    remove_temps(path.parent, path.name)  # left by a killed conversion (or extraction)
    if not needs_conversion(path, codec):
        return False
    try:
        check_readable(path)
    except FlowStoreError as e:
        raise FlowStoreError(f"{e}; not converted") from e
    tmp = temp_path(path)
    try:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            _copy_rgb(src, dst)
            if "flow" in src:
                _copy_flow(src["flow"], dst, codec, STEP)
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            dst.attrs.update(format_version=FORMAT_VERSION, checksums=CHECKSUMS)
            if "flow" in src:
                dst.attrs["flow_codec"] = codec
        problem = store_problem(tmp)
        if problem:
            raise FlowStoreError(f"{path}: the converted copy is not whole ({problem}); nothing was replaced")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def check_readable(path: Path) -> None:
    """Read every frame of a store of any layout this module converts; a FlowStoreError names what does not read.

    Checks the frame counts, every JPEG (its CRC-32 where the store has them, and that it decodes to the frame size)
    and every flow chunk (HDF5 checks fletcher32 where the chunks have it, and gzip's own stream check).
    """
    load_plugins()  # a current store's flow may be in a plugin's codec
    try:
        with h5py.File(path, "r") as f:
            n = _frame_count(f, path)
            video_id = f.attrs.get("video_id")
            for start in range(0, n, STEP):
                rows = slice(start, min(n, start + STEP))
                _check_jpegs(f, rows, path, video_id)
                if "flow" in f:
                    try:
                        f["flow"][rows]
                    except OSError as e:
                        raise corrupt_error(path, f"flow frames {start}-{rows.stop - 1}", e, video_id) from e
    except OSError as e:
        raise FlowStoreError(f"{path} is not a readable HDF5 file ({e})") from e


def _frame_count(f: h5py.File, path: Path) -> int:
    """`num_frames` of an old or current store, once its datasets hold that many frames (else a FlowStoreError)."""
    version = f.attrs.get("format_version")
    if version is not None and int(version) > FORMAT_VERSION:
        raise FlowStoreError(f"{path} is a format {int(version)} store, newer than this code ({FORMAT_VERSION})")
    if "rgb" not in f or "num_frames" not in f.attrs:
        raise FlowStoreError(f"{path} is not a flow store (no 'rgb' dataset or no num_frames attribute)")
    n = int(f.attrs["num_frames"])
    names = ["rgb"] + [name for name in ("rgb_crc32", "flow") if name in f]
    if bool(f.attrs.get("has_flow")) and "flow" not in f:
        raise corrupt_error(path, "flow", KeyError("no 'flow' dataset"))
    short = [f"{name} {f[name].shape[0]}" for name in names if f[name].shape[0] != n]
    if short:
        raise FlowStoreError(f"{path} is incomplete ({', '.join(short)} of {n} frames)")
    return n


def _check_jpegs(f: h5py.File, rows: slice, path: Path, video_id: str | None) -> None:
    crcs = f["rgb_crc32"][rows] if "rgb_crc32" in f else None
    size = (int(f.attrs["height"]), int(f.attrs["width"]))
    for i, blob in enumerate(f["rgb"][rows]):
        blob = np.asarray(blob, np.uint8)
        if crcs is not None and zlib.crc32(blob) != crcs[i]:
            raise corrupt_error(path, f"RGB frame {rows.start + i}", ValueError("CRC-32 mismatch"), video_id)
        frame = cv2.imdecode(blob, cv2.IMREAD_COLOR)
        if frame is None or frame.shape[:2] != size:
            bad = ValueError(f"not a JPEG of {size[0]}x{size[1]} pixels")
            raise corrupt_error(path, f"RGB frame {rows.start + i}", bad, video_id)


def _copy_rgb(src: h5py.File, dst: h5py.File) -> None:
    """The JPEGs as they are (HDF5's own copy keeps the bytes and chunking); CRC-32s computed if the store had none."""
    src.copy(src["rgb"], dst, "rgb")
    if "rgb_crc32" in src:
        src.copy(src["rgb_crc32"], dst, "rgb_crc32")
    else:  # a store from before the checksums: check_readable just decoded every JPEG, so these are of good bytes
        crcs = np.array([zlib.crc32(np.asarray(blob, np.uint8)) for blob in src["rgb"]], np.uint32)
        dst.create_dataset("rgb_crc32", data=crcs, maxshape=(None,), chunks=(1024,), fletcher32=True)


def _copy_flow(flow: h5py.Dataset, dst: h5py.File, codec: str, step: int) -> None:
    n, _, h, w = flow.shape
    opts = dict(maxshape=(None, 2, h, w), chunks=(1, 2, h, w), fletcher32=True, **flow_filter(codec))
    out = dst.create_dataset("flow", (n, 2, h, w), np.uint8, **opts)
    for start in range(0, n, step):
        out[start : start + step] = flow[start : start + step]


def find_stores(folder: str | os.PathLike) -> list[Path]:
    """Every `*.h5` under `folder` (video ids may contain folders), sorted; hidden temporary files excluded."""
    return sorted(p for p in Path(folder).rglob("*.h5") if not p.name.startswith("."))


def convert_stores(paths: Iterable[Path], codec: str = FLOW_CODEC) -> dict[str, list[str]]:
    """`convert_store` each path; one bad store does not stop the others. Returns {converted, current, failed}."""
    result: dict[str, list[str]] = {"converted": [], "current": [], "failed": []}
    for path in paths:
        try:
            result["converted" if convert_store(path, codec) else "current"].append(str(path))
        except (FlowStoreError, OSError, KeyError, ValueError) as e:
            result["failed"].append(f"{path}: {e}")
    return result
