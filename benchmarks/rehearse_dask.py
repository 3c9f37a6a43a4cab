"""Extraction rehearsal on a real Dask cluster: a `dask scheduler` and several `dask worker` processes on
127.0.0.1, many small generated videos, `tools/extract_flow.py --backend dask` against `--backend local` (joblib) on
the same videos, then faults: a worker SIGKILLed mid-run (and a new one started), and the scheduler SIGKILLed
mid-run (and restarted). After each: every video has exactly one complete store, report.json and index.csv list
them all, no temporary file is left, and a rerun skips everything.

    python benchmarks/rehearse_dask.py --videos 100 --json runs/rehearse_100.json     # time it first
    python benchmarks/rehearse_dask.py --videos 1000 --json runs/rehearse_1000.json   # the full rehearsal
    python benchmarks/rehearse_dask.py --small                                        # 24 videos, what the test runs

Every process it starts has its own process group and is SIGKILLed (the group) at the end, on failure too; every
wait is bounded. Only the loopback interface is used.
"""

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flow.store import VideoStore, is_complete  # noqa: E402

DASK = Path(sys.executable).with_name("dask")
HOST = "127.0.0.1"


class ClusterUnavailable(RuntimeError):
    """dask scheduler or dask worker could not be started here (not installed, no loopback, too slow)."""


