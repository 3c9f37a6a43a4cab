"""Two "nodes" on this machine (issue 17): two torchrun agents, `--nnodes 2` with a c10d rendezvous on 127.0.0.1, one
gloo process each, train the flow I3D of configs/test_tiny.yaml. Node 1 (agent and trainer: its process group) is
SIGKILLed during the second epoch, as when a machine is lost: node 0 stops too, within a bound, with an error (no
hang, no restart: `--max-restarts 0`), and the same two-node launch with `--resume` ends with the weights of an
uninterrupted two-node run, bit for bit.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from i3d.checkpoint import load_checkpoint
from tests.helpers import descendants, free_port, write_motion_stores

REPO = Path(__file__).resolve().parents[2]


def _launch(root: Path, run: Path, rdzv_id: str, *extra: str) -> list[subprocess.Popen]:
    """Two torchrun agents (nodes), each in its own process group, logging to run.parent/<run>-node<r>.log."""
    port = free_port()
    train = (["--resume", str(run)] if extra == ("--resume",) else
             ["--config", str(REPO / "configs" / "test_tiny.yaml"), "--out", str(run), "--streams", "flow",
              "--set", f"data.index={root / 'index.csv'}", "--set", f"data.store_root={root / 'h5'}",
              "--set", "train.epochs=4", "--set", "train.batch_size=2"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    nodes = []
    for rank in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--node-rank", str(rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
               "--rdzv-id", rdzv_id, "--max-restarts", "0", "--monitor-interval", "0.5",
               str(REPO / "tools" / "train_two_stream.py"), *train]
        log = open(run.parent / f"{run.name}-node{rank}.log", "a")
        nodes.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        log.close()
        time.sleep(0.5 if rank == 0 else 0)  # node 0 first: it hosts the rendezvous store
    return nodes


def _wait(nodes: list[subprocess.Popen], timeout: float) -> list[int | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(n.poll() is None for n in nodes):
        time.sleep(0.2)
    return [n.poll() for n in nodes]


def _kill_node(node: subprocess.Popen) -> None:
    """SIGKILL an agent and every process below it: torchrun starts its trainers in sessions of their own, so the
    agent's process group alone would leave the trainer running (it did, in the first version of this test)."""
    for pid in [node.pid, *descendants(node.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.wait(timeout=30)


def _kill_all(nodes: list[subprocess.Popen]) -> None:
    for n in nodes:
        _kill_node(n)


def _log(run: Path) -> str:
    return "\n".join((run.parent / f"{run.name}-node{r}.log").read_text()[-2000:] for r in range(2))


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def test_two_nodes_lose_one_and_resume_exactly(tmp_path):
    write_motion_stores(tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    nodes = _launch(tmp_path, whole, "whole")
    try:
        assert _wait(nodes, 300) == [0, 0], _log(whole)
        nodes = _launch(tmp_path, killed, "killed")
        deadline = time.monotonic() + 300
        while not (killed / "last.pt").exists() and time.monotonic() < deadline:  # epoch 1 saved: now in epoch 2
            time.sleep(0.05)
        assert (killed / "last.pt").exists(), _log(killed)
        _kill_node(nodes[1])  # node 1 lost: its agent and its trainer
        codes = _wait(nodes, 120)
        assert codes[0] not in (None, 0), f"node 0 did not stop with an error after node 1 died: {codes}"
        epochs = (load_checkpoint(killed / "last.pt")["epoch"], load_checkpoint(whole / "last.pt")["epoch"])
        assert epochs[0] < epochs[1], f"the kill came after the last epoch: {epochs}"
        nodes = _launch(tmp_path, killed, "resumed", "--resume")
        assert _wait(nodes, 300) == [0, 0], _log(killed)
    finally:
        _kill_all(nodes)
    a, b = _weights(whole / "last.pt"), _weights(killed / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list(killed.glob(".*.tmp-*"))
