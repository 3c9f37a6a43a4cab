"""One HDF5 file per video: JPEG RGB frames and 8-bit quantised TV-L1 flow, with the parameters that made them.

Layout of `<video_id>.h5` (format version 2):

    /rgb        (N,) variable-length uint8: one JPEG per frame (RGB decoded; JPEG keeps RGB ~10x smaller than raw)
    /rgb_crc32  (N,) uint32: zlib.crc32 of each JPEG (HDF5 cannot put a checksum filter on variable-length data)
    /flow       (N, 2, H, W) uint8, chunk = one frame, `flow_codec` + fletcher32: codes of `flow.quantize` (absent
                in an RGB-only store); planes x then y, so a crop of one frame is two contiguous-row boxes
    attrs       format_version, num_frames, height, width, flow_bound, flow_codec, rgb_codec, jpeg_quality,
                checksums, ... plus the extractor's (video_id, source path and size, fps, source frame indices, TV-L1
                parameters, convention, OpenCV/engine version)

Format versions: 1 stored the flow codes with gzip level 6, which took a third of a training clip's CPU time to
inflate; 2 records the codec in `flow_codec` and defaults to Blosc2 LZ4HC through `hdf5plugin` (4x faster to read,
1.4x gzip's flow bytes and 1.14x the whole store's on real stores; docs/PERFORMANCE.md, issue 16). Version 1 stores (and
stores without a `format_version`) read as before and need no plugin; `convert_store` (tools/convert_stores.py)
rewrites them as version 2. Reading a version 2 store imports `hdf5plugin` for its filters.

Stores are written under a temporary name and renamed when complete, so a file at the final path is whole. Every
read checks what it reads: HDF5 verifies each flow chunk's fletcher32 checksum, `read_rgb` each JPEG's CRC-32, and a
mismatch is a `FlowStoreError` that names the store and the command that redoes it; `verify_store` reads it all.
The checksums came in without a new format version: stores written before them (no `rgb_crc32`, no fletcher32)
read as before.
"""

import json
import os
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np

from common.files import temp_path
from flow.quantize import DEFAULT_BOUND, LEVELS, ZERO_CODE, quantize_flow

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # a store without `format_version` is read as version 1
FLOW_CODEC = "lz4hc"  # what new stores get (StoreWriter's default); picked by benchmarks/bench_store_codecs.py
FLOW_CODECS = ("lz4hc", "gzip", "lzf", "none")
PLUGIN_CODECS = ("lz4hc",)  # decoded by a filter from `hdf5plugin`, not built into h5py


def flow_filter(codec: str) -> dict:
    """The h5py `create_dataset` keywords of a flow codec (fletcher32 is added by the writer).

    "lz4hc": Blosc2 LZ4HC level 5 (needs `hdf5plugin`); "gzip": deflate level 6 (format version 1's); "lzf": h5py's
    LZF; "none": uncompressed.
    """
    if codec == "lz4hc":
        hdf5plugin = load_plugins()
        return dict(hdf5plugin.Blosc2(cname="lz4hc", clevel=5, filters=hdf5plugin.Blosc2.NOFILTER))
    if codec == "gzip":
        return {"compression": "gzip", "compression_opts": 6}
    if codec == "lzf":
        return {"compression": "lzf"}
    if codec == "none":
        return {}
    raise ValueError(f"flow codec {codec!r}: use one of {', '.join(FLOW_CODECS)}")


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


class FlowStoreError(Exception):
    """A store is missing, incomplete or corrupt; the message names the file and the fix."""


def _fix_hint(path: Path, video_id: str | None = None) -> str:
    """The command that redoes the store at `path` (OUT/<video_id>.h5; video_id is recorded in stores since 2026-12)."""
    if not video_id or not path.as_posix().endswith(f"/{video_id}.h5"):
        video_id = path.stem
    out = path.parents[video_id.count("/")]
    return f"redo it with tools/extract_flow.py --videos ... --out {out} --overwrite {video_id}"


