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
            "epoch": epoch, "step": 2 * epoch, "config": {}}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    for name in (f".last.tmp-{dead}.pt", f".best.tmp-{os.getpid()}.pt", f".last.tmp-{alive}.pt",
                 f".results.tmp-{dead}.json", "last.pt"):
        (tmp_path / name).write_bytes(b"partial")
    removed = ckpt_io.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([f".last.tmp-{dead}.pt", f".best.tmp-{os.getpid()}.pt"])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([f".last.tmp-{alive}.pt", f".results.tmp-{dead}.json", "last.pt"])
    assert ckpt_io.remove_stale_temporaries(tmp_path / "not yet created") == []


def test_cut_short_last_pt_says_whether_best_pt_is_whole(tmp_path):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    ckpt_io.save_checkpoint(best, _state(2))
    ckpt_io.save_checkpoint(last, _state(3))
    last.write_bytes(last.read_bytes()[:100])  # what a kill during a non-atomic copy would leave
    last_re, best_re = re.escape(str(last)), re.escape(str(best))
    message = rf"{last_re} is truncated or not a torch file .*{best_re} is whole \(epoch 2, step 4\): .*cp {best_re} "
    with pytest.raises(ckpt_io.CheckpointError, match=message):
        ckpt_io.load_checkpoint(last)
    best.write_bytes(best.read_bytes()[:100])
    with pytest.raises(ckpt_io.CheckpointError, match=rf"{best_re} cannot be resumed from either: start afresh"):
        ckpt_io.load_checkpoint(last)
    best.unlink()
    with pytest.raises(ckpt_io.CheckpointError, match="there is no best.pt beside it: start afresh"):
        ckpt_io.load_checkpoint(last)


def test_a_checkpoint_cut_anywhere_is_named_truncated(tmp_path):
    """A checkpoint cut at any point (a copy or download stopped early) says so in one line, not torch's paragraphs."""
    whole = ckpt_io.save_checkpoint(tmp_path / "whole.pt", _state(1))
    data = whole.read_bytes()
    for size in (0, 10, 100, len(data) // 2, len(data) - 20, len(data) - 1):
        cut = tmp_path / f"best{size}.pt"
        cut.write_bytes(data[:size])
        with pytest.raises(ckpt_io.CheckpointError) as info:
            ckpt_io.load_checkpoint(cut)
        message = str(info.value)
        assert message.startswith(f"{cut} is truncated or not a torch file (") and "\n" not in message, message
        assert message.endswith("); copy it again"), message
