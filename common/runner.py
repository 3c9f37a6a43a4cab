"""The batch runner of every per-video job (flow extraction, face cropping, feature extraction).

A job is a `Job`: a function that does one video, plus what the runner needs to know about its outputs. The
runner gives each video to that function in this process, in local worker processes or on a Dask cluster, and
after each video rewrites the run's record (`common.record`). The same rules hold for every job:

- A bad video is a "failed" record (`FAILED path: reason` once, by the tool) and the run goes on.
- Workers die with the run (`common.workers`): after a kill -9 nothing more is computed or written, and each video
  in flight leaves at most temporaries, which the rerun removes before it redoes the video.
- Ctrl-C (SIGINT) reaches only this process: it stops the workers, removes the temporaries of the videos in flight,
  writes the record and raises `RunInterrupted` (the tools exit 130 with one line).
- A full disk or quota (ENOSPC, EDQUOT) anywhere stops the run at once with one `DiskFullError` line instead of
  failing every remaining video; the record keeps what finished, and the rerun continues from there.
- A worker process that dies (the OOM killer, a codec crash) fails the videos it and its siblings had in flight;
  a fresh pool does the rest.

    job = Job("flow", work=partial(extract_store, opts=opts), options=opts, ...)
    records, summary = run_job(job, [tasks], out, workers=8)        # tasks: (video_id, source, ...) tuples
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from common.cli import is_known_error, one_line
from common.files import is_disk_full, remove_temps
from common.progress import RunProgress
from common.record import RunRecord
from common.videos import shard_suffix
from common.workers import FrameChannel, init_worker, send_frames

BACKENDS = ("local", "dask")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class DiskFullError(OSError):
    """The disk or quota of an output filled up: the run stopped; the message says what finished and what to do."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run after it cleaned up; the message says what finished."""


@dataclass(frozen=True)
class Job:
    """What a per-video job gives the runner.

    Attributes:
        name: "flow", "faces", "features": progress lines and messages.
        work: `work(video_id, source, *rest, threads=, on_frames=) -> record` for one task `(video_id, source,
            *rest)`. A module-level function or a `functools.partial` of one (it is pickled to workers). It raises
            for a bad video (the runner records the failure) and writes its outputs atomically
            (`common.files`). `threads`: how many threads its engine may use (0: leave the defaults);
            `on_frames(n)`: n more frames done (progress).
        options: the job's options (a dataclass), recorded in report.json.
        finished_file: the output under OUT whose presence says a video is finished.
        outputs: name globs under OUT of every file a video writes (their temporaries are removed when a video
            in flight is discarded); the video id in them glob-escaped.
        index_columns, index_row: index.csv's header and a record's row (None: not listed).
        summarize: the job's own summary fields over this run's records.
    """

    name: str
    work: Callable[..., dict]
    options: object
    finished_file: Callable[[str], str]
    outputs: Callable[[str], list[str]]
    index_columns: tuple[str, ...]
    index_row: Callable[[dict], dict | None]
    summarize: Callable[[list[dict]], dict] | None = None


def check_backend(backend: str, scheduler: str | None, workers: int = 1) -> None:
    """A one-line ValueError for a bad --backend/--scheduler/--workers, before any work."""
    if workers < 1:
        raise ValueError(f"--workers {workers}: must be >= 1 (processes for the local backend)")
    if backend not in BACKENDS:
        raise ValueError(f"--backend {backend!r}: use 'local' or 'dask'")
    if backend == "dask" and not scheduler:
        raise ValueError("--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.1:8786)")
    if backend == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError("--backend dask needs dask.distributed: pip install 'dask[distributed]'") from None


def check_out(out: str | Path) -> Path:
    """Create the output folder, or say in one line why it cannot be (a file in the way, no permission)."""
    out = Path(out)
    nearest = next(folder for folder in (out, *out.parents) if folder.exists())  # parents end with "." or "/"
    if not nearest.is_dir():
        raise ValueError(f"--out {out}: {nearest} is a file, not a folder; choose another --out")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: no permission to write in {nearest}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    return out


