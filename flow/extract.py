"""Flow extraction: one video into one store (`extract_store`), and many videos into `OUT/<video_id>.h5` on the
shared batch runner (`extract_all`: local processes or Dask, shards, resume, OUT/report.json and OUT/index.csv,
see `common.runner`).

Every option is checked once, before any video is touched (`ExtractOptions`, `check_run`). A bad video becomes a
"failed" record with its path and reason, and the run goes on. A store that is already complete is "skipped"
without being opened for writing (with `verify`, after reading all of it), so a rerun (or a SLURM array job
restarted after a timeout) redoes only what is missing or damaged.
"""

import contextlib
import glob
import importlib.util
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2

from common.files import remove_temps
from common.runner import Job, check_backend, check_out, run_job
from common.videos import find_run_videos, select_shard
from flow.engines import ENGINES
from flow.prefetch import prefetch
from flow.quantize import DEFAULT_BOUND
from flow.store import FlowStoreError, VideoStore, is_complete, verify_store
from flow.store_writer import FLOW_CODEC, FLOW_CODECS, JPEG_QUALITY, StoreWriter
from flow.stream import get_engine, stream_flow
from flow.tvl1 import CONVENTIONS, TVL1Params, check_params
from flow.video import VideoReader


@dataclass(frozen=True)
class ExtractOptions:
    """How every video of a run is extracted (recorded in each store's attributes, except `prefetch`)."""

    fps: float = 25.0  # output frame rate (the I3D protocol); 0 keeps the native rate
    short_side: int = 256  # bilinear resize of the shorter side; 0 keeps the native size
    max_frames: int | None = None  # keep only the first N output frames (quick looks, tests)
    convention: str = "backward"  # "backward": flow[t] = t-1 -> t, flow[0] = 0; "forward": t -> t+1, last = 0
    engine: str = "opencv"
    tvl1: TVL1Params = field(default_factory=TVL1Params)
    bound: float = DEFAULT_BOUND
    jpeg_quality: int = JPEG_QUALITY
    compression: str = FLOW_CODEC  # flow codec of the stores (flow.store_writer.FLOW_CODECS)
    batch: int = 8  # frame pairs per engine call (GPU engines like large batches)
    prefetch: int = 2  # batches of frames decoded ahead in a thread while the engine works; 0: off (same output)
    overwrite: bool | tuple[str, ...] = False  # True: redo every finished store; video ids: redo those
    verify: bool = False  # read every finished store fully before skipping it; redo the ones that do not read back

    def __post_init__(self):
        """Each bad option is a ValueError of one line naming it by its command-line flag."""
        if not (math.isfinite(self.fps) and self.fps >= 0):
            raise ValueError(f"--fps {self.fps}: must be >= 0 frames per second (0 keeps each video's own rate)")
        if self.short_side < 0:
            raise ValueError(f"--short-side {self.short_side}: must be >= 0 pixels (0 keeps the native size)")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"--max-frames {self.max_frames}: must be >= 1")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"--convention {self.convention!r}: unknown flow convention; use one of {CONVENTIONS}")
        if self.engine not in ENGINES:
            raise ValueError(f"--engine {self.engine!r}: unknown TV-L1 engine; use one of {', '.join(ENGINES)}")
        check_params(self.tvl1, self.engine)
        if not (math.isfinite(self.bound) and self.bound > 0):
            raise ValueError(f"--bound {self.bound}: must be > 0 pixels (flow is clipped to +-bound)")
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg-quality {self.jpeg_quality}: must be 0-100")
        if self.compression not in FLOW_CODECS:
            raise ValueError(f"compression {self.compression!r}: use one of {', '.join(FLOW_CODECS)}")
        if self.batch < 1:
            raise ValueError(f"--batch {self.batch}: must be >= 1 frame pairs per engine call")
        if self.prefetch < 0:
            raise ValueError(f"--prefetch {self.prefetch}: must be >= 0 batches (0 decodes in the main thread)")

    def overwrites(self, video_id: str) -> bool:
        return self.overwrite is True or (isinstance(self.overwrite, tuple) and video_id in self.overwrite)


