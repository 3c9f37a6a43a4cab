"""benchmarks/bench_extract.py --cli and profile_numba_tvl1.py at tiny sizes: the code paths behind the issue-16
tables in docs/PERFORMANCE.md still run, and the profiler still assembles the engine's own flow."""

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytest.importorskip("numba")


def test_cli_comparison_times_every_engine_on_every_input(tmp_path):
    out = tmp_path / "cli.json"
    cmd = [sys.executable, "benchmarks/bench_extract.py", "--cli", "--size", "32x40", "--pairs", "2", "--videos",
           "bigbuckbunny", "toy", "--toy-videos", "4", "--epe-pairs", "2", "--max-wait", "0",
           "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(out.read_text())
    rows = [(r["input"], r["engine"], r["pairs"]) for r in res["rows"]]
    assert rows == [("bigbuckbunny", "opencv", 2), ("bigbuckbunny", "numba", 2), ("toy", "opencv", 44),
                    ("toy", "numba", 44)]  # fmt: skip
    assert all(r["seconds"] > 0 and r["pairs_per_s"] > 0 for r in res["rows"])
    assert res["rows"][0]["epe"].endswith("(noise floor)") and float(res["rows"][1]["epe"]) < 1.0
    assert set(res["start_up_seconds"]) == {"opencv", "numba"}
    assert "| toy | numba | 44 |" in proc.stdout


def test_profiler_assembles_the_engines_flow():
    cmd = [sys.executable, "benchmarks/profile_numba_tvl1.py", "--videos", "bigbuckbunny.mp4", "--pairs", "2",
           "--short-side", "32", "--crop-width", "40", "--count-pairs", "1"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "same flow: True" in proc.stdout
    counts = proc.stdout.split("opencv vs numba: ")[1].strip()
    (opencv, numba), = json.loads(counts.replace("(", "[").replace(")", "]"))
    assert opencv == numba  # the same stopping rule stops after the same number of inner iterations