def run_job(job: Job, phases: list[list[tuple]], out: str | Path, *, workers: int = 1, backend: str = "local",
            scheduler: str | None = None, shard: tuple[int, int] | None = None,
            progress: bool = True) -> tuple[list[dict], dict]:
    """Run `job` over its tasks and keep OUT's record; returns (this run's records by video_id, the summary).

    Args:
        phases: lists of tasks run one after the other (faces: real videos before the fakes that reuse their
            boxes); each task is `(video_id, source, *rest)`.
        workers: processes for the local backend (1: this process).
        backend: "local" or "dask" (needs `scheduler`, a running scheduler whose workers import the project and
            see the same paths).
        shard: (I, N) of an array job: the record files are report-shardIofN.json / index-shardIofN.csv.
        progress: a bar on a terminal, lines in a log (`common.progress`).

    Raises:
        DiskFullError: the disk filled up (the record keeps what finished).
        RunInterrupted: Ctrl-C (the record keeps what finished; the videos in flight were discarded).
    """
    check_backend(backend, scheduler, workers)
    out = Path(out)
    record = RunRecord(out, job.options, finished_file=job.finished_file, index_columns=job.index_columns,
                       index_row=job.index_row, summarize=job.summarize, suffix=shard_suffix(shard))
    total = sum(len(tasks) for tasks in phases)
    bar = RunProgress(job.name, total, enabled=progress)
    results: list[dict] = []
    in_flight: dict[str, tuple] = {}  # video_id -> task of the videos being worked on, kept by the backends
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(bar.close)
            for tasks in phases:
                records = _records(job.work, tasks, bar, in_flight, stack, workers, backend, scheduler)
                for result in stack.enter_context(contextlib.closing(records)):
                    if result.get("disk_full"):
                        in_flight[result["video_id"]] = ()  # its temporaries go with the others in flight
                        raise DiskFullError(out / job.finished_file(result["video_id"]))
                    results.append(result)
                    record.add(result)
                    bar.add_video(failed=result["status"] == "failed")
    except KeyboardInterrupt:
        _discard(job, out, in_flight)
        record.write(complete=False)
        raise RunInterrupted(f"{_tally(results, total)}; the videos in flight were discarded; the record is in "
                             f"{record.report_path}; rerun the same command to continue") from None
    except Exception as e:
        if not (isinstance(e, DiskFullError) or is_disk_full(e)):
            raise
        where = e.args[0] if isinstance(e, DiskFullError) else getattr(e, "filename", None) or record.report_path
        _discard(job, out, in_flight)
        with contextlib.suppress(OSError):  # the record may not fit either: then the last one written stays
            record.write(complete=False)
        raise DiskFullError(f"disk full (or over quota) writing {where}: {_tally(results, total)}; free space in "
                            f"{out} and rerun the same command") from None
    return sorted(results, key=lambda r: r["video_id"]), record.write(complete=True)


def _tally(results: list[dict], total: int) -> str:
    failed = sum(r["status"] == "failed" for r in results)
    return (f"{len(results) - failed} videos done, {failed} failed, {total - len(results)} left" if failed
            else f"{len(results)} videos done, {total - len(results)} left")


def _discard(job: Job, out: Path, in_flight: dict[str, tuple]) -> None:
    """Remove the temporaries of the videos that were in flight (their workers are gone by now)."""
    for video_id in in_flight:
        for pattern in job.outputs(video_id):
            path = out / pattern
            remove_temps(path.parent, path.name)
    in_flight.clear()


def _records(work, tasks: list[tuple], bar: RunProgress, in_flight: dict, stack: contextlib.ExitStack, workers: int,
             backend: str, scheduler: str | None) -> Iterator[dict]:
    if backend == "dask":
        return _run_dask(work, tasks, scheduler, bar)
    if workers <= 1:
        return _run_here(work, tasks, bar, in_flight)
    channel = None
    with contextlib.suppress(OSError):  # no loopback socket: frames are counted per video instead
        channel = stack.enter_context(FrameChannel(bar.add_frames))
    return _run_local(work, tasks, workers, channel.address if channel else None, bar, in_flight)


# -- one video ---------------------------------------------------------------------------------------------------
def attempt(work: Callable[..., dict], task: tuple, threads: int = 0,
            on_frames: Callable[[int], None] | None = None) -> dict:
    """`work` on one task; an exception becomes a failed record (with `disk_full` set when that was the cause)."""
    start = time.perf_counter()
    try:
        result = work(*task, threads=threads, on_frames=on_frames or _no_progress)
    except Exception as e:  # a bad video must not stop the run; its error is recorded with its path
        result = failed_record(task, describe(e))
        if is_disk_full(e):
            result["disk_full"] = True
    result.setdefault("seconds", time.perf_counter() - start)
    return result


