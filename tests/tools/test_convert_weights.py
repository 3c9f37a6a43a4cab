"""tools/convert_weights.py: any supported weights file -> our InceptionI3d state dict."""

import subprocess
import sys
from pathlib import Path

import torch

from i3d.models import InceptionI3d, TwoStreamI3D

TOOL = Path(__file__).resolve().parents[2] / "tools" / "convert_weights.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300)


def test_piergiaj_flow_net_to_our_state_dict(tmp_path):
    torch.manual_seed(0)
    flow = InceptionI3d(num_classes=157, in_channels=2)  # e.g. piergiaj's Charades flow net
    state = flow.state_dict()
    theirs = {k.replace(".conv.", ".conv3d.").replace("logits.", "logits.conv3d."): v for k, v in state.items()}
    src, out = tmp_path / "flow_charades.pt", tmp_path / "converted" / "flow.pt"
    torch.save(theirs, src)
    result = _run(str(src), str(out))
    assert result.returncode == 0, result.stderr
    assert "piergiaj" in result.stdout and "num_classes=157, in_channels=2" in result.stdout
    converted = torch.load(out, weights_only=True)
    assert converted.keys() == flow.state_dict().keys()
    for k, v in flow.state_dict().items():
        assert torch.equal(converted[k], v), k
    assert not list(out.parent.glob("*.tmp"))


def test_one_stream_of_a_two_stream_checkpoint_and_errors(tmp_path):
    torch.manual_seed(0)
    two = TwoStreamI3D(InceptionI3d(5, 3), InceptionI3d(5, 2))
    src = tmp_path / "checkpoint.pt"
    torch.save({"model": two.state_dict(), "epoch": 1}, src)
    result = _run(str(src), str(tmp_path / "two.pt"))
    assert result.returncode == 1 and "--prefix" in result.stderr
    result = _run(str(src), str(tmp_path / "rgb.pt"), "--prefix", "rgb.")
    assert result.returncode == 0, result.stderr
    rgb = torch.load(tmp_path / "rgb.pt", weights_only=True)
    assert torch.equal(rgb["Mixed_5c.b2b.conv.weight"], two.rgb.Mixed_5c.b2b.conv.weight)
    result = _run(str(tmp_path / "missing.pt"), str(tmp_path / "x.pt"))
    assert result.returncode == 1 and "missing.pt" in result.stderr and "not found" in result.stderr
