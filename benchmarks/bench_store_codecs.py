"""Flow codecs side by side on real stores: bytes per frame and decode CPU ms per frame, full frames and crop reads.

    .venv/bin/python benchmarks/bench_store_codecs.py STORE.h5 [STORE.h5 ...] [--crop 224] [--frames 64] [--repeats 5]

The 8-bit flow codes of each store are rewritten into temporary HDF5 files, one per (codec, chunk shape), always with
fletcher32 (the stores' integrity check), and read back the way a clip is read: `--frames` consecutive frames, either
whole (`full ms/f`) or only a `--crop` square at a random corner (`crop ms/f`: HDF5 decodes only the chunks the box
touches, so it pays off only with tiled chunks). CPU seconds (`time.process_time`), page cache warm. Rows are summed
over the stores; "vs gzip-6" compares with what `StoreWriter` wrote up to format version 1.
Needs `hdf5plugin` for LZ4, Zstd and Blosc2 (`make install` installs it).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without `pip install -e .`

import h5py
import hdf5plugin
import numpy as np

CODECS = {  # name -> h5py create_dataset keywords
    "none": {},
    "gzip-1": {"compression": "gzip", "compression_opts": 1},
    "gzip-6": {"compression": "gzip", "compression_opts": 6},
    "lzf": {"compression": "lzf"},
    "lz4": dict(hdf5plugin.LZ4()),
    "zstd-1": dict(hdf5plugin.Zstd(clevel=1)),
    "zstd-3": dict(hdf5plugin.Zstd(clevel=3)),
    "blosc2-lz4": dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.NOFILTER)),
    "blosc2-lz4hc": dict(hdf5plugin.Blosc2(cname="lz4hc", clevel=5, filters=hdf5plugin.Blosc2.NOFILTER)),
    "blosc2-zstd-1": dict(hdf5plugin.Blosc2(cname="zstd", clevel=1, filters=hdf5plugin.Blosc2.NOFILTER)),
    "blosc2-zstd-5": dict(hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.NOFILTER)),
    "blosc2-zstd-1-bitshuffle": dict(hdf5plugin.Blosc2(cname="zstd", clevel=1, filters=hdf5plugin.Blosc2.BITSHUFFLE)),
}
TILES = {  # name -> chunk shape of one store's (N, 2, H, W) codes
    "frame": lambda h, w: (1, 2, h, w),
    "rows-32": lambda h, w: (1, 2, 32, w),
    "tile-64x64": lambda h, w: (1, 2, 64, 64),
    "cols-32": lambda h, w: (1, 2, h, 32),
}


def time_reads(ds: h5py.Dataset, frames: int, crop: int, repeats: int, rng) -> tuple[float, float]:
    """CPU ms per frame of reading `frames` consecutive frames whole, and of reading only a crop x crop box."""
    n, _, h, w = ds.shape
    starts = rng.integers(0, max(n - frames, 0) + 1, repeats)
    corners = [(rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)) for _ in range(repeats)]
    ds[0:1]  # open the filter pipeline
    t = time.process_time()
    for s in starts:
        ds[s : s + frames]
    full = time.process_time() - t
    t = time.process_time()
    for s, (y, x) in zip(starts, corners, strict=True):
        ds[s : s + frames, :, y : y + crop, x : x + crop]
    cropped = time.process_time() - t
    count = repeats * min(frames, n)
    return full * 1000 / count, cropped * 1000 / count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stores", nargs="+", type=Path)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--frames", type=int, default=64, help="consecutive frames per timed read (a clip)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--codecs", nargs="*", default=list(CODECS), choices=list(CODECS))
    p.add_argument("--tiles", nargs="*", default=["frame", "rows-32", "tile-64x64"], choices=list(TILES))
    args = p.parse_args()
    codes = []
    for path in args.stores:
        with h5py.File(path, "r") as f:
            codes.append(f["flow"][:])
    frames = sum(len(c) for c in codes)
    sizes = ", ".join(f"{c.shape[0]}x{c.shape[2]}x{c.shape[3]}" for c in codes)
    print(f"{len(codes)} stores ({sizes}), {frames} frames; {args.frames}-frame reads, crop {args.crop}, fletcher32 on")
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs; h5py {h5py.__version__}, "
          f"HDF5 {h5py.version.hdf5_version}, hdf5plugin {hdf5plugin.version}")
    names = [f"{'codec':<24}", f"{'chunk':<10}"] + [f"{c:>11}" if c == "bytes/frame" else f"{c:>9}"
                                                    for c in ("bytes/frame", "vs gzip-6", "full ms/f", "crop ms/f")]
    header = "| " + " | ".join(names) + " |"
    print(header)
    print("|" + "|".join("-" * len(column) for column in header.split("|")[1:-1]) + "|")
    rows = [("gzip-6", "frame")] + [(n, t) for t in args.tiles for n in args.codecs if (n, t) != ("gzip-6", "frame")]
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, tile in rows:
            if True:
                nbytes, full, crop = 0, 0.0, 0.0
                for i, c in enumerate(codes):
                    path = Path(tmp) / f"{name}-{tile}-{i}.h5"
                    with h5py.File(path, "w") as f:
                        chunks = TILES[tile](c.shape[2], c.shape[3])
                        f.create_dataset("flow", data=c, chunks=chunks, fletcher32=True, **CODECS[name])
                    with h5py.File(path, "r") as f:
                        nbytes += f["flow"].id.get_storage_size()
                        a, b = time_reads(f["flow"], args.frames, args.crop, args.repeats, np.random.default_rng(i))
                    full, crop = full + a * len(c), crop + b * len(c)
                    path.unlink()
                if (name, tile) == ("gzip-6", "frame"):
                    reference = nbytes
                ratio = f"{nbytes / reference:.2f}x" if reference else "-"
                print(f"| {name:<24} | {tile:<10} | {nbytes / frames:11.0f} | {ratio:>9} | {full / frames:9.3f} | "
                      f"{crop / frames:9.3f} |", flush=True)


if __name__ == "__main__":
    main()
