"""i3d.checkpoint after faults: temporary files of killed saves, and a cut-short last.pt beside a whole best.pt."""

import os
import re
import subprocess
import sys

import pytest
import torch

from i3d import checkpoint as ckpt_io


def _state(epoch: int) -> dict:
    return {"model": {"w": torch.full((3,), float(epoch))}, "optimizer": {}, "scheduler": {}, "scaler": {},
            "epoch": epoch, "step": 2 * epoch, "config": {}}  # fmt: skip


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    for name in (f".last.pt.tmp-{dead}", f".best.pt.tmp-{os.getpid()}", f".last.pt.tmp-{alive}",
                 f".results.json.tmp-{dead}", "last.pt"):  # fmt: skip
        (tmp_path / name).write_bytes(b"partial")
    removed = ckpt_io.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([f".last.pt.tmp-{dead}", f".best.pt.tmp-{os.getpid()}"])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([f".last.pt.tmp-{alive}", f".results.json.tmp-{dead}", "last.pt"])
    assert ckpt_io.remove_stale_temporaries(tmp_path / "not yet created") == []


def test_cut_short_last_pt_says_whether_best_pt_is_whole(tmp_path):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    ckpt_io.save_checkpoint(best, _state(2))
    ckpt_io.save_checkpoint(last, _state(3))
    last.write_bytes(last.read_bytes()[:100])  # what a kill during a non-atomic copy would leave
    last_re, best_re = re.escape(str(last)), re.escape(str(best))
    message = rf"{last_re} is not a readable .*{best_re} is whole \(epoch 2, step 4\): .*cp {best_re} {last_re}"
    with pytest.raises(ckpt_io.CheckpointError, match=message):
        ckpt_io.load_checkpoint(last)
    best.write_bytes(best.read_bytes()[:100])
    with pytest.raises(ckpt_io.CheckpointError, match=rf"{best_re} cannot be resumed from either: start afresh"):
        ckpt_io.load_checkpoint(last)
    best.unlink()
    with pytest.raises(ckpt_io.CheckpointError, match="there is no best.pt beside it: start afresh"):
        ckpt_io.load_checkpoint(last)