def _corrupt(path: Path, what: str, error: Exception, video_id: str | None) -> FlowStoreError:
    return FlowStoreError(
        f"{path}: {what} cannot be read ({type(error).__name__}: {error}): the store is corrupt; "
        f"{_fix_hint(path, video_id)} (or with --verify, which reads every store and redoes the bad ones)"
    )


class VideoStore:
    """Read-only view of one `<video_id>.h5`.

    The HDF5 file is opened lazily on first use and reopened in every process (the handle is dropped on pickling
    and whenever the process id changes), so a store can be built in the main process and read in DataLoader
    workers.
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
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise FlowStoreError(f"{self.path} is not a readable HDF5 file ({e}); {_fix_hint(self.path)}") from e
        self._pid = os.getpid()
        if "rgb" not in self._file:
            raise FlowStoreError(f"{self.path} has no 'rgb' dataset (not a flow store?); {_fix_hint(self.path)}")
        if _plain(self._file.attrs.get("flow_codec")) in PLUGIN_CODECS:
            load_plugins(self.path)
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
        return int(self.attrs.get("format_version", 1))

    # -- frames ----------------------------------------------------------------------------------------------
    def read_rgb(self, indices, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Decode the JPEG frames at `indices` (any order, repeats allowed). Returns (n, H, W, 3) uint8 RGB.

        Args:
            box: optional crop (y0, x0, height, width) applied after decoding (JPEG decodes whole frames).
        """
        unique, inverse = self._unique(indices)
        y, x = self._box_slices(box)
        blobs = self._rows("rgb", unique)
        crcs = self._rows("rgb_crc32", unique) if "rgb_crc32" in self._h5() else None
        frames = None
        for i, blob in enumerate(blobs):
            blob = np.asarray(blob, np.uint8)
            if crcs is not None and zlib.crc32(blob) != crcs[i]:
                raise _corrupt(self.path, f"RGB frame {unique[i]}", ValueError("CRC-32 mismatch"), self._video_id())
            bgr = cv2.imdecode(blob, cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (self.height, self.width):
                raise FlowStoreError(f"{self.path}: RGB frame {unique[i]} is not a valid JPEG; "
                                     f"{_fix_hint(self.path, self._video_id())}")  # fmt: skip
            crop = bgr[y, x]
            if frames is None:
                frames = np.empty((len(unique),) + crop.shape, np.uint8)
            cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=frames[i])
        if frames is None:
            frames = np.empty((0, y.stop - y.start, x.stop - x.start, 3), np.uint8)
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

        `flow.quantize.dequantize_flow(codes, self.flow_bound)` gives pixels; `transforms.flow_codes_input` model
        input. Only the `box` (y0, x0, height, width) is copied out of the decoded chunks.
        """
        f = self._h5()
        if "flow" not in f:
            raise FlowStoreError(
                f"{self.path} has no 'flow' dataset (an RGB-only store, or written by an interrupted run?); "
                f"{_fix_hint(self.path)}"
            )
        unique, inverse = self._unique(indices)
        codes = self._rows("flow", unique, self._box_slices(box))
        return codes if inverse is None else codes[inverse]  # repeat the 1-byte codes, not a float32 result

    @property
    def flow_bound(self) -> float:
        """The bound (pixels) the codes were quantised with."""
        return float(self.attrs.get("flow_bound", DEFAULT_BOUND))

    def _rows(self, name: str, rows: np.ndarray, box: tuple[slice, slice] | None = None):
        """`_read_rows` of dataset `name`, with HDF5's read errors (a checksum or decompression failure: bytes
        changed on disk) turned into a FlowStoreError that names the store and the fix."""
        try:
            return _read_rows(self._h5()[name], rows, box)
        except OSError as e:
            what = f"{name} frames {rows[0]}-{rows[-1]}" if len(rows) else name
            raise _corrupt(self.path, what, e, self._video_id()) from e

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
    frame indices and such); a few times faster than `VideoStore(path).attrs` when checking many stores."""
    with h5py.File(path, "r") as f:
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


