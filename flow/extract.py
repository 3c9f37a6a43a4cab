"""Extraction of many videos into `OUT/<video_id>.h5`: the per-video job, local (joblib) and Dask runs, shards,
resume, and the run's report (`report.json`) and index (`index.csv`, see `flow.report`).

Every option is checked once, before any video is touched (`ExtractOptions`, `check_run`). Each video is then one
job that never raises: a bad video becomes a "failed" record with its path and reason, and the run goes on. A store
that is already complete is "skipped" without being opened for writing (with `verify`, after reading all of it),
so a rerun (or a SLURM array job restarted after a timeout) redoes only what is missing or damaged. Workers die
with the run that started them (`common.workers`).
"""

import contextlib
import glob
import importlib.util
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from flow.engines import ENGINES, make_engine
from flow.prefetch import prefetch
from flow.quantize import DEFAULT_BOUND
from flow.report import RunReport
from flow.store import FLOW_CODEC, FLOW_CODECS, FlowStoreError, StoreWriter, VideoStore, is_complete, verify_store
from flow.tvl1 import CONVENTIONS, TVL1Params, check_params
from flow.video import VIDEO_EXTENSIONS, VideoReader
from common.workers import FrameChannel, RunBar, die_with_parent, send_frames


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
    jpeg_quality: int = 95
    compression: str = FLOW_CODEC  # flow codec of the stores (flow.store.FLOW_CODECS)
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
_ENGINES: dict = {}


def get_engine(name: str, params: TVL1Params, shape: tuple[int, int] | None = None):
    """The engine for (name, params), built once per process and thread (TV-L1 objects are costly, not shareable),
    and built again when the frame size `shape` (H, W) changes: OpenCV's TV-L1 object computes different flow for
    frames of one size after it has seen another size (up to 5.6 px on 48x64 after 24x32), so a store would depend
    on which videos its worker happened to do before. Only the latest size's engine is kept (bounded memory)."""
    key = (name, params, threading.get_ident())
    cached = _ENGINES.get(key)
    if cached is None or (shape is not None and cached[0] != shape):
        _ENGINES[key] = cached = (shape, make_engine(name, params))
    return cached[1]