def _no_progress(frames: int) -> None:
    pass


def frames_done(result: dict) -> int:
    return (result.get("frames") or 0) if result["status"] == "done" else 0


def _attempt_in_worker(work, task: tuple, threads: int, progress_address) -> dict:
    on_frames = partial(send_frames, progress_address) if progress_address else None
    return attempt(work, task, threads, on_frames)


def failed_record(task: tuple, error: str) -> dict:
    """The record of a video that failed: the fields every record has."""
    return {"video_id": task[0], "source": str(task[1]), "status": "failed", "frames": 0, "warnings": [],
            "error": error}


def describe(e: BaseException) -> str:
    """One line for a failed video: the project's own errors and file errors by their message (which names the
    file), anything else with its type."""
    return one_line(e) if is_known_error(e) else f"{type(e).__name__}: {one_line(e)}"


def threads_per_video(cores: int, workers: int, videos_left: int) -> int:
    """Engine threads for a video dispatched when `videos_left` videos are still to start, itself and those
    dispatched at the same moment included.

    At most min(workers, videos_left) videos run at once, so each gets that share of the cores: a run of fewer
    videos than workers, and the last videos of any run, get the cores the idle workers would leave unused (one
    video with --workers 2 on 2 cores: 2 threads, not 1), while videos dispatched together share them (two videos
    on two workers: one thread each). A video started near the end can overlap the tail of one started earlier:
    up to workers - 1 threads too many for that overlap, against an idle core for the rest of the run.
    """
    return max(1, cores // max(1, min(workers, videos_left)))


# -- backends ----------------------------------------------------------------------------------------------------
def _run_here(work, tasks: list[tuple], bar: RunProgress, in_flight: dict) -> Iterator[dict]:
    """In this process, one video at a time, with every core for its engine."""
    cores = os.cpu_count() or 1
    for task in tasks:
        in_flight[task[0]] = task
        result = attempt(work, task, cores, bar.add_frames)
        del in_flight[task[0]]
        yield result


def _run_local(work, tasks: list[tuple], workers: int, progress_address, bar: RunProgress,
               in_flight: dict) -> Iterator[dict]:
    """In `workers` loky processes, a video each at a time. Closing this generator (an error, Ctrl-C) kills them."""
    cores, queue = os.cpu_count() or 1, deque(tasks)
    pool, pending, finished = _pool(workers, cores), {}, False
    try:
        while queue or pending:
            started = 0  # videos dispatched together share the cores; one started as others end takes theirs
            while queue and len(pending) < workers:
                task = queue.popleft()
                threads = threads_per_video(cores, workers, started + len(queue) + 1)
                started += 1
                in_flight[task[0]] = task  # first: a Ctrl-C may come as submit returns
                pending[_submit(pool, _attempt_in_worker, work, task, threads, progress_address)] = task
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                task = pending.pop(future)
                try:
                    result = future.result()
                except Exception as e:  # the process died (the OOM killer, a codec crash): the rest go on
                    broken = True
                    result = failed_record(task, f"a worker process died while this video was in flight "
                                           f"({describe(e)}); rerun to retry it")
                del in_flight[task[0]]
                if progress_address is None:  # no frame counts from the workers: count the video's at its end
                    bar.add_frames(frames_done(result))
                yield result
            if broken:  # loky's pool is unusable once a worker died; its other videos fail with it
                _shutdown(pool, kill=True)
                pool = _pool(workers, cores)
        finished = True
    finally:
        # Stopped early (Ctrl-C, an error): kill the workers, even with nothing pending. A Ctrl-C raised as the
        # first submit returns leaves `pending` empty while its workers are still starting; let go gently, they
        # would outlive this run's semaphores and print a traceback each.
        _shutdown(pool, kill=not finished)


def _shutdown(pool, kill: bool) -> None:
    """Stop the pool (kill: its workers at once). A kill races in loky (joblib 1.6): after it, the manager thread may
    look up a work item it has just dropped and die on a KeyError, whose traceback the run's one line does without."""
    previous = threading.excepthook
    threading.excepthook = lambda args: (None if kill and getattr(args.thread, "name", "") == "ExecutorManagerThread"
                                         else previous(args))
    try:
        pool.shutdown(wait=True, kill_workers=kill)
    finally:
        threading.excepthook = previous


def _submit(pool, *args):
    return _sigint_blocked(pool.submit, *args)


def _sigint_blocked(call, *args, **kwargs):
    """`call` with Ctrl-C held back. loky spawns workers on submit; they inherit this mask, so one still importing
    ignores Ctrl-C until `init_worker` does. Another thread (the progress channel's) may take the SIGINT, and Python
    would raise it here anyway: the handler only notes it, or a half-spawned worker would be left that no pool knows."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return call(*args, **kwargs)
    caught = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return call(*args, **kwargs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # a SIGINT this thread held back is handled here
        signal.signal(signal.SIGINT, handler or signal.default_int_handler)
        if caught:
            raise KeyboardInterrupt


def _pool(workers: int, cores: int):
    from multiprocessing import resource_tracker as mp_tracker

    from joblib.externals.loky import ProcessPoolExecutor
    from joblib.externals.loky.backend import resource_tracker as loky_tracker

    # Started first, unblocked: starting them would unblock SIGINT in this thread (the standard library's does) just
    # before the first worker is spawned; they ignore SIGINT themselves.
    mp_tracker.ensure_running()
    loky_tracker.ensure_running()

    # prctl's "parent" is the thread that starts the workers: arm it only when that is the main thread
    lifeline = (os.getpid(), threading.current_thread() is threading.main_thread())
    share = str(max(1, cores // workers))  # BLAS/OpenMP pools of N workers must not each take every core
    env = {name: os.environ.get(name, share) for name in THREAD_VARIABLES}
    return _sigint_blocked(ProcessPoolExecutor, max_workers=workers, initializer=init_worker, initargs=lifeline,
                           env=env)


def _run_dask(work, tasks: list[tuple], scheduler: str, bar: RunProgress) -> Iterator[dict]:
    """On a Dask cluster. Its workers belong to their nannies, not to this process (see `common.workers`); a worker
    that dies has its videos rescheduled by the scheduler; frames are counted as each video finishes."""
    from distributed import Client, as_completed

    with Client(scheduler) as client:
        futures = {client.submit(attempt, work, task, pure=False): task for task in tasks}
        finished = set()
        try:
            for future in as_completed(futures):
                finished.add(future)
                try:
                    result = future.result()
                except Exception as e:  # the scheduler gave up on it (it killed worker after worker)
                    result = failed_record(futures[future], f"dask worker failed: {describe(e)}")
                bar.add_frames(frames_done(result))
                yield result
        finally:  # queued videos are dropped; running ones finish whole (outputs are atomic) or leave temporaries
            client.cancel([f for f in futures if f not in finished])


# -- the tools' side ---------------------------------------------------------------------------------------------
def add_run_arguments(p, what: str = "outputs", videos_required: bool = True) -> None:
    """The options every per-video tool shares: which videos, where to, how many processes or which cluster, shard,
    redo, progress."""
    p.add_argument("--videos", nargs="+", required=videos_required, help="video files, folders, globs or .txt lists")
    p.add_argument("--out", type=Path, required=True, help=f"output folder for the {what}, report.json, index.csv")
    p.add_argument("--root", help="video ids are paths relative to this folder (default: the folder given)")
    p.add_argument("--workers", type=int, default=1, help="processes (local backend; 1: this process)")
    p.add_argument("--backend", choices=BACKENDS, default="local", help="local processes, or a Dask cluster")
    p.add_argument("--scheduler", help="Dask scheduler address for --backend dask (e.g. tcp://HOST:8786)")
    p.add_argument("--shard", help="I/N: process the I-th (from 0) of N parts of the sorted list")
    p.add_argument("--overwrite", nargs="*", metavar="VIDEO_ID", help="redo finished videos: all, or these ids")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")


def overwrite_option(values: list[str] | None) -> bool | tuple[str, ...]:
    """--overwrite as the jobs' options take it: absent -> False, bare -> True (every video), ids -> those."""
    return tuple(values) if values else values == []


def print_outcome(records: list[dict], statuses: tuple[str, ...] = ("failed",)) -> None:
    """Each failed video once, `FAILED path: reason`, and each warning, `WARNING path: ...`, on stderr."""
    for r in records:
        if r["status"] in statuses:
            reason = (r["error"] or "; ".join(r["warnings"])).removeprefix(f"{r['source']}: ")  # errors name the file
            print(f"{r['status'].upper()} {r['source']}: {reason}", file=sys.stderr)
        elif r.get("warnings"):
            print(f"WARNING {r['source']}: {'; '.join(r['warnings'])}", file=sys.stderr)
