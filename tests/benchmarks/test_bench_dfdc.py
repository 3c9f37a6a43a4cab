"""benchmarks/bench_dfdc.py at a tiny size: predict_ensemble --faces runs on its generated face videos and the
report splits each video's seconds into the stages of docs/PERFORMANCE.md, every one measured."""

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytest.importorskip("facenet_pytorch")

MEMBERS = ["dfdc_i3d", "dfdc_mc3_112"]  # two architectures (all seven: tens of seconds of model building)


def test_tiny_run_reports_every_stage_and_the_start_up(tmp_path):
    out = tmp_path / "dfdc.json"
    cmd = [sys.executable, "benchmarks/bench_dfdc.py", "--videos", "2", "--frames", "12", "--size", "240x320",
           "--crop", "16", "--clip-frames", "4", "--face-size", "32", "--min-frames", "8", "--members", *MEMBERS,
           "--json", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(out.read_text())
    stages = ["decode", "detect", "crop", "read_clips", "inputs", *(f"forward:{m}" for m in MEMBERS), "total"]
    assert [s for s in res["per_video_s"] if s != "other"] == stages
    assert all(res["per_video_s"][s] > 0 for s in stages) and res["per_video_s"]["other"] >= 0
    assert len(res["videos"]) == 2 and res["steady_videos"] == 1 and res["clips_per_video"] == 1
    parts = sum(t for s, t in res["videos"][1].items() if s != "total")
    assert parts == pytest.approx(res["videos"][1]["total"])  # "other" closes the sum: no stage counted twice
    assert set(res["load_s"]) == set(MEMBERS) and all(t > 0 for t in res["load_s"].values())
    assert 0 < sum(res["load_s"].values()) < res["startup_s"] < res["wall_s"]
    assert "| forward:dfdc_mc3_112 |" in proc.stdout and "dominant stage:" in proc.stdout
