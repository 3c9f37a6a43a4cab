"""Write one video's store (`flow.store` describes the format and reads it): frame by frame with `StoreWriter`, or
from whole arrays with `write_store`. Both write format 2 with its checksums under a temporary name and rename the
file into place only when it is whole.
"""

import json
import os
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np

from common.files import temp_path
from flow.quantize import DEFAULT_BOUND, dequantize_flow, quantize_flow
from flow.store import FORMAT_VERSION, load_plugins

FLOW_CODEC = "lz4hc"  # what new stores get (StoreWriter's default); picked by benchmarks/bench_store_codecs.py
FLOW_CODECS = ("lz4hc", "gzip", "lzf", "none")
JPEG_QUALITY = 95  # the RGB frames' JPEG quality when the writer is given none (recorded as `jpeg_quality`)
CHECKSUMS = "flow: HDF5 fletcher32 per chunk; rgb: zlib.crc32 of each JPEG in rgb_crc32"  # the `checksums` attribute


def flow_filter(codec: str) -> dict:
    """The h5py `create_dataset` keywords of a flow codec (fletcher32 is added by the writer).

    "lz4hc": Blosc2 LZ4HC level 5 (needs `hdf5plugin`); "gzip": deflate level 6, which any HDF5 tool reads without
    a plugin; "lzf": h5py's LZF; "none": uncompressed.
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


def encode_jpeg(frame_rgb: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """One (H, W, 3) uint8 RGB frame as JPEG bytes (a 1-D uint8 array)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not JPEG-encode a frame of shape {frame_rgb.shape}")
    return buf.reshape(-1)


def as_stored(frames: dict[str, np.ndarray], jpeg_quality: int, bound: float) -> dict[str, np.ndarray]:
    """Frames of a raw video as a store written with `jpeg_quality` and `bound` gives them back, bit for bit.

    What a model trained on stores saw is the stores' JPEG and 8-bit flow, not the decoded frames: inference on raw
    videos sends its frames through this storage round trip (after TV-L1, which extraction runs on the decoded
    frames too), so that its input equals the evaluation's on the store of the same video.

    Args:
        frames: {"rgb": (n, H, W, 3) uint8, "flow": (n, H, W, 2) float32 pixels}, either or both.
        jpeg_quality: the stores' `jpeg_quality`: each frame is encoded as `StoreWriter` does and decoded as
            `flow.store.VideoStore.read_rgb` does (OpenCV both ways).
        bound: the stores' `flow_bound`: flow -> `quantize_flow` codes -> `dequantize_flow` pixels (what
            `VideoStore.read_flow` computes from the codes).

    Returns:
        The same keys, new arrays of the same shapes and dtypes.
    """
    unknown = set(frames) - {"rgb", "flow"}
    if unknown:
        raise ValueError(f"as_stored: streams must be 'rgb' and/or 'flow', got {sorted(frames)}")
    out = {}
    if "rgb" in frames:
        rgb = np.asarray(frames["rgb"])
        out["rgb"] = np.empty_like(rgb)
        for i, frame in enumerate(rgb):
            bgr = cv2.imdecode(encode_jpeg(frame, jpeg_quality), cv2.IMREAD_COLOR)
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out["rgb"][i])
    if "flow" in frames:
        out["flow"] = dequantize_flow(quantize_flow(frames["flow"], bound), bound)
    return out


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
            `flow_codec`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        height: int,
        width: int,
        *,
        has_flow: bool = True,
        jpeg_quality: int = JPEG_QUALITY,
        bound: float = DEFAULT_BOUND,
        compression: str | None = FLOW_CODEC,
    ):
        self.codec = compression or "none"
        codec_filter = flow_filter(self.codec) if has_flow else {}  # an unknown codec fails before any file exists
        self.path, self.height, self.width = Path(path), height, width
        self.jpeg_quality, self.bound = jpeg_quality, bound
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(self.path)
        self._f = h5py.File(self.tmp, "w")
        self._rgb = self._f.create_dataset("rgb", (0,), maxshape=(None,), chunks=(64,), dtype=h5py.vlen_dtype(np.uint8))
        self._crc = self._f.create_dataset(
            "rgb_crc32", (0,), np.uint32, maxshape=(None,), chunks=(1024,), fletcher32=True
        )
        self._flow = None
        if has_flow:
            shape = (2, height, width)
            opts = dict(maxshape=(None, *shape), chunks=(1, *shape), fletcher32=True, **codec_filter)
            self._flow = self._f.create_dataset("flow", (0, *shape), np.uint8, **opts)

    def add_rgb(self, frames: np.ndarray) -> None:
        """Append (n, H, W, 3) uint8 RGB frames (or one (H, W, 3) frame)."""
        frames = np.asarray(frames)
        frames = frames[None] if frames.ndim == 3 else frames
        if frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: RGB frames must be (n, {self.height}, {self.width}, 3) uint8, "
                f"got {frames.shape} {frames.dtype}"
            )
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
            raise ValueError(
                f"{self.path}: flow must be (n, {self.height}, {self.width}, 2) in a store with flow, got {flow.shape}"
            )
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
        for key, value in {**attrs, **self._own_attrs()}.items():
            if value is not None:
                self._f.attrs[key] = json.dumps(value) if isinstance(value, dict) else value
        self._f.close()
        os.replace(self.tmp, self.path)
        return self.path

    def _own_attrs(self) -> dict:
        """What the format itself records (these win over the caller's attributes of the same name)."""
        has_flow = self._flow is not None
        return {
            "format_version": FORMAT_VERSION,
            "num_frames": self.num_frames,
            "height": self.height,
            "width": self.width,
            "has_flow": has_flow,
            "flow_codec": self.codec if has_flow else None,
            "rgb_codec": "jpeg",
            "jpeg_quality": self.jpeg_quality,
            "flow_bound": self.bound,
            "flow_dtype": "uint8",
            "flow_layout": "(N, 2, H, W): x plane, y plane",
            "flow_quantization": f"px = (code - 128) * {self.bound} / 127; code 128 is exactly 0",
            "checksums": CHECKSUMS,
        }

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
    jpeg_quality: int = JPEG_QUALITY,
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
