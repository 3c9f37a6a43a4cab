"""`make demo`: its commands fit together (toy sizes, store paths, classes), and tools/demo_report.py's two jobs."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from i3d.config import config_to_dict, load_config
from i3d.synthetic.toy import ToyConfig
from tests.helpers import load_script

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "toy_i3d_two_stream.yaml"


@pytest.fixture(scope="module")
def report():
    return load_script("tools/demo_report.py")


def _demo_commands(kinetics: str, *variables: str) -> dict[str, list[str]]:
    """The argument lists `make demo` would pass to each tool (from `make -n`, which runs nothing)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    text = subprocess.run(["make", "-n", "demo", f"KINETICS_RGB={kinetics}", *variables], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout
    commands: dict[str, list[str]] = {}
    for line in (line for line in text.replace("\\\n", " ").splitlines() if " tools/" in line):
        for part in re.split(r";|&&|\b(?:if|then|else|fi)\b", line):
            words = shlex.split(part)
            tools = [w for w in words if w.startswith("tools/")]
            if tools:
                key = Path(tools[0]).stem + ("_resume" if "--resume" in words else "")
                commands.setdefault(key, words[words.index(tools[0]) + 1 :])
    return commands


def _overrides(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "--set"]


def test_demo_commands_fit_the_toy_data(tmp_path):
    cmd = _demo_commands(str(tmp_path / "absent.ckpt"))
    toy_args = load_script("tools/make_toy_dataset.py").parse_args(cmd["make_toy_dataset"])
    flow_args = load_script("tools/extract_flow.py").parse_args(cmd["extract_flow"])
    train = cmd["train_two_stream"]
    assert train[train.index("--config") + 1] == "configs/toy_i3d_two_stream.yaml"
    # without the Kinetics file the RGB stream starts from scratch
    assert not any(o.startswith("model.rgb.pretrained") for o in _overrides(train))
    cfg = load_config(CONFIG, _overrides(train))
    height, width = toy_args.size
    assert cfg.model.num_classes == len(toy_args.classes) and cfg.data.dataset == "ucf101"
    assert Path(cfg.data.index) == toy_args.out and flow_args.videos == [str(toy_args.out / "videos")]
    assert Path(cfg.data.store_root) == flow_args.out and flow_args.short_side == 0  # stores keep the toy size
    assert cfg.data.crop_size <= min(height, width) and cfg.data.num_frames <= toy_args.frames
    assert cfg.data.eval_num_frames == 0 and not cfg.data.flip  # a flip would swap MoveLeft and MoveRight
    ToyConfig(height=height, width=width, num_frames=toy_args.frames, videos_per_class=toy_args.videos_per_class)
    run = Path(train[train.index("--out") + 1])
    assert Path(cmd["eval"][cmd["eval"].index("--checkpoint") + 1]) == run / "best.pt"
    assert cmd["demo_report"][:2] == ["same-config", str(run / "last.pt")]
    assert _overrides(cmd["demo_report"]) == _overrides(train)  # the resumed run is compared with this config
    assert cmd["train_two_stream_resume"] == ["--resume", str(run)]
    # the config file's own paths are seed 0's, so a plain tools/train_two_stream.py --config finds make demo's data
    assert load_config(CONFIG) == load_config(CONFIG, _overrides(train))


def test_demo_seed_changes_data_init_sampling_and_folder(tmp_path):
    seed0 = _demo_commands(str(tmp_path / "absent.ckpt"))
    seed3 = _demo_commands(str(tmp_path / "absent.ckpt"), "DEMO_SEED=3")
    toy0, toy3 = (load_script("tools/make_toy_dataset.py").parse_args(c["make_toy_dataset"]) for c in (seed0, seed3))
    assert (toy0.seed, toy3.seed) == (0, 3) and toy0.out != toy3.out
    cfg0, cfg3 = (load_config(CONFIG, _overrides(c["train_two_stream"])) for c in (seed0, seed3))
    assert (cfg0.train.seed, cfg3.train.seed) == (0, 3)  # the initialisation, clip sampling and order
    assert Path(cfg3.data.index) == toy3.out and Path(cfg3.data.store_root).parent == toy3.out.parent
    folders = {Path(c["eval"][c["eval"].index("--out") + 1]).parent for c in (seed0, seed3)}
    assert len(folders) == 2 and toy3.out.parent in folders


def test_demo_uses_kinetics_weights_when_present(tmp_path):
    weights = tmp_path / "i3d-kinetics-400.ckpt"
    weights.write_bytes(b"")
    cmd = _demo_commands(str(weights))
    assert f"model.rgb.pretrained={weights}" in _overrides(cmd["train_two_stream"])
    assert f"model.rgb.pretrained={weights}" in _overrides(cmd["demo_report"])  # part of the compared config


def _fake_checkpoint(path: Path, overrides=()) -> Path:
    state = {"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 1, "step": 1,
             "config": config_to_dict(load_config(CONFIG, overrides)), "input_spec": {}}
    torch.save(state, path)
    return path


def test_same_config_reuses_only_an_identical_run(report, tmp_path, capsys):
    ckpt = _fake_checkpoint(tmp_path / "last.pt")
    assert report.main(report.parse_args(["same-config", str(ckpt), str(CONFIG)])) == 0
    assert report.main(report.parse_args(["same-config", str(ckpt), str(CONFIG), "--set", "optim.lr=0.5"])) == 1
    assert "optim.lr: " in capsys.readouterr().out
    assert report.main(report.parse_args(["same-config", str(tmp_path / "none.pt"), str(CONFIG)])) == 1
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert report.main(report.parse_args(["same-config", str(tmp_path / "bad.pt"), str(CONFIG)])) == 1
    old = torch.load(ckpt, weights_only=True)
    # a key added to the config since (here: dropped from the saved one) counts as its default, not as a change
    del old["config"]["data"]["eval_start"]
    old["input_spec"] = {}
    torch.save(old, tmp_path / "older_keys.pt")
    assert report.main(report.parse_args(["same-config", str(tmp_path / "older_keys.pt"), str(CONFIG)])) == 0


def test_config_differences_name_nested_keys(report):
    found = {"optim": {"lr": 0.1, "momentum": 0.9}, "model": {"rgb": {"pretrained": ""}}}
    wanted = {"optim": {"lr": 0.1, "momentum": 0.8}, "model": {"rgb": {"pretrained": "k.ckpt"}}}
    assert report.config_differences(found, wanted) == ["model.rgb.pretrained: '' -> 'k.ckpt'",
                                                        "optim.momentum: 0.9 -> 0.8"]
    assert report.config_differences(found, found) == []


def test_table_lists_each_stream_and_the_fusion(report):
    metrics = {"top1": 0.5, "top5": 0.875, "mean_class_acc": 0.4375}
    results = {"split": "test", "num_videos": 32, "num_frames": 0, "rgb": metrics,
               "flow": {**metrics, "top1": 0.90625}, "fused": {**metrics, "top1": 1.0}}
    assert report.format_table(results).splitlines() == [
        "test split: 32 videos, centre crop, whole videos",
        "stream     top-1   top-5  mean class",
        "rgb        0.500   0.875       0.438",
        "flow       0.906   0.875       0.438",
        "fused      1.000   0.875       0.438",
        "fused top-1 +0.094 over the best single stream (flow)",
    ]
    results["rgb"]["top1"] = 1.0
    assert report.format_table(results).splitlines()[-1] == "fused top-1 +0.000 over the best single stream (rgb)"
    del results["rgb"]
    assert "best single stream" not in report.format_table(results)  # nothing to compare with one stream
