"""One HDF5 file per video: JPEG RGB frames and 8-bit quantised TV-L1 flow, with the parameters that made them.

This module defines the store format and reads it; `flow.store_writer` writes it. Layout of `<video_id>.h5`
(format version 2):

    /rgb        (N,) variable-length uint8: one JPEG per frame (RGB decoded; JPEG keeps RGB ~10x smaller than raw)
    /rgb_crc32  (N,) uint32: zlib.crc32 of each JPEG (HDF5 cannot put a checksum filter on variable-length data)
    /flow       (N, 2, H, W) uint8, chunk = one frame, `flow_codec` + fletcher32: codes of `flow.quantize` (absent
                in an RGB-only store); planes x then y, so a crop of one frame is two contiguous-row boxes
    attrs       format_version, num_frames, height, width, has_flow, flow_bound, flow_codec, rgb_codec, jpeg_quality,
                checksums, ... plus the extractor's (video_id, source path and size, fps, source frame indices, TV-L1
                parameters, convention, OpenCV/engine version)

Only format 2 with its checksums is read. An older store (format 1's gzip flow, or no checksums) is refused with one
error that names `tools/convert_stores.py`, which rewrites it as format 2 without redoing TV-L1 (`flow.convert` is
the one module that knows the older layouts). The codec of the flow is recorded in `flow_codec`; the writer's default,
Blosc2 LZ4HC, is a filter of the `hdf5plugin` package, imported when such a store is opened (docs/PERFORMANCE.md
compares the codecs).

Stores are written under a temporary name and renamed when complete, so a file at the final path is whole. Every
read checks what it reads: HDF5 verifies each flow chunk's fletcher32 checksum, `read_rgb` each JPEG's CRC-32, and a
mismatch is a `FlowStoreError` that names the store and the command that redoes it; `verify_store` reads it all.
"""

import os
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np

from flow.quantize import LEVELS, ZERO_CODE

FORMAT_VERSION = 2
PLUGIN_CODECS = ("lz4hc",)  # decoded by a filter from `hdf5plugin`, not built into h5py


class FlowStoreError(Exception):
    """A store is missing, incomplete, corrupt or of an older format; the message names the file and the fix."""


def load_plugins(path: Path | None = None):
    """Import `hdf5plugin` (it registers the Blosc2/LZ4/Zstd filters with HDF5 in this process and its forks)."""
    try:
        import hdf5plugin
    except ImportError as e:
        where = f"{path} is a format {FORMAT_VERSION} store whose flow codec" if path else "this flow codec"
        raise FlowStoreError(
            f"{where} needs the hdf5plugin package: pip install hdf5plugin (make install does), or write gzip stores"
        ) from e
    return hdf5plugin


def redo_hint(path: Path, video_id: str | None = None) -> str:
    """The command that redoes the store at `path` (OUT/<video_id>.h5; without a recorded video_id, the file name)."""
    if not video_id or not path.as_posix().endswith(f"/{video_id}.h5"):
        video_id = path.stem
    out = path.parents[video_id.count("/")]
    return f"redo it with tools/extract_flow.py --videos ... --out {out} --overwrite {video_id}"


def corrupt_error(path: Path, what: str, error: Exception, video_id: str | None = None) -> FlowStoreError:
    """The error for data of the store at `path` that does not read back: what, why, and the commands that redo it."""
    return FlowStoreError(
        f"{path}: {what} cannot be read ({type(error).__name__}: {error}): the store is corrupt; "
        f"{redo_hint(path, video_id)} (or with --verify, which reads every store and redoes the bad ones)"
    )


def format_problem(f: h5py.File, path: Path) -> str | None:
    """Why the open HDF5 file `f` is not a store of the current format (None when it is one); reads metadata only."""
    if "rgb" not in f:
        return f"{path} has no 'rgb' dataset (not a flow store?); {redo_hint(path)}"
    version = f.attrs.get("format_version")
    if version is not None and int(version) > FORMAT_VERSION:
        return f"{path} is a format {int(version)} store, newer than this code reads ({FORMAT_VERSION}); update it"
    if version is None or int(version) < FORMAT_VERSION:
        old = f"format {int(version) if version is not None else 'unknown'}"
    elif "rgb_crc32" not in f or ("flow" in f and not f["flow"].fletcher32):
        old = "written before the checksums"
    else:
        return None
    return (
        f"{path} is a store of an older layout ({old}), which is no longer read; rewrite it as format "
        f"{FORMAT_VERSION} with tools/convert_stores.py {path} (or its folder; no TV-L1 is redone)"
    )