# -- videos --------------------------------------------------------------------------------------------------------
def write_moving_textures(folder: Path, count: int, frames: int = 16, height: int = 48, width: int = 64) -> list[str]:
    """`count` lossless FFV1 videos of a smooth texture translating by a per-video (dx, dy); returns their ids."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pad = 3 * frames + 8
    noise = rng.random(((height + 2 * pad) // 4 + 1, (width + 2 * pad) // 4 + 1, 3)).astype(np.float32)
    texture = cv2.resize(noise, (width + 2 * pad, height + 2 * pad), interpolation=cv2.INTER_CUBIC)
    texture = np.clip((texture - texture.min()) / np.ptp(texture) * 255, 0, 255).astype(np.uint8)
    ids = []
    for i in range(count):
        dx, dy = int(rng.integers(-3, 4)), int(rng.integers(-2, 3))
        video_id = f"v{i:05d}"
        fourcc = cv2.VideoWriter_fourcc(*"FFV1")
        writer = cv2.VideoWriter(str(folder / f"{video_id}.avi"), fourcc, 25.0, (width, height))
        for t in range(frames):
            y, x = pad + t * dy, pad + t * dx
            writer.write(np.ascontiguousarray(texture[y : y + height, x : x + width]))
        writer.release()
        ids.append(video_id)
    return ids


# -- the cluster ---------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _env() -> dict:
    # workers import flow from this checkout; one thread per library so that N workers use N cores
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "NUMBA_NUM_THREADS": "1", "DASK_DISTRIBUTED__WORKER__DAEMON": "True"}


class Cluster:
    """A scheduler and `workers` single-threaded workers (each under its nanny), each in its own process group.

    Use as a context manager: leaving it SIGKILLs every group it started.
    """

    def __init__(self, workdir: Path, workers: int = 2, start_timeout: float = 60.0):
        if not DASK.exists():
            raise ClusterUnavailable(f"{DASK} not found: pip install 'dask[distributed]'")
        self.workdir, self.start_timeout = Path(workdir), start_timeout
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"tcp://{HOST}:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.processes: list[subprocess.Popen] = []
        self._count = workers

    def __enter__(self) -> "Cluster":
        try:
            self.start_scheduler()
            for _ in range(self._count):
                self.add_worker()
            self.wait_for_workers(self._count)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}-{len(self.processes)}.log", "wb")
        proc = subprocess.Popen([str(DASK), *argv], stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT,
                                start_new_session=True)
        log.close()
        self.processes.append(proc)
        return proc

    def start_scheduler(self) -> None:
        """Start (or restart, on the same port) the scheduler and wait until it accepts connections."""
        self.scheduler = self._spawn("scheduler", ["scheduler", "--host", HOST, "--port", str(self.port),
                                                   "--no-dashboard", "--idle-timeout", "3600"])
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                raise ClusterUnavailable(f"dask scheduler exited with {self.scheduler.returncode}; see {self.workdir}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.2)
        raise ClusterUnavailable(f"dask scheduler did not listen on {self.address} within {self.start_timeout} s")

    def add_worker(self) -> subprocess.Popen:
        # --death-timeout: a worker whose scheduler is gone for 5 minutes ends itself, should this script be killed
        proc = self._spawn("worker", ["worker", self.address, "--host", HOST, "--nthreads", "1", "--nworkers", "1",
                                      "--no-dashboard", "--death-timeout", "300", "--memory-limit", "0",
                                      "--local-directory", str(self.workdir / "dask-worker-space")])
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        try:
            with Client(self.address, timeout=self.start_timeout) as client:
                client.wait_for_workers(count, timeout=self.start_timeout)
        except (OSError, TimeoutError) as e:
            raise ClusterUnavailable(f"{count} dask workers did not join {self.address}: {e}") from e

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL a process's whole group (a worker's nanny and its worker process) and reap it."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        if proc in self.workers:
            self.workers.remove(proc)

    def close(self) -> None:
        for proc in self.processes:
            self.kill(proc)


# -- runs and checks -----------------------------------------------------------------------------------------------
# TV-L1 cut to one scale, one warp and a few iterations (same for every backend): what the rehearsal measures is
# the per-video cost around the engine, which the full algorithm's ~1 s per video would hide; --full-tvl1 empties it
CHEAP_TVL1 = ["--nscales", "1", "--warps", "1", "--inner-iterations", "5", "--outer-iterations", "2"]


def tool_command(videos: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "extract_flow.py"), "--videos", str(videos), "--out", str(out),
            "--short-side", "0", "--no-progress", *CHEAP_TVL1, *extra]


def start_tool(videos: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(tool_command(videos, out, *extra), cwd=ROOT, env=_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_tool(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait for the tool (bounded); on timeout SIGKILL its group and raise."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise TimeoutError(f"extract_flow.py did not finish within {timeout} s:\n{output[-3000:]}") from None
    return proc.returncode, output


def run_extract_flow(videos: Path, out: Path, *extra: str, timeout: float = 600.0) -> dict:
    start = time.perf_counter()
    rc, output = finish_tool(start_tool(videos, out, *extra), timeout)
    wall = time.perf_counter() - start
    summary = json.loads((out / "report.json").read_text())["summary"] if (out / "report.json").exists() else {}
    return {"rc": rc, "wall": wall, "summary": summary, "output": output[-2000:]}


def wait_for_stores(out: Path, count: int, timeout: float) -> int:
    """Wait until `count` finished stores exist in `out` (bounded); returns how many there are."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = len(list(out.glob("*.h5")))
        if done >= count:
            return done
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {count} stores in {out} after {timeout} s")