# -- one video ---------------------------------------------------------------------------------------------------
def extract_store(video_id: str, src: str | Path, dst: str | Path, opts: ExtractOptions, *, threads: int = 0,
                  on_frames: Callable[[int], None] | None = None) -> dict:
    """Extract one video into the store `dst` (or skip it when a finished store is there).

    Args:
        threads: threads for the numba engine (0: numba's default); OpenCV's TV-L1 stays on one thread: its own
            threading gained nothing on 2 cores (docs/PERFORMANCE.md, "TV-L1 engines").
        on_frames: called with the number of frames just written, a few times per video (progress).

    Returns:
        A record: video_id, source, store, status ("done" or "skipped"), frames, fps, height, width, seconds,
        calc_seconds (time inside the TV-L1 engine), truncated, threads (numba), warnings, error (None).

    Raises:
        VideoError, FlowStoreError, OSError, ...: for a bad video or store (the runner records it as failed).
    """
    start = time.perf_counter()
    record = _record(video_id, src, dst)
    dst = Path(dst)
    if dst.exists() and not opts.overwrites(video_id):
        finished = _finished_store(dst, opts.verify)
        if isinstance(finished, tuple):
            summary, attrs = finished
            record.update(status="skipped", **summary)
            record["warnings"] += store_option_mismatches(attrs, opts)
            return record
        record["warnings"].append(f"{finished}; extracted again")
    remove_temps(dst.parent, dst.name)  # left by a killed run; shards never share a video
    if threads and opts.engine == "numba":  # numba's pool defaults to every core: N workers would run N x cores
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        record["threads"] = numba.get_num_threads()
    info, calc_seconds = _extract(src, dst, opts, video_id=video_id, on_frames=on_frames)
    record.update(status="done", frames=info["num_frames"], fps=info["sampled_fps"], height=info["height"],
                  width=info["width"], calc_seconds=calc_seconds, truncated=info["truncated"])
    record["warnings"] += info["warnings"]
    record["seconds"] = time.perf_counter() - start
    return record


def _finished_store(dst: Path, verify: bool) -> tuple[dict, dict] | str:
    """(summary, attrs) of a finished store that reads back (all of it, with `verify`), or what is wrong with it."""
    if not is_complete(dst):
        return f"{dst} was incomplete or corrupt"
    problem = verify_store(dst) if verify else None
    if problem:
        return problem
    try:
        return store_summary(dst)
    except (OSError, KeyError, ValueError, FlowStoreError) as e:
        return f"{dst} cannot be read ({type(e).__name__}: {e})"


def _record(video_id: str, src, dst) -> dict:
    return {"video_id": video_id, "source": str(src), "store": str(dst), "status": "failed", "frames": 0,
            "fps": None, "height": None, "width": None, "seconds": 0.0, "calc_seconds": 0.0, "truncated": False,
            "warnings": [], "error": None}


def _extract(src, dst: Path, opts: ExtractOptions, *, video_id: str | None = None,
             on_frames: Callable[[int], None] | None = None) -> tuple[dict, float]:
    """Decode (a thread ahead, `opts.prefetch` batches), TV-L1 (`flow.stream.stream_flow`: what predict and the
    feature extractor compute too), then JPEG, quantise and write each chunk; the store appears when complete."""
    on_frames = on_frames or (lambda frames: None)
    cv2.setNumThreads(1)  # parallelism comes from processes; OpenCV's own threads would oversubscribe the cores
    reader = VideoReader(src, fps=opts.fps, short_side=opts.short_side, max_frames=opts.max_frames)
    timing = {"engine_seconds": 0.0}
    with contextlib.ExitStack() as stack:
        # closing(): an error in the engine or the writer, too, stops the decode thread and releases the video
        frames = stack.enter_context(contextlib.closing(prefetch(reader, opts.prefetch * opts.batch)))
        writer = None
        for rgb, flow in stream_flow(frames, opts.engine, opts.tvl1, opts.convention, opts.batch, timing=timing):
            if writer is None:
                writer = stack.enter_context(StoreWriter(dst, *rgb.shape[1:3], jpeg_quality=opts.jpeg_quality,
                                                         bound=opts.bound, compression=opts.compression))
            writer.add_rgb(rgb)
            writer.add_flow(flow)
            on_frames(len(rgb))
        info = dict(reader.info, num_frames=writer.num_frames)
        writer.close(_store_attrs(video_id, info, get_engine(opts.engine, opts.tvl1), opts))
    return info, timing["engine_seconds"]


