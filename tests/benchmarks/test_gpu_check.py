"""benchmarks/gpu_check.py on the CPU at tiny sizes: every code path a lent GPU machine will run, checked here first
(a GPU loan is minutes; a typo found there costs one)."""

import json
import subprocess
import sys

from tests.helpers import REPO


def test_gpu_check_runs_every_section_at_tiny_sizes(tmp_path):
    out = tmp_path / "gpu_check.json"
    # "tests" (pytest tests/gpu) is left out: the suite runs that file itself
    sections = ["ceilings", "model", "train_step", "ddp", "compact", "tvl1", "compile"]
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--tiny", "--device", "cpu", "--out", str(out),
                           "--sections", *sections], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    s = result["sections"]
    assert list(s) == sections and not [name for name, v in s.items() if "error" in v]
    assert s["ceilings"]["bf16"]["peak_gflops"] > 0 and s["ceilings"]["copy_gb_per_s"] > 0
    assert [r["variant"] for r in s["model"]["rows"]] == ["fp32", "channels_last", "bf16", "bf16_channels_last"]
    assert all(r["forward_backward_gflops"] > 0 for r in s["model"]["rows"])
    rows = {k: v for k, v in s["train_step"].items() if isinstance(v, dict)}
    assert set(rows) == {"fp32", "fp32_channels_last", "bf16_channels_last", "fp16_channels_last"}
    assert all(v["finite"] for v in rows.values())
    assert s["train_step"]["fp32"]["param_moved"] > 0
    assert s["ddp"] == {**s["ddp"], "backend": "gloo", "world": 1, "equal": True}
    assert s["compact"]["equal"] and s["compact"]["bytes_float32"] > 2 * s["compact"]["bytes_compact"]
    assert [r["batch"] for r in s["tvl1"]["rows"]] == [1, 2]
    assert all(r["epe_vs_opencv"] < 0.1 for r in s["tvl1"]["rows"])
    assert "skipped" in s["compile"]
    assert "| ddp | gloo world 1 |" in proc.stdout  # the one table at the end