def extract_video(video_id: str, src: str | Path, dst: str | Path, opts: ExtractOptions,
                  on_frames: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    """Extract one video into the store `dst`. Never raises for a bad video: the record says what happened.

    Args:
        on_frames: called with the number of frames just written, a few times per video (progress).

    Returns:
        A record: video_id, source, store, status ("done", "skipped" or "failed"), frames, fps, height, width,
        seconds, calc_seconds (time inside the TV-L1 engine), warnings, error.
    """
    start = time.perf_counter()
    record = _record(video_id, src, dst)
    dst = Path(dst)
    try:
        if dst.exists() and not opts.overwrites(video_id):
            finished = _finished_store(dst, opts.verify)
            if isinstance(finished, tuple):
                summary, attrs = finished
                record.update(status="skipped", **summary)
                record["warnings"] += option_mismatches(attrs, opts)
                return record
            record["warnings"].append(f"{finished}; extracted again")
        for stale in dst.parent.glob(f".{dst.name}.tmp-*"):  # left by a killed run; shards never share a video
            stale.unlink(missing_ok=True)
        info, calc_seconds = _extract(src, dst, opts, video_id=video_id, on_frames=on_frames)
        record.update(status="done", frames=info["num_frames"], fps=info["sampled_fps"], height=info["height"],
                      width=info["width"], calc_seconds=calc_seconds, truncated=info["truncated"])  # fmt: skip
        record["warnings"] += info["warnings"]
    except Exception as e:  # a bad video must not stop the run; the error is reported with its path
        record["error"] = f"{type(e).__name__}: {e}"
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


def _record(video_id: str, src, dst, error: str | None = None) -> dict:
    return {"video_id": video_id, "source": str(src), "store": str(dst), "status": "failed", "frames": 0,
            "fps": None, "height": None, "width": None, "seconds": 0.0, "calc_seconds": 0.0, "truncated": False,
            "warnings": [], "error": error}  # fmt: skip


def _extract(src, dst: Path, opts: ExtractOptions, *, video_id: str | None = None,
             on_frames: Callable[[int], None] | None = None) -> tuple[dict, float]:  # fmt: skip
    on_frames = on_frames or (lambda frames: None)
    cv2.setNumThreads(1)  # parallelism comes from processes; OpenCV's own threads would oversubscribe the cores
    reader = VideoReader(src, fps=opts.fps, short_side=opts.short_side, max_frames=opts.max_frames)
    calc_seconds, prev_gray, prev_batch, next_batch, engine = 0.0, None, [], [], None
    with contextlib.ExitStack() as stack:
        # closing(): an error in the engine or the writer, too, stops the decode thread and releases the video
        frames = stack.enter_context(contextlib.closing(prefetch(_with_gray(reader), opts.prefetch * opts.batch)))
        writer = None
        for frame, gray in frames:
            if writer is None:
                h, w = frame.shape[:2]
                engine = get_engine(opts.engine, opts.tvl1, shape=(h, w))
                writer = stack.enter_context(StoreWriter(dst, h, w, jpeg_quality=opts.jpeg_quality, bound=opts.bound,
                                                         compression=opts.compression))  # fmt: skip
                if opts.convention == "backward":
                    writer.add_flow(np.zeros((h, w, 2), np.float32))  # flow[0]: nothing moved into frame 0
            writer.add_rgb(frame)
            if prev_gray is not None:
                prev_batch.append(prev_gray)
                next_batch.append(gray)
            if len(prev_batch) >= opts.batch:
                calc_seconds += _calc(engine, prev_batch, next_batch, writer)
                on_frames(opts.batch)  # each pair completes one frame
            prev_gray = gray
        tail = len(prev_batch) + 1  # the last pairs' frames, and frame 0, which has no pair
        calc_seconds += _calc(engine, prev_batch, next_batch, writer)
        if opts.convention == "forward":
            writer.add_flow(np.zeros((h, w, 2), np.float32))  # the last frame has no successor
        info = dict(reader.info, num_frames=writer.num_frames)
        writer.close(_store_attrs(video_id, info, engine, opts))
        on_frames(tail)
    return info, calc_seconds


def _with_gray(reader: VideoReader):
    for frame in reader:
        yield frame, cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _calc(engine, prev_batch: list, next_batch: list, writer: StoreWriter) -> float:
    if not prev_batch:
        return 0.0
    start = time.perf_counter()
    flow = engine.calc_pairs(np.stack(prev_batch), np.stack(next_batch))
    seconds = time.perf_counter() - start
    writer.add_flow(flow)
    prev_batch.clear()
    next_batch.clear()
    return seconds


def _store_attrs(video_id: str | None, info: dict, engine, opts: ExtractOptions) -> dict:
    keys = ("source_path", "source_size", "native_fps", "sampled_fps", "source_frame_indices", "header_frames",
            "decoded_frames", "truncated", "source_height", "source_width")  # fmt: skip
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
                   "width": store.width}  # fmt: skip
        return summary, store.attrs


def option_mismatches(attrs: dict, opts: ExtractOptions) -> list[str]:
    """Where a finished store was made with other options than this run's (it is kept; --overwrite redoes it)."""
    wanted = {"fps": opts.fps, "short_side": opts.short_side, "flow_convention": opts.convention, "engine": opts.engine,
              "flow_bound": opts.bound, **opts.tvl1.to_attrs()}  # fmt: skip
    if opts.fps:
        wanted["sampled_fps"] = opts.fps
    diffs = [f"{k} {attrs[k]!r} (asked {v!r})" for k, v in wanted.items() if k in attrs and attrs[k] != v]
    if diffs:
        return [f"kept a store made with other options: {', '.join(diffs)}; use --overwrite to redo it"]
    return []