def _store_attrs(video_id: str | None, info: dict, engine, opts: ExtractOptions) -> dict:
    keys = ("source_path", "source_size", "native_fps", "sampled_fps", "source_frame_indices", "header_frames",
            "decoded_frames", "truncated", "source_height", "source_width")
    return {
        "video_id": video_id,  # OUT/<video_id>.h5: lets a read error name the command that redoes this store
        **{k: info[k] for k in keys},
        "fps": opts.fps,  # as asked (0 = native); sampled_fps is what this video got
        "short_side": opts.short_side,
        "flow_convention": opts.convention,
        "flow_convention_doc": "backward: flow[t] = frame t-1 -> t, flow[0] = 0"
        if opts.convention == "backward"
        else "forward: flow[t] = frame t -> t+1, flow[-1] = 0",
        "flow_algorithm": "TV-L1 (Zach et al. 2007), x right, y down, pixels",
        "engine": engine.name,
        "engine_version": engine.version,
        "opencv_version": cv2.__version__,
        "warnings": "; ".join(info["warnings"]),
        **opts.tvl1.to_attrs(),
    }


def store_summary(path: Path) -> tuple[dict, dict]:
    """frames, fps, height, width of an existing store (for skipped videos in the report and index), and its attrs."""
    with VideoStore(path) as store:
        summary = {"frames": store.num_frames, "fps": store.attrs.get("sampled_fps"), "height": store.height,
                   "width": store.width}
        return summary, store.attrs


def store_option_mismatches(attrs: dict, opts: ExtractOptions) -> list[str]:
    """Where a finished store was made with other options than this run's (it is kept; --overwrite redoes it)."""
    wanted = {"fps": opts.fps, "short_side": opts.short_side, "flow_convention": opts.convention, "engine": opts.engine,
              "flow_bound": opts.bound, "jpeg_quality": opts.jpeg_quality, **opts.tvl1.to_attrs()}
    if opts.fps:
        wanted["sampled_fps"] = opts.fps
    diffs = [f"{k} {attrs[k]!r} (asked {v!r})" for k, v in wanted.items() if k in attrs and attrs[k] != v]
    if diffs:
        return [f"kept a store made with other options: {', '.join(diffs)}; use --overwrite to redo it"]
    return []


# -- many videos -------------------------------------------------------------------------------------------------
def check_run(*, workers: int = 1, backend: str = "local", scheduler: str | None = None, engine: str = "opencv"):
    """Check a run's own options (a one-line ValueError for the first bad one)."""
    check_backend(backend, scheduler, workers)
    module = {"numba": "numba", "torch": "torch"}.get(engine)
    if backend == "local" and module and importlib.util.find_spec(module) is None:
        raise ValueError(f"--engine {engine} needs {module}, which is not installed here: pip install {module}")


def flow_job(opts: ExtractOptions) -> Job:
    """Flow extraction as a job of the batch runner: tasks (video_id, source, store)."""
    return Job("flow", work=partial(extract_store, opts=opts), options=opts, finished_file=lambda vid: f"{vid}.h5",
               outputs=lambda vid: [f"{glob.escape(vid)}.h5"], index_columns=INDEX_COLUMNS, index_row=flow_index_row,
               summarize=flagged)


INDEX_COLUMNS = ("video_id", "store", "frames", "fps", "height", "width")


def flow_index_row(record: dict) -> dict | None:
    """A good store's row of index.csv (its path relative to OUT: `<video_id>.h5`)."""
    if record["status"] not in ("done", "skipped"):
        return None
    return {"video_id": record["video_id"], "store": f"{record['video_id']}.h5", "frames": record["frames"],
            "fps": record["fps"], "height": record["height"], "width": record["width"]}


def flagged(records: list[dict]) -> dict:
    """The videos whose decoding ended early (truncated files): listed in the summary."""
    videos = [r["video_id"] for r in records if r.get("truncated")]
    return {"flagged": len(videos), "flagged_videos": videos}


def extract_all(specs: list[str], out: str | Path, opts: ExtractOptions, *, root=None, shard=None, workers=1,
                backend="local", scheduler=None, progress=True) -> tuple[list[dict], dict]:
    """Check the options, find the videos, keep this shard's, extract them into OUT, and keep OUT/report.json and
    OUT/index.csv up to date as each video finishes (`common.runner.run_job`).

    With `shard=(I, N)` the report and index are named report-shardIofN.json / index-shardIofN.csv so that array
    jobs do not overwrite each other; a final unsharded run (everything skipped) writes the complete index.
    Raises ValueError (a bad option) or FileNotFoundError (no videos) before any video is touched.
    """
    check_run(workers=workers, backend=backend, scheduler=scheduler, engine=opts.engine)
    videos = find_run_videos(specs, root, opts.overwrite)
    out = check_out(out)
    if shard:
        videos = select_shard(videos, *shard)
    tasks = [(video_id, src, out / f"{video_id}.h5") for video_id, src in videos]
    return run_job(flow_job(opts), [tasks], out, workers=workers, backend=backend, scheduler=scheduler, shard=shard,
                   progress=progress)
