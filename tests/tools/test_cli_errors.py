"""Real mistakes with the training and evaluation tools: one `error: ...` line naming the file and the fix, status 2.

Three run as scripts (the `__main__` wiring through common.cli.run_tool, --debug included); the others call
`run_tool(tool.main, tool.parse_args, argv)` in this process, which is what the scripts do, without a torch start-up.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.cli import run_tool
from i3d.checkpoint import save_checkpoint
from tests.helpers import load_script, write_motion_stores

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "test_tiny.yaml"


def _script(name: str, *argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "tools" / f"{name}.py"), *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_missing_checkpoint_is_one_line_and_debug_shows_the_traceback(tmp_path):
    result = _script("eval", "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "r.json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"error: checkpoint {tmp_path / 'none.pt'} not found (a run folder of "
                             "tools/train_two_stream.py holds last.pt and best.pt)\n")
    debug = _script("eval", "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "r.json", "--debug")
    assert debug.returncode == 1 and debug.stderr.startswith("Traceback (most recent call last)")
    assert "i3d.checkpoint.CheckpointError: checkpoint" in debug.stderr


def test_missing_stores_name_the_setting_that_skips_them(tmp_path):
    index = tmp_path / "index.csv"
    index.write_text("video_id,label,split\na/v0,a,train\nb/v0,b,train\na/v1,a,val\nb/v1,b,val\n")
    result = _script("train_two_stream", "--config", TINY, "--out", tmp_path / "run", "--streams", "flow",
                     "--set", f"data.index={index}", "--set", f"data.store_root={tmp_path / 'h5'}")
    assert result.returncode == 2
    (line,) = _error_lines(result.stderr)
    assert f"2 of 2 stores missing under {tmp_path / 'h5'}" in line and "--set data.skip_missing=true" in line


def test_bad_set_key_is_one_line(tmp_path, capsys):
    tool = load_script("tools/train_two_stream.py")
    argv = ["--config", str(TINY), "--out", str(tmp_path / "r"), "--set", "optim.momentun=0.5"]
    assert run_tool(tool.main, tool.parse_args, argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "optim.momentun" in line


def test_a_batch_of_one_too_small_for_batch_norm_is_one_line_before_training(tmp_path, capsys):
    root = write_motion_stores(tmp_path, counts=(("train", 2), ("val", 1)))
    tool = load_script("tools/train_two_stream.py")
    argv = ["--config", str(TINY), "--out", str(tmp_path / "run"), "--set", f"data.index={root / 'index.csv'}",
            "--set", f"data.store_root={root / 'h5'}", "--set", "train.batch_size=1"]
    assert run_tool(tool.main, tool.parse_args, argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith("error: train.batch_size=1 with 8x32x32 clips leaves the rgb stream's Mixed_5b")
    assert "set train.batch_size=2 or more" in line
    assert not (tmp_path / "run" / "last.pt").exists()


def test_resume_from_a_cut_short_last_pt_points_at_best_pt(tmp_path, capsys):
    run = tmp_path / "run"
    state = {"model": {}, "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 4, "step": 8, "config": {}}
    save_checkpoint(run / "best.pt", state)
    torch.save(state, run / "last.pt")
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:64])  # torch.save killed half-way, unprotected
    tool = load_script("tools/train_two_stream.py")
    assert run_tool(tool.main, tool.parse_args, ["--resume", str(run)]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {run / 'last.pt'} is truncated or not a torch file (")
    assert f"{run / 'best.pt'} is whole (epoch 4, step 8): evaluate or predict with it, or, to continue" in line
    assert f"training from it, cp {run / 'best.pt'} " in line


def test_converting_weights_cut_in_half_is_one_line(tmp_path, capsys):
    from i3d.models import InceptionI3d

    whole = tmp_path / "rgb_imagenet.pt"
    torch.save(InceptionI3d(num_classes=4).state_dict(), whole)
    (tmp_path / "half.pt").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a download stopped early
    tool = load_script("tools/convert_weights.py")
    assert run_tool(tool.main, tool.parse_args, [str(tmp_path / "half.pt"), str(tmp_path / "out.pt")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {tmp_path / 'half.pt'} is truncated or not a torch file (RuntimeError: ")
    assert line.endswith("; download or copy it again") and not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("tool", sorted(p.stem for p in (REPO / "tools").glob("*.py")))
def test_every_tool_goes_through_run_tool(tool):
    text = (REPO / "tools" / f"{tool}.py").read_text()
    assert text.endswith('if __name__ == "__main__":\n    sys.exit(run_tool(main, parse_args))\n')