# -- which videos ------------------------------------------------------------------------------------------------
def find_run_videos(specs: list[str], root=None, overwrite: bool | tuple[str, ...] = False) -> list[tuple[str, Path]]:
    """`find_videos` for a run: no videos, or `--overwrite` ids that name none of them, are errors before any work."""
    videos = find_videos(specs, root)
    if not videos:
        raise FileNotFoundError(f"no videos found in {specs} (extensions: {', '.join(VIDEO_EXTENSIONS)})")
    if isinstance(overwrite, tuple):
        unknown = sorted(set(overwrite) - {video_id for video_id, _ in videos})
        if unknown:
            raise ValueError(f"--overwrite {' '.join(unknown)}: no such video id among the {len(videos)} videos "
                             f"found (ids are paths under the folder given, without extension, e.g. {videos[0][0]})")
    return videos


def find_videos(specs: list[str], root: str | Path | None = None) -> list[tuple[str, Path]]:
    """Expand files, folders (recursively, by video extension), globs and .txt lists into sorted (video_id, path).

    video_id is the path relative to `root` without extension; without `root`, relative to the folder given, to
    the glob's fixed prefix, to a list file's folder, or to a single file's own folder.
    """
    found: dict[str, Path] = {}
    for spec in specs:
        for base, path in _expand(spec, Path(root) if root else None):
            rel = path.resolve().relative_to(base.resolve()) if _is_under(path, base) else Path(path.name)
            video_id = rel.with_suffix("").as_posix()
            if video_id in found and found[video_id].resolve() != path.resolve():
                raise ValueError(f"two videos map to the id {video_id!r}: {found[video_id]} and {path}; "
                                 "rename one or pass --root so their relative paths differ")  # fmt: skip
            found[video_id] = path
    return sorted(found.items())


def _expand(spec: str, root: Path | None):
    path = Path(spec)
    if path.is_dir():
        base = root or path
        return [(base, p) for p in sorted(path.rglob("*")) if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()]
    if path.suffix.lower() == ".txt" and path.is_file():
        base = root or path.parent
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        return [(base, p if p.is_absolute() else base / p) for p in map(Path, lines)]
    if glob.has_magic(spec):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not matches:
            raise FileNotFoundError(f"--videos {spec!r} matches no file")
        fixed = Path(*[part for part in _until_magic(Path(spec).parts)]) if not root else root
        return [(fixed, p) for p in matches]
    if not path.exists():  # a typo on the command line stops the run before any work (a list's lines fail as jobs)
        raise FileNotFoundError(f"--videos {spec}: no such file or folder")
    return [(root or path.parent, path)]


def _until_magic(parts):
    for part in parts:
        if glob.has_magic(part):
            return
        yield part


def _is_under(path: Path, base: Path) -> bool:
    return path.resolve().is_relative_to(base.resolve())


def parse_shard(text: str) -> tuple[int, int]:
    """"I/N" (0 <= I < N) -> (I, N)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard wants I/N such as 0/4, got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= I < N (I counts from 0, e.g. $SLURM_ARRAY_TASK_ID)")
    return index, count


def select_shard(items: list, index: int, count: int) -> list:
    """The deterministic 1/count of the sorted `items` that shard `index` processes (every count-th item)."""
    return sorted(items)[index::count]


# -- many videos -------------------------------------------------------------------------------------------------
def check_run(out: str | Path, *, workers: int = 1, backend: str = "local", scheduler: str | None = None,
              engine: str = "opencv") -> None:  # fmt: skip
    """Check a run's own options (a one-line ValueError for the first bad one); creates nothing."""
    if workers < 1:
        raise ValueError(f"--workers {workers}: must be >= 1 (processes for the local backend)")
    _check_backend(backend, scheduler)
    module = {"numba": "numba", "torch": "torch"}.get(engine)
    if backend == "local" and module and importlib.util.find_spec(module) is None:
        raise ValueError(f"--engine {engine} needs {module}, which is not installed here: pip install {module}")
    out = Path(out)
    nearest = next(folder for folder in (out, *out.parents) if folder.exists())  # parents end with "." or "/"
    if not nearest.is_dir():
        raise ValueError(f"--out {out}: {nearest} is a file, not a folder; choose another --out")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: no permission to write in {nearest}")


