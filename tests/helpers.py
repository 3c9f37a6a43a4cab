"""Functions the tests share: synthetic frames and stores, running tools in this process, processes and ports.

Imported as a module (`from tests.helpers import ...`; pytest.ini puts the repository on the path); fixtures stay in
tests/conftest.py.
"""

import fcntl
import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
# CI and developers have ../shared beside the checkout; I3D_SHARED_DIR points elsewhere when it is not.
SHARED = Path(os.environ.get("I3D_SHARED_DIR", REPO.parent / "shared"))


def textured_frames(num_frames: int, height: int, width: int, dx: float, dy: float, seed: int = 0) -> np.ndarray:
    """A smooth random texture translating by (dx, dy) pixels per frame. Returns (N, H, W, 3) uint8 RGB.

    Frames are cut from one large texture, so the motion is exact wherever (dx, dy) are integers.
    """
    rng = np.random.default_rng(seed)
    pad = int(np.ceil(max(abs(dx), abs(dy)) * num_frames)) + 8
    big_h, big_w = height + 2 * pad, width + 2 * pad
    noise = rng.random((big_h // 4 + 1, big_w // 4 + 1, 3)).astype(np.float32)
    texture = cv2.resize(noise, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(texture, (0, 0), 1.0)
    texture = np.clip((texture - texture.min()) / (np.ptp(texture) + 1e-6) * 255, 0, 255).astype(np.uint8)
    frames = []
    for t in range(num_frames):
        # inverse map: frame t at (x, y) samples the texture at (x + pad - t*dx, y + pad - t*dy), so content moves by +d
        m = np.float32([[1, 0, pad - t * dx], [0, 1, pad - t * dy]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = cv2.warpAffine(texture, m, (big_w, big_h), flags=flags, borderMode=cv2.BORDER_REFLECT)
        frames.append(warped[:height, :width])
    return np.stack(frames)


def decode_video(path: str | Path) -> np.ndarray:
    """Every frame of a video at its native size and rate, (N, H, W, 3) uint8 RGB."""
    from flow.video import read_video

    return read_video(path, fps=None, short_side=None)[0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images or stacks, in dB (identical inputs give 120 dB, not infinity)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def write_motion_stores(root: Path, names=("right", "left"), counts=(("train", 4), ("val", 1)), rgb_high: int = 255,
                        brightness_step: int = 0, **store_options) -> Path:
    """Tiny stores (10 frames, 36x40) told apart by their flow: +4 px in x for the first class, -4 for the second,
    under ROOT/h5/<name>/<split><k>.h5, and ROOT/index.csv (video_id,label,split). Random RGB in [0, rgb_high), plus
    `brightness_step` x the label (a class that RGB can see too). Returns ROOT."""
    from flow.store_writer import write_store

    rows = ["video_id,label,split"]
    for label, name in enumerate(names):
        for split, count in counts:
            for k in range(count):
                rng = np.random.default_rng((label, k, split == "val"))
                rgb = rng.integers(0, rgb_high, (10, 36, 40, 3), dtype=np.uint8) + np.uint8(brightness_step * label)
                flow = np.zeros((10, 36, 40, 2), np.float32)
                flow[..., 0] = 4.0 if label == 0 else -4.0
                write_store(root / "h5" / name / f"{split}{k}.h5", rgb, flow, {}, **store_options)
                rows.append(f"{name}/{split}{k},{name},{split}")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root


def load_script(path: str | Path):
    """A script (tools/<name>.py, benchmarks/<name>.py: not a package) as a module, imported in this process (no second
    torch start-up). `path`: relative to the repository, or absolute."""
    path = REPO / path
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call_tool(name: str | Path, *argv) -> int:
    """A tool's `main(parse_args(argv))` in this process (no second torch start-up); errors propagate.

    `name`: tools/<name>.py, or a script's path; `argv` items may be paths or numbers."""
    tool = load_script(name if isinstance(name, Path) else f"tools/{name}.py")
    return tool.main(tool.parse_args([str(a) for a in argv]))


def run_torchrun(script: Path, nproc: int = 2) -> None:
    """Run `script` under torch.distributed.run on this machine (gloo on CPU); fail with its output if it fails."""
    # the workers import test modules, which import this one: the repository goes on their path
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a rendezvous or a process group)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Processes below `pid`, from /proc/*/stat (field 4 is the parent's PID): what a killed run may leave behind."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, todo = set(), [pid]
    while todo:
        pid = todo.pop()
        children = {child for child, parent in parents.items() if parent == pid}
        todo += children - found
        found |= children
    return found


def compile_numba_tvl1() -> None:
    """Compile every kernel of the numba TV-L1 engine (serial, parallel over pairs, over rows) once, into numba's
    on-disk cache, under a lock that every test process of this checkout shares: the first one compiles (tens of
    CPU-seconds), the others wait and then load the cache, and so do the tools that tests start as subprocesses.
    Does nothing without numba (the tests that need it skip)."""
    if importlib.util.find_spec("numba") is None:
        return
    from flow.engines.numba_tvl1 import NumbaTVL1

    tag = hashlib.sha1(str(REPO).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"numba-tvl1-{tag}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        gray = textured_frames(3, 32, 40, dx=1.0, dy=0.5)[..., 1]
        NumbaTVL1().calc_pairs(gray[:1], gray[1:2])  # one pair: the serial kernel (also a worker on one thread's)
        NumbaTVL1().calc_pairs(gray[:2], gray[1:])  # several pairs on several threads: the parallel one
        NumbaTVL1(parallel="rows").calc_pairs(gray[:1], gray[1:2])
