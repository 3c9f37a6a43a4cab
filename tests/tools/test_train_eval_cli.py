"""tools/train_two_stream.py and tools/eval.py end to end with the real two-stream I3D on tiny stores.

One short run (1 epoch, 2 steps of 8-frame 32x32 clips) keeps this affordable on a CPU; whether training learns is
checked in tests/i3d/test_train.py, which runs the same `fit` on a tiny backbone for more steps.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from i3d.checkpoint import CheckpointError
from tests.helpers import call_tool, write_motion_stores

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = write_motion_stores(tmp_path_factory.mktemp("cli"), ("dark", "bright"), (("train", 4), ("val", 3)),
                               rgb_high=100, brightness_step=140)  # dark right, bright left: RGB can see it too
    code = call_tool("train_two_stream", "--config", REPO / "configs" / "test_tiny.yaml", "--out", root / "run",
                    "--set", f"data.index={root / 'index.csv'}", "--set", f"data.store_root={root / 'h5'}",
                    "--set", "train.epochs=1", "--set", "optim.lr=0.01", "--streams", "rgb,flow")
    assert code == 0
    return root / "run"


def test_train_cli_writes_run_folder(run_dir):
    assert (run_dir / "config.yaml").is_file() and (run_dir / "best.pt").is_file() and list((run_dir / "tb").iterdir())
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2  # 8 videos / batch 4
    assert ckpt["config"]["model"]["streams"] == ["rgb", "flow"] and ckpt["config"]["optim"]["lr"] == 0.01
    assert any(k.startswith("rgb.Mixed_5c") for k in ckpt["model"])
    assert any(k.startswith("flow.Mixed_5c") for k in ckpt["model"])
    # --resume takes the run's own config; with every epoch done it loads everything and has nothing left to train
    assert call_tool("train_two_stream", "--resume", run_dir) == 0
    again = torch.load(run_dir / "last.pt", weights_only=True)
    assert again["epoch"] == 1 and all(torch.equal(v, again["model"][k]) for k, v in ckpt["model"].items())


def test_eval_cli_writes_results(run_dir, tmp_path):
    out = tmp_path / "eval" / "results.json"
    code = call_tool("eval", "--center-crop", "--checkpoint", run_dir / "best.pt", "--split", "val",
                    "--fusion-weights", "1", "1", "--out", out)
    assert code == 0
    results = json.loads(out.read_text())
    for stream in ("rgb", "flow", "fused"):
        r = results[stream]
        assert 0 <= r["top1"] <= r["top5"] <= 1 and r["num"] == 6 and r["clip"]["num"] == 6
        assert 0 <= r["mean_class_acc"] <= 1
    assert results["num_videos"] == 6 and results["split"] == "val"
    assert results["fusion_weights"] == {"rgb": 1, "flow": 1} and results["epoch"] == 1
    assert (out.parent / results["confusion_png"]).read_bytes()[:4] == b"\x89PNG"
    with np.load(out.parent / results["predictions"]) as z:  # re-fuse offline: same fused top-1
        fused = (z["logits_rgb"] + z["logits_flow"]) / 2
        assert np.mean(fused.argmax(1) == z["labels"]) == pytest.approx(results["fused"]["clip"]["top1"])
        assert sorted(z["video_ids"].tolist())[0] == "bright/val0"


def test_a_new_run_does_not_overwrite_an_existing_one(run_dir):
    before = (run_dir / "last.pt").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match=f"{run_dir} already holds a run .*--resume {run_dir}"):
        call_tool("train_two_stream", "--config", REPO / "configs" / "test_tiny.yaml", "--out", run_dir)
    assert (run_dir / "last.pt").stat().st_mtime_ns == before


def test_cli_errors_are_clear(tmp_path, capsys):
    from i3d.config import ConfigError

    with pytest.raises(SystemExit) as e:
        call_tool("train_two_stream", "--config", REPO / "configs" / "test_tiny.yaml")
    assert e.value.code == 2 and "--out RUN_DIR" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="optim.momentun"):
        call_tool("train_two_stream", "--config", REPO / "configs" / "test_tiny.yaml", "--out", tmp_path / "r",
                 "--set", "optim.momentun=0.5")
    with pytest.raises(CheckpointError, match="none.pt not found"):
        call_tool("eval", "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "r.json")
    with pytest.raises(CheckpointError, match="last.pt not found"):
        call_tool("train_two_stream", "--resume", tmp_path / "r")