def _check_backend(backend: str, scheduler: str | None) -> None:
    if backend not in ("local", "dask"):
        raise ValueError(f"--backend {backend!r}: use 'local' or 'dask'")
    if backend == "dask" and not scheduler:
        raise ValueError("--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.1:8786)")


def run_jobs(jobs: list[tuple[str, Path, Path]], opts: ExtractOptions, *, workers: int = 1, backend: str = "local",
             scheduler: str | None = None, progress: bool = True,
             on_record: Callable[[dict], None] | None = None) -> list[dict]:  # fmt: skip
    """Run extract_video over (video_id, src, dst) jobs with joblib processes or on a Dask cluster.

    Args:
        workers: processes for the local backend (1 runs in this process).
        backend: "local" (joblib) or "dask" (needs `scheduler`, the address of a running Dask scheduler whose
            workers can import `flow` and see the same paths).
        progress: one bar for the run: frames as they are written (Dask: as each video finishes), videos done.
        on_record: called with each video's record as soon as it finishes (e.g. `RunReport.add`).
    """
    _check_backend(backend, scheduler)
    bar, results = RunBar(len(jobs), enabled=progress), []
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        channel = None
        if backend == "local" and workers > 1:
            with contextlib.suppress(OSError):  # no loopback socket: frames are counted per video instead
                channel = stack.enter_context(FrameChannel(bar.add_frames))
        if backend == "dask":
            records = _run_dask(jobs, opts, scheduler)
        elif workers <= 1:
            records = (extract_video(*job, opts, on_frames=bar.add_frames) for job in jobs)
        else:
            records = _run_local(jobs, opts, workers, channel.address if channel else None)
        for record in records:
            results.append(record)
            if backend == "dask" or (workers > 1 and channel is None):
                bar.add_frames(record["frames"] if record["status"] == "done" else 0)
            bar.add_video(failed=record["status"] == "failed")
            if on_record is not None:
                on_record(record)
    return sorted(results, key=lambda r: r["video_id"])


def _run_local(jobs, opts: ExtractOptions, workers: int, progress_address):
    from joblib import Parallel, delayed

    # prctl's "parent" is the thread that starts the workers: arm it only when that is the main thread
    lifeline = (os.getpid(), threading.current_thread() is threading.main_thread())
    parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered", initializer=die_with_parent,
                        initargs=lifeline)  # fmt: skip
    cores, seen = os.cpu_count() or 1, set()
    try:
        tasks = (delayed(_extract_in_worker)(*job, opts, threads_per_video(cores, workers, len(jobs) - i),
                                             progress_address) for i, job in enumerate(jobs))  # fmt: skip
        with _numba_pool_of(cores):
            for record in parallel(tasks):
                seen.add(record["video_id"])
                yield record
    except Exception as e:  # a worker process died (a codec crash, the OOM killer): keep the report, allow resume
        error = f"worker process failed ({type(e).__name__}: {e}); rerun to resume, finished stores are kept"
        yield from (_record(*job, error=error) for job in jobs if job[0] not in seen)


@contextlib.contextmanager
def _numba_pool_of(cores: int):
    """NUMBA_NUM_THREADS=cores for the pool's workers while it runs (unless the user set it).

    joblib starts loky workers with NUMBA_NUM_THREADS (and the OpenMP/BLAS variables) = cores // workers unless the
    parent has it set; numba's pool cannot grow past it, so `threads_per_video` could never give a video more than
    cores // workers threads. Only numba's variable is raised: the others keep joblib's oversubscription guard.
    """
    if "NUMBA_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["NUMBA_NUM_THREADS"] = str(cores)
    try:
        yield
    finally:
        os.environ.pop("NUMBA_NUM_THREADS", None)


