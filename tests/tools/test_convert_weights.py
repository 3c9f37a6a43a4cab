"""tools/convert_weights.py: any supported weights file -> our InceptionI3d state dict."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from i3d.models import InceptionI3d, TwoStreamI3D
from i3d.models.weights_io import WeightsError
from tests.helpers import load_script

TOOL = Path(__file__).resolve().parents[2] / "tools" / "convert_weights.py"


@pytest.fixture(scope="module")
def tool():
    return load_script(TOOL)


def test_piergiaj_flow_net_to_our_state_dict(tmp_path):
    torch.manual_seed(0)
    flow = InceptionI3d(num_classes=157, in_channels=2)  # e.g. piergiaj's Charades flow net
    state = flow.state_dict()
    theirs = {k.replace(".conv.", ".conv3d.").replace("logits.", "logits.conv3d."): v for k, v in state.items()}
    src, out = tmp_path / "flow_charades.pt", tmp_path / "converted" / "flow.pt"
    torch.save(theirs, src)
    # as a script, the way users run it
    cmd = [sys.executable, str(TOOL), str(src), str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "piergiaj" in result.stdout and "num_classes=157, in_channels=2" in result.stdout
    converted = torch.load(out, weights_only=True)
    assert converted.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(converted[k], v), k
    assert not list(out.parent.glob(".*.tmp-*"))


def test_one_stream_of_a_two_stream_checkpoint_and_errors(tool, tmp_path):
    torch.manual_seed(0)
    two = TwoStreamI3D(InceptionI3d(5, 3), InceptionI3d(5, 2))
    src = tmp_path / "checkpoint.pt"
    torch.save({"model": two.state_dict(), "epoch": 1}, src)
    with pytest.raises(WeightsError, match="--prefix rgb. or --prefix flow."):
        tool.main(tool.parse_args([str(src), str(tmp_path / "two.pt")]))
    assert tool.main(tool.parse_args([str(src), str(tmp_path / "rgb.pt"), "--prefix", "rgb."])) == 0
    rgb = torch.load(tmp_path / "rgb.pt", weights_only=True)
    assert torch.equal(rgb["Mixed_5c.b2b.conv.weight"], two.rgb.Mixed_5c.b2b.conv.weight)
    # as a script: one line naming the file, exit status 2 (common.cli.run_tool)
    result = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "missing.pt"), str(tmp_path / "x.pt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "missing.pt" in result.stderr and "not found" in result.stderr


def test_export_to_piergiaj_names_and_back_gives_identical_logits(tool, tmp_path):
    """--to piergiaj writes their key names (checked once against their pytorch_i3d.InceptionI3d with strict=True:
    logits and extract_features equal to 6e-8); reading it back gives our net with identical logits."""
    torch.manual_seed(0)
    two = TwoStreamI3D(InceptionI3d(5, 3), InceptionI3d(5, 2)).eval()
    src = tmp_path / "best.pt"
    torch.save({"model": two.state_dict()}, src)
    assert tool.main(tool.parse_args([str(src), str(tmp_path / "pier.pt"), "--prefix", "flow.", "--to", "piergiaj"]))\
        == 0
    exported = torch.load(tmp_path / "pier.pt", weights_only=True)
    assert "Conv3d_1a_7x7.conv3d.weight" in exported and "logits.conv3d.bias" in exported
    assert not any(".conv." in k for k in exported)
    back = InceptionI3d(5, 2).eval()
    assert tool.main(tool.parse_args([str(tmp_path / "pier.pt"), str(tmp_path / "ours.pt")])) == 0
    back.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True))
    x = torch.randn(1, 2, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(back(x), two.flow(x))