class VideoStore:
    """Read-only view of one `<video_id>.h5`.

    The HDF5 file is opened lazily on first use and reopened in every process (the handle is dropped on pickling
    and whenever the process id changes), so a store can be built in the main process and read in DataLoader
    workers. Opening checks the format (`format_problem`).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._attrs: dict | None = None

    # -- opening ---------------------------------------------------------------------------------------------
    def _h5(self) -> h5py.File:
        if self._file is not None and self._pid == os.getpid():
            return self._file
        self._file = None  # a handle inherited through fork is never used (nor closed: the parent owns it)
        if not self.path.is_file():
            raise FlowStoreError(f"{self.path}: no such store; extract it with tools/extract_flow.py")
        try:
            file = h5py.File(self.path, "r")
        except OSError as e:
            raise FlowStoreError(f"{self.path} is not a readable HDF5 file ({e}); {redo_hint(self.path)}") from e
        problem = format_problem(file, self.path)
        if problem:
            file.close()
            raise FlowStoreError(problem)
        if _plain(file.attrs.get("flow_codec")) in PLUGIN_CODECS:
            load_plugins(self.path)
        self._file, self._pid = file, os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __enter__(self) -> "VideoStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": self.path, "_file": None, "_pid": None, "_attrs": self._attrs}

    def __repr__(self) -> str:
        return f"VideoStore({str(self.path)!r})"

    # -- metadata --------------------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        if self._attrs is None:
            self._attrs = {k: _plain(v) for k, v in self._h5().attrs.items()}
        return self._attrs

    @property
    def num_frames(self) -> int:
        return int(self._h5()["rgb"].shape[0])

    @property
    def height(self) -> int:
        return int(self.attrs["height"])

    @property
    def width(self) -> int:
        return int(self.attrs["width"])

    @property
    def has_flow(self) -> bool:
        return "flow" in self._h5()

    @property
    def format_version(self) -> int:
        return int(self.attrs["format_version"])

    @property
    def flow_bound(self) -> float:
        """The bound (pixels) the codes were quantised with."""
        return float(self.attrs["flow_bound"])

    # -- frames ----------------------------------------------------------------------------------------------
    def read_rgb(self, indices, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Decode the JPEG frames at `indices` (any order, repeats allowed). Returns (n, H, W, 3) uint8 RGB.

        Args:
            box: optional crop (y0, x0, height, width) applied after decoding (JPEG decodes whole frames).
        """
        unique, inverse = self._unique(indices)
        y, x = self._box_slices(box)
        blobs, crcs = self._rows("rgb", unique), self._rows("rgb_crc32", unique)
        frames = np.empty((len(unique), y.stop - y.start, x.stop - x.start, 3), np.uint8)
        for i, blob in enumerate(blobs):
            blob = np.asarray(blob, np.uint8)
            if zlib.crc32(blob) != crcs[i]:
                mismatch = ValueError("CRC-32 mismatch")
                raise corrupt_error(self.path, f"RGB frame {unique[i]}", mismatch, self._video_id())
            bgr = cv2.imdecode(blob, cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (self.height, self.width):
                hint = redo_hint(self.path, self._video_id())
                raise FlowStoreError(f"{self.path}: RGB frame {unique[i]} is not a valid JPEG; {hint}")
            cv2.cvtColor(bgr[y, x], cv2.COLOR_BGR2RGB, dst=frames[i])
        return frames if inverse is None else frames[inverse]

    def read_flow(self, indices, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Flow at `indices` (any order, repeats allowed). Returns (n, H, W, 2) float32 pixels, x right, y down.

        Args:
            box: optional crop (y0, x0, height, width); only that region is copied and dequantised.
        """
        codes = self.read_flow_codes(indices, box)  # (n, 2, h, w) uint8
        n, _, h, w = codes.shape
        out = np.empty((n, h, w, 2), np.float32)  # dequantise straight into the channels-last layout: one pass
        np.subtract(codes.transpose(0, 2, 3, 1), np.float32(ZERO_CODE), out=out, dtype=np.float32)
        out *= np.float32(self.flow_bound / LEVELS)
        return out

    def read_flow_codes(self, indices, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The stored 8-bit codes at `indices` (any order, repeats allowed): (n, 2, H, W) uint8, planes x then y.

        `flow.quantize.dequantize_flow(codes, self.flow_bound)` gives pixels; `i3d.data.transforms.flow_code_tables`
        the model input of each code. Only the `box` (y0, x0, height, width) is copied out of the decoded chunks.
        """
        if "flow" not in self._h5():
            raise FlowStoreError(
                f"{self.path} has no 'flow' dataset (an RGB-only store, or written by an interrupted run?); "
                f"{redo_hint(self.path)}"
            )
        unique, inverse = self._unique(indices)
        codes = self._rows("flow", unique, self._box_slices(box))
        return codes if inverse is None else codes[inverse]  # repeat the 1-byte codes, not a float32 result

    def _rows(self, name: str, rows: np.ndarray, box: tuple[slice, slice] | None = None):
        """`_read_rows` of dataset `name`, with HDF5's read errors (a checksum or decompression failure: bytes
        changed on disk) turned into a FlowStoreError that names the store and the fix."""
        try:
            return _read_rows(self._h5()[name], rows, box)
        except OSError as e:
            what = f"{name} frames {rows[0]}-{rows[-1]}" if len(rows) else name
            raise corrupt_error(self.path, what, e, self._video_id()) from e

    def _video_id(self) -> str | None:
        try:
            return self.attrs.get("video_id")
        except (OSError, FlowStoreError):
            return None

    def _unique(self, indices) -> tuple[np.ndarray, np.ndarray | None]:
        """Sorted unique frame indices and how to expand them back (None when `indices` are already so)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = self.num_frames
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise IndexError(f"{self.path}: frame index {bad} out of range for {n} frames")
        if np.all(idx[1:] > idx[:-1]):
            return idx, None
        return np.unique(idx, return_inverse=True)

    def _box_slices(self, box) -> tuple[slice, slice]:
        if box is None:
            return slice(0, self.height), slice(0, self.width)
        y0, x0, h, w = (int(v) for v in box)
        if y0 < 0 or x0 < 0 or h <= 0 or w <= 0 or y0 + h > self.height or x0 + w > self.width:
            raise ValueError(f"{self.path}: crop box (y0, x0, h, w) = {box} does not fit {self.height}x{self.width}")
        return slice(y0, y0 + h), slice(x0, x0 + w)


def _read_rows(dataset: h5py.Dataset, rows: np.ndarray, box: tuple[slice, slice] | None = None):
    """Read sorted unique rows (optionally a spatial box of (n, 2, H, W) flow): a dense run as one slice, since
    h5py's point selection is slow for many rows."""
    space = (slice(None),) + box if box is not None else ()
    if len(rows) == 0:
        return dataset[(slice(0, 0),) + space]
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo == len(rows):
        return dataset[(slice(lo, hi),) + space]
    if hi - lo <= 2 * len(rows):
        return dataset[(slice(lo, hi),) + space][rows - lo]
    return dataset[(rows,) + space]


def read_attrs(path: str | os.PathLike, keys: tuple[str, ...]) -> dict:
    """The attributes `keys` of a store that has them, as plain Python, without reading the others (the source's
    frame indices and such): cheaper than `VideoStore(path).attrs` when checking many stores.

    Raises:
        FlowStoreError: the file is not a store of the current format (`format_problem`).
    """
    with h5py.File(path, "r") as f:
        problem = format_problem(f, Path(path))
        if problem:
            raise FlowStoreError(problem)
        present = set(f.attrs)
        return {k: _plain(f.attrs[k]) for k in keys if k in present}


def _plain(value):
    """HDF5 attribute -> plain Python (str, int, float, bool, list) so attrs compare and serialise simply."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def store_problem(path: str | os.PathLike) -> str | None:
    """Why `path` is not a whole store of the current format (None when it is one), from its metadata alone: the
    format, and as many RGB frames, CRC-32s and flow frames as `num_frames` says."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            problem = format_problem(f, path)
            if problem:
                return problem
            n = int(f.attrs["num_frames"])
            names = ("rgb", "rgb_crc32", "flow") if bool(f.attrs["has_flow"]) else ("rgb", "rgb_crc32")
            counts = {name: f[name].shape[0] if name in f else 0 for name in names}
    except OSError as e:
        return f"{path} is not a readable HDF5 file ({e}); {redo_hint(path)}"
    except (KeyError, ValueError) as e:
        return f"{path} is not a complete store ({type(e).__name__}: {e}); {redo_hint(path)}"
    short = [f"{name} {count}" for name, count in counts.items() if count != n]
    if short:
        return f"{path} is incomplete ({', '.join(short)} of {n} frames); {redo_hint(path)}"
    return None


def is_complete(path: str | os.PathLike) -> bool:
    """True when `path` is a whole store of the current format (`store_problem` finds nothing): a resumed
    extraction skips these and redoes the rest."""
    return store_problem(path) is None


def verify_store(path: str | os.PathLike) -> str | None:
    """Read every RGB frame and flow chunk of a store. Returns None if all of it reads back whole, else what is wrong.

    Checks the store's format and completeness (`store_problem`), every checksum (see the module's docstring), and
    that every JPEG decodes to the store's frame size.
    """
    problem = store_problem(path)
    if problem:
        return problem
    try:
        with VideoStore(path) as store:
            n, step = store.num_frames, 64
            for start in range(0, n, step):
                rows = np.arange(start, min(n, start + step))
                store.read_rgb(rows)
                if store.has_flow:
                    store._rows("flow", rows)
    except (FlowStoreError, OSError, KeyError, ValueError) as e:
        return str(e)
    return None
