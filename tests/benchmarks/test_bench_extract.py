"""benchmarks/bench_extract.py --cli and profile_numba_tvl1.py at tiny sizes: the code paths behind the flow tables
in docs/PERFORMANCE.md still run, and the profiler still assembles the engine's own flow."""

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytest.importorskip("numba")
pytestmark = pytest.mark.usefixtures("numba_tvl1")  # the scripts load the compiled engine (conftest)


def test_cli_comparison_times_both_engines_and_their_start_up(tmp_path):
    out = tmp_path / "cli.json"
    cmd = [sys.executable, "benchmarks/bench_extract.py", "--cli", "--size", "32x40", "--frames", "3", "--videos",
           "toy", "--repeats", "1", "--epe-pairs", "1", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert [(r["input"], r["engine"], r["pairs"]) for r in res["rows"]] == [("toy", "opencv", 4), ("toy", "numba", 4)]
    assert all(r["seconds"] > 0 and r["start_up_seconds"] > 0 and r["steady_pairs_per_s"] > 0 for r in res["rows"])
    opencv, numba = res["rows"]
    assert opencv["steady_ratios"] == [1.0] and len(numba["steady_ratios"]) == len(numba["cpu_ratios"]) == 1
    assert res["epe"]["toy"]["opencv"].endswith("(noise floor)") and float(res["epe"]["toy"]["numba"]) < 1.0
    assert "| toy | numba | 4 |" in proc.stdout


def test_profiler_assembles_the_engines_flow():
    cmd = [sys.executable, "benchmarks/profile_numba_tvl1.py", "--videos", "bigbuckbunny.mp4", "--pairs", "2",
           "--short-side", "32", "--crop-width", "40", "--count-pairs", "1"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "same flow: True" in proc.stdout
    counts = proc.stdout.split("opencv vs numba: ")[1].strip()
    (opencv, numba), = json.loads(counts.replace("(", "[").replace(")", "]"))
    assert opencv == numba  # the same stopping rule stops after the same number of inner iterations
