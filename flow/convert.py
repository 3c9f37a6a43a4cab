"""Rewrite stores of an older format (version 1: gzip flow codes) as the current one, without redoing TV-L1.

Per store: every frame is read back first (checksums, JPEG decodes: a corrupt store is reported, never converted),
the JPEGs and their CRC-32s are copied byte for byte, the flow codes are re-encoded with the new codec (the codes are
the same: only their compression changes), the attributes are carried over with the new `format_version`,
`flow_codec` and `checksums`, and the result is renamed over the old file. Until that rename the old store is
untouched, so a killed conversion leaves it whole; a rerun skips converted stores and removes the stale temporary
files of a killed one.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from common.files import remove_temps, temp_path
from flow.store import (
    FLOW_CODEC,
    FORMAT_VERSION,
    FlowStoreError,
    flow_filter,
    is_complete,
    load_plugins,
    read_attrs,
    verify_store,
)

CHECKSUMS = "flow: HDF5 fletcher32 per chunk; rgb: zlib.crc32 of each JPEG in rgb_crc32"


def needs_conversion(path: str | os.PathLike, codec: str = FLOW_CODEC) -> bool:
    """True unless `path` is already a store of the current format with flow in `codec` (or without flow)."""
    attrs = read_attrs(path, ("format_version", "has_flow", "flow_codec"))
    current = int(attrs.get("format_version", 1)) == FORMAT_VERSION
    return not current or (bool(attrs.get("has_flow", False)) and attrs.get("flow_codec") != codec)


def convert_store(path: str | os.PathLike, codec: str = FLOW_CODEC, frames_per_step: int = 64) -> bool:
    """Rewrite one store in the current format with `codec` for the flow. Returns False if it already was.

    Raises:
        FlowStoreError: the store is incomplete or does not read back (re-extract it; the message says how).
    """
    path = Path(path)
    remove_temps(path.parent, path.name)  # left by a killed conversion (or extraction)
    if not needs_conversion(path, codec):
        return False
    load_plugins(path)  # the old store may be of any codec; the new one may need the plugin
    problem = verify_store(path)
    if problem:
        raise FlowStoreError(f"{problem}; not converted")
    tmp = temp_path(path)
    try:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            _copy_rgb(src, dst)
            if "flow" in src:
                _copy_flow(src["flow"], dst, codec, frames_per_step)
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            dst.attrs.update(format_version=FORMAT_VERSION, checksums=CHECKSUMS)
            if "flow" in src:
                dst.attrs["flow_codec"] = codec
        if not is_complete(tmp):
            raise FlowStoreError(f"{path}: the converted copy {tmp} is incomplete; nothing was replaced")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _copy_rgb(src: h5py.File, dst: h5py.File) -> None:
    """The JPEGs as they are (HDF5's own copy keeps the bytes and chunking); CRC-32s computed if the store had none."""
    src.copy(src["rgb"], dst, "rgb")
    if "rgb_crc32" in src:
        src.copy(src["rgb_crc32"], dst, "rgb_crc32")
    else:  # a store from before the checksums: verify_store just decoded every JPEG, so these are of good bytes
        crcs = np.array([zlib.crc32(np.asarray(blob, np.uint8)) for blob in src["rgb"]], np.uint32)
        dst.create_dataset("rgb_crc32", data=crcs, maxshape=(None,), chunks=(1024,), fletcher32=True)


def _copy_flow(flow: h5py.Dataset, dst: h5py.File, codec: str, step: int) -> None:
    n, _, h, w = flow.shape
    out = dst.create_dataset("flow", (n, 2, h, w), np.uint8, maxshape=(None, 2, h, w), chunks=(1, 2, h, w),
                             fletcher32=True, **flow_filter(codec))  # fmt: skip
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
