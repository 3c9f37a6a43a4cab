"""DFDC-style classification end to end on a generated real/fake dataset, through the command-line tools:

    make_fake_dataset -> extract_flow (train and val parts) -> train_two_stream x 2 zoo models (the DFDC recipes,
    shrunk to 32 px and 4 frames; one with CutMix) -> eval (log loss, AUC, accuracy) -> predict_ensemble

Learning is not asserted here (one epoch of full-width video ResNets on 8 clips); tests/i3d/test_train_dfdc.py
checks that the binary head learns. This checks that the pieces fit: ids, classes, contracts, checkpoints, CSVs.
"""

import csv
import json
import math
from pathlib import Path

import pytest

from tests.helpers import call_tool

REPO = Path(__file__).resolve().parents[2]


def _train(recipe: str, data: Path, out: Path, *extra: str) -> Path:
    sets = [f"data.index={data / 'train'}", f"data.val_index={data / 'val'}", f"data.store_root={data / 'h5'}",
            "model.rgb.pretrained=", "data.crop_size=32", "data.num_frames=4", "data.eval_num_frames=4",
            "data.num_workers=0", "train.batch_size=4", "train.epochs=1", "train.device=cpu", "train.amp=none",
            "train.progress=false", *extra]
    argv = ["--config", REPO / "configs" / recipe, "--out", out]
    for s in sets:
        argv += ["--set", s]
    assert call_tool("train_two_stream", *argv) == 0
    return out / "best.pt"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dfdc_e2e")
    data = root / "data"
    assert call_tool("make_fake_dataset", "--out", data, "--height", 40, "--width", 48, "--num-frames", 8,
                "--reals-per-part", 4, "--fakes-per-real", 2) == 0
    for side in ("train", "val"):  # store ids dfdc_train_part_N/<name>, as the dfdc index names them
        code = call_tool("extract_flow", "--videos", data / side, "--root", data / side, "--out", data / "h5",
                    "--short-side", 40, "--nscales", 1, "--warps", 1, "--no-progress")
        assert code == 0
    _train("dfdc_mc3_112.yaml", data, root / "mc3_112")
    _train("dfdc_r2p1_112_cutmix.yaml", data, root / "mc3_18", "model.rgb.name=mc3_18", "data.normalization=kinetics")
    return root


def test_trained_checkpoints_carry_their_contracts(runs):
    import torch

    for run, normalization in (("mc3_112", "imagenet"), ("mc3_18", "kinetics")):
        ckpt = torch.load(runs / run / "best.pt", weights_only=True)
        assert ckpt["classes"] == ["REAL", "FAKE"] and ckpt["config"]["model"]["num_classes"] == 1
        spec = ckpt["input_spec"]  # the stores' extraction (short side 40, 25 fps, opencv) + the run's input
        assert (spec["crop_size"], spec["short_side"], spec["normalization"], spec["num_frames"], spec["fps"],
                spec["flow_engine"]) == (32, 40, normalization, 4, 25.0, "opencv")
        assert ckpt["step"] == 2  # rebalanced: 4 REAL + 4 of the 8 FAKE per epoch, batches of 4


def test_eval_reports_binary_metrics(runs, tmp_path):
    out = tmp_path / "results.json"
    assert call_tool("eval", "--checkpoint", runs / "mc3_112" / "best.pt", "--out", out) == 0
    fused = json.loads(out.read_text())["fused"]
    assert fused["num"] == 12 and fused["positive_rate"] == pytest.approx(8 / 12)
    assert 0 <= fused["auc"] <= 1 and 0 <= fused["accuracy"] <= 1 and 0 < fused["log_loss"] < 5


def test_ensemble_writes_one_finite_probability_per_video(runs, tmp_path, capsys):
    videos = sorted((runs / "data" / "val").rglob("*.mp4"))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    out = tmp_path / "submission.csv"
    assert call_tool("predict_ensemble", "--model", f"{runs / 'mc3_112' / 'best.pt'}:2", "--model",
                runs / "mc3_18" / "best.pt", "--videos", *videos, broken, "--out", out) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert failed == [f"FAILED {broken}: OpenCV cannot open it (not a video, or an unsupported codec)"]
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["filename"] for r in rows) == sorted([v.name for v in videos] + ["broken.mp4"])
    probs = {r["filename"]: float(r["label"]) for r in rows}
    assert all(math.isfinite(p) and 0 < p < 1 for p in probs.values()) and probs["broken.mp4"] == 0.5
    with open(tmp_path / "submission_per_model.csv", newline="") as f:
        per_model = {r["filename"]: r for r in csv.DictReader(f)}
    for name, p in probs.items():  # weights 2 and 1
        m0, m1 = float(per_model[name]["m0"]), float(per_model[name]["m1"])
        assert p == pytest.approx((2 * m0 + m1) / 3, abs=2e-6)
    assert len({per_model[v.name]["m0"] for v in videos}) > 1  # the models see the videos: outputs differ