def run_folder_problems(out: Path, ids: list[str], frames: int) -> list[str]:
    """What is wrong with a finished run's folder (empty: nothing): one complete store per video with every frame,
    report.json and index.csv listing each video once as done or skipped, no other file (no temporary file)."""
    problems = []
    expected = {f"{i}.h5" for i in ids} | {"report.json", "index.csv"}
    names = {p.name for p in out.iterdir()}
    problems += [f"unexpected file {n}" for n in sorted(names - expected)]
    problems += [f"missing {n}" for n in sorted(expected - names)]
    for i in ids:
        path = out / f"{i}.h5"
        if path.exists() and not is_complete(path):
            problems.append(f"{path} is not complete")
        elif path.exists():
            with VideoStore(path) as store:
                if store.num_frames != frames:
                    problems.append(f"{path} has {store.num_frames} frames, not {frames}")
    if "report.json" in names:
        videos = json.loads((out / "report.json").read_text())["videos"]
        listed = [r["video_id"] for r in videos]
        bad = [r["video_id"] for r in videos if r["status"] not in ("done", "skipped")]
        if sorted(listed) != sorted(ids):
            problems.append(f"report.json lists {len(listed)} videos ({len(set(listed))} distinct), not {len(ids)}")
        if bad:
            problems.append(f"report.json: {len(bad)} videos not done/skipped, e.g. {bad[:3]}")
    if "index.csv" in names:
        with open(out / "index.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        if sorted(r["video_id"] for r in rows) != sorted(ids):
            problems.append(f"index.csv has {len(rows)} rows, not one per video ({len(ids)})")
        if any(int(r["frames"]) != frames for r in rows):
            problems.append("index.csv: a frame count differs from the store's")
    return problems


def check_rerun(videos: Path, out: Path, ids: list[str], frames: int, extra: tuple, timeout: float) -> dict:
    """Check the folder, rerun the tool on it: everything must be skipped, and the folder still check out."""
    problems = run_folder_problems(out, ids, frames)
    rerun = run_extract_flow(videos, out, *extra, timeout=timeout)
    s = rerun["summary"]
    if rerun["rc"] != 0 or s.get("skipped") != len(ids) or s.get("done") or s.get("failed"):
        problems.append(f"rerun: rc {rerun['rc']}, summary {s}")
    problems += [f"after rerun: {p}" for p in run_folder_problems(out, ids, frames)]
    return {"rerun_wall": rerun["wall"], "problems": problems}


# -- the rehearsal -------------------------------------------------------------------------------------------------
def throughput(work: Path, cluster: Cluster, videos: Path, count: int, slots: int, timeout: float) -> dict:
    """The same videos with the local joblib backend (`slots` processes) and on the cluster (`slots` workers).

    Overhead per video: the wall time the run's `slots` processes had, less the seconds spent inside extract_store
    (as each record says), per video: tool start-up, worker start-up (joblib), scheduling and result transfer."""
    rows = {}
    for name, extra in (("local", ("--workers", str(slots))), ("dask", ("--backend", "dask", "--scheduler",
                                                                         cluster.address))):
        out = work / f"out_{name}"
        result = run_extract_flow(videos, out, *extra, timeout=timeout)
        assert result["rc"] == 0, result["output"]
        inside = sum(r["seconds"] for r in json.loads((out / "report.json").read_text())["videos"])
        skip = run_extract_flow(videos, out, *extra, timeout=timeout)  # start-up + checking finished stores only
        rows[name] = {"wall_s": round(result["wall"], 2), "videos_per_s": round(count / result["wall"], 2),
                      "in_extract_store_s_per_video": round(inside / count, 4),
                      "overhead_s_per_video": round((result["wall"] * slots - inside) / count, 4),
                      "rerun_all_skipped_wall_s": round(skip["wall"], 2)}
    return rows


def worker_kill(work: Path, cluster: Cluster, videos: Path, ids, frames: int, timeout: float) -> dict:
    """SIGKILL one worker (nanny and worker) once a quarter of the stores exist, start a new one, let the run end."""
    out = work / "out_worker_kill"
    extra = ("--backend", "dask", "--scheduler", cluster.address)
    proc = start_tool(videos, out, *extra)
    try:
        at_kill = wait_for_stores(out, max(1, len(ids) // 4), timeout)
        temps = len(list(out.glob(".*.tmp-*")))
        cluster.kill(cluster.workers[0])
        cluster.add_worker()
        rc, output = finish_tool(proc, timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result = {"stores_at_kill": at_kill, "temp_files_at_kill": temps, "rc": rc}
    result.update(check_rerun(videos, out, ids, frames, extra, timeout))
    if rc != 0:
        result["problems"].insert(0, f"run with the killed worker: rc {rc}: {output[-1500:]}")
    return result


def scheduler_kill(work: Path, cluster: Cluster, videos: Path, ids, frames: int, timeout: float) -> dict:
    """SIGKILL the scheduler once a quarter of the stores exist; the run must end (failed, not hang); restart the
    scheduler on the same port, wait for the workers to rejoin, rerun: it resumes and finishes the rest."""
    out = work / "out_scheduler_kill"
    extra = ("--backend", "dask", "--scheduler", cluster.address)
    proc = start_tool(videos, out, *extra)
    try:
        at_kill = wait_for_stores(out, max(1, len(ids) // 4), timeout)
        cluster.kill(cluster.scheduler)
        killed = time.perf_counter()
        rc, output = finish_tool(proc, timeout)
        ended_after = time.perf_counter() - killed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # distributed 2026.8: a worker and its nanny end when the scheduler's connection breaks ("worker-handle-
    # scheduler-connection-broken"), so a restarted scheduler needs new workers (a supervisor's job on a cluster)
    deadline = time.monotonic() + 30
    while any(w.poll() is None for w in cluster.workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = sum(w.poll() is None for w in cluster.workers)
    cluster.start_scheduler()
    for dead in [w for w in cluster.workers if w.poll() is not None]:
        cluster.kill(dead)
        cluster.add_worker()
    cluster.wait_for_workers(len(cluster.workers))
    before = len(list(out.glob("*.h5")))
    resume = run_extract_flow(videos, out, *extra, timeout=timeout)
    s = resume["summary"]
    result = {"stores_at_kill": at_kill, "rc_killed_run": rc, "killed_run_ended_after_s": round(ended_after, 1),
              "workers_alive_30s_after_kill": survivors,
              "stores_before_resume": before, "resume": {k: s.get(k) for k in ("done", "skipped", "failed")},
              "rc_resume": resume["rc"]}
    result.update(check_rerun(videos, out, ids, frames, extra, timeout))
    if resume["rc"] != 0 or s.get("done", 0) + s.get("skipped", 0) != len(ids):
        result["problems"].insert(0, f"resume: rc {resume['rc']}, summary {s}: {resume['output'][-1500:]}")
    if rc == 0:
        result["problems"].insert(0, f"the run whose scheduler was killed exited 0: {output[-1500:]}")
    return result


def rehearse(work: Path, count: int, workers: int = 2, frames: int = 16, size=(48, 64), timeout: float = 600.0,
             measure: bool = True) -> dict:
    """Generate the videos, start the cluster, run the throughput comparison and both faults; returns the numbers
    and a list of problems per fault (empty lists: the rehearsal passed)."""
    videos = work / "videos"
    start = time.perf_counter()
    ids = write_moving_textures(videos, count, frames, *size)
    result = {"videos": count, "frames": frames, "size": list(size), "workers": workers, "tvl1_args": CHEAP_TVL1,
              "generate_s": round(time.perf_counter() - start, 2), "load_before": os.getloadavg()}
    with Cluster(work / "cluster", workers) as cluster:
        if measure:
            result["throughput"] = throughput(work, cluster, videos, count, workers, timeout)
        result["worker_kill"] = worker_kill(work, cluster, videos, ids, frames, timeout)
        result["scheduler_kill"] = scheduler_kill(work, cluster, videos, ids, frames, timeout)
    result["load_after"] = os.getloadavg()
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=1000)
    p.add_argument("--small", action="store_true", help="24 videos (what tests/tools/test_dask_cluster.py runs)")
    p.add_argument("--workers", type=int, default=2, help="dask workers (1 thread each) = local joblib processes")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, nargs=2, default=(48, 64), metavar=("H", "W"))
    p.add_argument("--full-tvl1", action="store_true", help="OpenCV's default TV-L1 parameters (~1 s per video)")
    p.add_argument("--work", type=Path, help="keep everything here (default: a temporary folder, removed)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    count = 24 if args.small else args.videos
    if args.full_tvl1:
        CHEAP_TVL1.clear()
    work = args.work or Path(tempfile.mkdtemp(prefix="rehearse_dask_"))
    try:
        result = rehearse(work, count, args.workers, args.frames, tuple(args.size))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 1 if result["worker_kill"]["problems"] or result["scheduler_kill"]["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