def encode_jpeg(frame_rgb: np.ndarray, quality: int = 95) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not JPEG-encode a frame of shape {frame_rgb.shape}")
    return buf.reshape(-1)


class StoreWriter:
    """Write one store frame by frame (memory stays bounded for long videos); `write_store` for whole arrays.

    Frames go to a temporary file in the destination folder; `close(attrs)` checks that RGB and flow have the same
    number of frames, writes the attributes and renames the file into place. Leaving the `with` block on an
    exception (or without `close`) deletes the temporary file, so a store at the final path is always whole.

    Args:
        path: final `<video_id>.h5` path; parent folders are created.
        height, width: frame size.
        has_flow: False for an RGB-only store.
        jpeg_quality: 0-100 for the RGB frames.
        bound: flow clipping bound in pixels (recorded as `flow_bound`).
        compression: the flow codec, one of `FLOW_CODECS` (see `flow_filter`; None means "none"); recorded as
            `flow_codec`. The default reads 4x faster than "gzip", which any HDF5 tool reads without a plugin.
    """

    def __init__(self, path, height: int, width: int, *, has_flow: bool = True, jpeg_quality: int = 95,
                 bound: float = DEFAULT_BOUND, compression: str | None = FLOW_CODEC):  # fmt: skip
        self.codec = compression or "none"
        codec_filter = flow_filter(self.codec) if has_flow else {}  # an unknown codec fails before any file exists
        self.path, self.height, self.width = Path(path), height, width
        self.jpeg_quality, self.bound = jpeg_quality, bound
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(self.path)
        self._f = h5py.File(self.tmp, "w")
        self._rgb = self._f.create_dataset("rgb", (0,), maxshape=(None,), chunks=(64,), dtype=h5py.vlen_dtype(np.uint8))
        self._crc = self._f.create_dataset("rgb_crc32", (0,), np.uint32, maxshape=(None,), chunks=(1024,),
                                           fletcher32=True)  # fmt: skip
        self._flow = None
        if has_flow:
            self._flow = self._f.create_dataset(
                "flow", (0, 2, height, width), np.uint8, maxshape=(None, 2, height, width),
                chunks=(1, 2, height, width), fletcher32=True, **codec_filter,
            )  # fmt: skip

    def add_rgb(self, frames: np.ndarray) -> None:
        """Append (n, H, W, 3) uint8 RGB frames (or one (H, W, 3) frame)."""
        frames = np.asarray(frames)
        frames = frames[None] if frames.ndim == 3 else frames
        if frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise ValueError(f"{self.path}: RGB frames must be (n, {self.height}, {self.width}, 3) uint8, "
                             f"got {frames.shape} {frames.dtype}")  # fmt: skip
        start = self._rgb.shape[0]
        self._rgb.resize((start + len(frames),))
        self._crc.resize((start + len(frames),))
        for i, frame in enumerate(frames):
            jpeg = encode_jpeg(frame, self.jpeg_quality)
            self._rgb[start + i] = jpeg
            self._crc[start + i] = zlib.crc32(jpeg)

    def add_flow(self, flow: np.ndarray) -> None:
        """Append (n, H, W, 2) float32 flow in pixels (or one (H, W, 2) field)."""
        flow = np.asarray(flow)
        flow = flow[None] if flow.ndim == 3 else flow
        if self._flow is None or flow.shape[1:] != (self.height, self.width, 2):
            raise ValueError(f"{self.path}: flow must be (n, {self.height}, {self.width}, 2) in a store with flow, "
                             f"got {flow.shape}")  # fmt: skip
        start = self._flow.shape[0]
        self._flow.resize(start + len(flow), axis=0)
        self._flow[start:] = quantize_flow(flow, self.bound).transpose(0, 3, 1, 2)

    @property
    def num_frames(self) -> int:
        return self._rgb.shape[0]

    def close(self, attrs: dict) -> Path:
        """Check frame counts, write `attrs` (dicts stored as JSON, None skipped) and rename into place."""
        n = self.num_frames
        if n == 0:
            raise ValueError(f"{self.path}: no frames to store (an empty or unreadable video?)")
        if self._flow is not None and self._flow.shape[0] != n:
            raise ValueError(f"{self.path}: {self._flow.shape[0]} flow frames for {n} RGB frames; they must match")
        own = {
            "format_version": FORMAT_VERSION, "num_frames": n, "height": self.height, "width": self.width,
            "has_flow": self._flow is not None, "flow_codec": self.codec if self._flow is not None else None,
            "rgb_codec": "jpeg", "jpeg_quality": self.jpeg_quality,
            "flow_bound": self.bound, "flow_dtype": "uint8", "flow_layout": "(N, 2, H, W): x plane, y plane",
            "flow_quantization": f"px = (code - 128) * {self.bound} / 127; code 128 is exactly 0",
            "checksums": "flow: HDF5 fletcher32 per chunk; rgb: zlib.crc32 of each JPEG in rgb_crc32",
        }  # fmt: skip
        for key, value in {**attrs, **own}.items():
            if value is not None:
                self._f.attrs[key] = json.dumps(value) if isinstance(value, dict) else value
        self._f.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file (nothing appears at the final path)."""
        if self._f.id.valid:
            self._f.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self.tmp.exists():  # an exception, or close() never reached
            self.abort()


def write_store(
    path: str | os.PathLike,
    rgb: np.ndarray,
    flow: np.ndarray | None,
    attrs: dict,
    *,
    jpeg_quality: int = 95,
    bound: float = DEFAULT_BOUND,
    compression: str | None = FLOW_CODEC,
) -> Path:
    """Write one video's store atomically (temporary name in the same folder, then `os.replace`).

    Args:
        path: final `<video_id>.h5` path; parent folders are created.
        rgb: (N, H, W, 3) uint8 RGB frames.
        flow: (N, H, W, 2) float32 pixels aligned with `rgb`, or None for an RGB-only store.
        attrs: merged into the file attributes (dicts are stored as JSON strings, None values skipped).
        jpeg_quality, bound, compression: see `StoreWriter`.
    """
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"write_store({path}): rgb must be (N, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    n, h, w, _ = rgb.shape
    if n == 0:
        raise ValueError(f"write_store({path}): no frames to store (an empty or unreadable video?)")
    if flow is not None and tuple(np.shape(flow)) != (n, h, w, 2):
        raise ValueError(f"write_store({path}): flow must be {(n, h, w, 2)} to match rgb, got {np.shape(flow)}")
    opts = dict(has_flow=flow is not None, jpeg_quality=jpeg_quality, bound=bound, compression=compression)
    with StoreWriter(path, h, w, **opts) as writer:
        writer.add_rgb(rgb)
        if flow is not None:
            writer.add_flow(flow)
        return writer.close(attrs)


def is_complete(path: str | os.PathLike) -> bool:
    """True when `path` is a whole store of a readable format (a resumed run skips these and redoes the rest; a
    version 1 store is kept: `convert_store` upgrades it without redoing the flow)."""
    try:
        with h5py.File(path, "r") as f:
            return (
                int(f.attrs.get("format_version", 1)) in READABLE_VERSIONS
                and "rgb" in f
                and f["rgb"].shape[0] == int(f.attrs["num_frames"])
                and ("rgb_crc32" not in f or f["rgb_crc32"].shape[0] == int(f.attrs["num_frames"]))
                and (not bool(f.attrs.get("has_flow", False)) or "flow" in f)
            )
    except (OSError, KeyError, ValueError):
        return False


def verify_store(path: str | os.PathLike) -> str | None:
    """Read every RGB frame and flow chunk of a store. Returns None if all of it reads back whole, else what is wrong.

    Checks the checksums where the store has them (see the module's docstring), gzip's own check of every flow
    chunk, and that every JPEG decodes to the store's frame size.
    """
    path = Path(path)
    if not is_complete(path):
        return (f"{path} is not a complete store (an interrupted copy, or not a flow store of a format in "
                f"{READABLE_VERSIONS})")
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