def threads_per_video(cores: int, workers: int, videos_left: int) -> int:
    """Engine threads for a video dispatched when `videos_left` videos (itself included) are still to start.

    At most min(workers, videos_left) videos run at once, so each gets that share of the cores: a run of fewer
    videos than workers, and the last videos of any run, get the cores the idle workers would leave unused (one
    video with --workers 2 on 2 cores: 2 threads, not 1). Decided at dispatch, so a video started near the end can
    overlap the tail of one started earlier: up to workers - 1 threads too many for that overlap.
    """
    return max(1, cores // max(1, min(workers, videos_left)))


def _extract_in_worker(video_id: str, src, dst, opts: ExtractOptions, threads: int, progress_address=None) -> dict:
    """extract_video in a pool process whose engine may use `threads` threads (`threads_per_video`), telling the
    parent's progress bar at `progress_address` (see `common.workers`) how many frames it has written.

    Only the numba engine takes the threads (its record says how many it got: `threads`). OpenCV's TV-L1 stays on
    one thread: its own threading gained nothing on 2 cores (docs/PERFORMANCE.md, "TV-L1 engines").
    """
    threads_used = None
    if opts.engine == "numba":  # numba's pool defaults to every core: N workers would run N x cores threads
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        threads_used = numba.get_num_threads()
    on_frames = partial(send_frames, progress_address) if progress_address else None
    record = extract_video(video_id, src, dst, opts, on_frames=on_frames)
    if threads_used is not None:
        record["threads"] = threads_used
    return record


def _run_dask(jobs, opts: ExtractOptions, scheduler: str):
    """Dask workers belong to their nanny, not to this process: see `common.workers` for what a killed client leaves."""
    try:
        from distributed import Client, as_completed
    except ImportError as e:
        raise ImportError("the dask backend needs dask.distributed: pip install 'dask[distributed]'") from e
    with Client(scheduler) as client:
        futures = {client.submit(extract_video, *job, opts, pure=False): job for job in jobs}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as e:  # a worker died (killed for memory, crashed in a codec): report, go on
                yield _record(*futures[future], error=f"dask worker failed: {type(e).__name__}: {e}")


def extract_all(specs: list[str], out: str | Path, opts: ExtractOptions, *, root=None, shard=None, workers=1,
                backend="local", scheduler=None, progress=True) -> tuple[list[dict], dict]:  # fmt: skip
    """Check the options, find the videos, keep this shard's, extract them into OUT, and keep OUT/report.json and
    OUT/index.csv up to date as each video finishes (`flow.report.RunReport`: merged with an earlier run's).

    With `shard=(I, N)` the report and index are named report-shardIofN.json / index-shardIofN.csv so that array
    jobs do not overwrite each other; a final unsharded run (everything skipped) writes the complete index.
    Raises ValueError (a bad option) or FileNotFoundError (no videos) before any video is touched.
    """
    check_run(out, workers=workers, backend=backend, scheduler=scheduler, engine=opts.engine)
    videos = find_run_videos(specs, root, opts.overwrite)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    if shard:
        videos = select_shard(videos, *shard)
    jobs = [(video_id, src, out / f"{video_id}.h5") for video_id, src in videos]
    report = RunReport(out, opts, suffix=f"-shard{shard[0]}of{shard[1]}" if shard else "")
    try:
        records = run_jobs(jobs, opts, workers=workers, backend=backend, scheduler=scheduler, progress=progress,
                           on_record=report.add)  # fmt: skip
    except BaseException:  # Ctrl-C: record what finished (a SIGKILL leaves the last write made by report.add)
        report.write(complete=False)
        raise
    return records, report.write(complete=True)
