"""tools/distill.py and i3d.distill_train.fit_distill on tiny stores (8 frames, 32x32).

The validation stores hold RGB only (no flow dataset at all): a run that finishes proves the student's evaluation
never opens flow.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from flow.store_writer import write_store
from i3d import build
from i3d import checkpoint as ckpt_io
from i3d.config import ConfigError, DistillConfig, config_to_dict, load_config
from i3d.data.spec import stores_extraction
from i3d.distill import DistillError
from i3d.distill_train import fit_distill, load_distill_config, load_teacher
from i3d.loaders import spec_for_run
from i3d.models import TwoStreamI3D
from tests.helpers import call_tool, run_torchrun

REPO = Path(__file__).resolve().parents[2]


def write_dataset(root: Path, per_class=(2, 1), frames=10, h=36, w=40) -> Path:
    """Two classes told apart by the flow direction; validation stores have no flow. Returns the CSV index."""
    rows = ["video_id,label,split"]
    for label, name in enumerate(("left", "right")):
        for split, count in zip(("train", "val"), per_class, strict=True):
            for k in range(count):
                rng = np.random.default_rng((label, k, split == "val"))
                rgb = rng.integers(0, 255, (frames, h, w, 3), dtype=np.uint8)
                flow = rng.normal(0, 1, (frames, h, w, 2)).astype(np.float32)
                flow[..., 0] += 4.0 if label else -4.0
                video_id = f"{name}/{split}{k}"
                write_store(root / "h5" / f"{video_id}.h5", rgb, flow if split == "train" else None, {})
                rows.append(f"{video_id},{name},{split}")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root / "index.csv"


def write_config(root: Path, index: Path, distill: dict, backbone: str = "i3d") -> Path:
    text = {
        "model": {"streams": ["rgb"], "num_classes": 2, "dropout": 0.0, "rgb": {"name": backbone}},
        "data": {"dataset": "csv", "index": str(index), "store_root": str(index.parent / "h5"), "train_subset": "train",
                 "val_subset": "val", "num_frames": 8, "crop_size": 32, "eval_num_frames": 8, "num_workers": 0},
        "optim": {"lr": 0.01},
        "train": {"epochs": 1, "batch_size": 4, "log_every": 1, "progress": False, "device": "cpu"},
        "distill": distill,
    }
    path = root / "distill.yaml"
    path.write_text(yaml.safe_dump(text))
    return path


def write_teacher(path: Path, index: Path, streams=("rgb", "flow")) -> dict:
    """A (random) two-stream I3D teacher checkpoint in i3d/train.py's format; returns its state dict."""
    overrides = [f"data.index={index}", f"model.streams={','.join(streams)}"]
    cfg = load_config(REPO / "configs" / "test_tiny.yaml", overrides)
    torch.manual_seed(1)
    model = build.build_model_from_config(cfg)
    spec = spec_for_run(cfg, stores_extraction(sorted((index.parent / "h5").rglob("*.h5"))))  # as the trainer saves it
    state = {"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 1, "step": 1,
             "rng": {}, "config": config_to_dict(cfg), "input_spec": spec.to_dict()}
    ckpt_io.save_checkpoint(path, state)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    index = write_dataset(root)
    teacher_state = write_teacher(root / "teacher.pt", index)
    return root, index, teacher_state


def test_cli_mars_student_trains_resumes_and_is_rgb_only(data, tmp_path):
    root, index, teacher_state = data
    config = write_config(tmp_path, index, {"teacher_stream": "flow", "feature": 50.0, "pairs": {"pooled": "pooled"}})
    out = tmp_path / "run"
    args = ["--config", str(config), "--teacher", str(root / "teacher.pt"), "--out", str(out)]
    assert call_tool("distill", *args) == 0
    ckpt = ckpt_io.load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 1  # 4 training videos / batch 4
    assert all(k.startswith("rgb.") for k in ckpt["model"]), "the checkpoint holds the student only"
    assert ckpt["distill"]["feature"] == 50.0 and ckpt["teacher"] == str(root / "teacher.pt")
    assert ckpt["history"][0]["val"]["rgb"]["num"] == 2  # evaluated on the RGB-only validation stores
    assert ckpt["history"][0]["train"]["feature"] > 0
    # an ordinary RGB-only checkpoint: the trainer's own config rebuilds it and the weights load strictly
    student = build.build_model_from_config(ckpt_io.config_of_checkpoint(ckpt))
    student.load_state_dict(ckpt["model"])
    assert student.streams == ("rgb",)
    assert (out / "config.yaml").is_file() and yaml.safe_load((out / "distill.yaml").read_text())["feature"] == 50.0
    assert list((out / "tb").glob("events.out.tfevents.*")) and (out / "best.pt").is_file()
    # tools/eval.py on the student: its validation stores have no flow, so opening flow would fail
    if (REPO / "tools" / "eval.py").is_file():
        assert call_tool("eval", "--checkpoint", out / "last.pt", "--out", tmp_path / "eval" / "results.json") == 0
        results = json.loads((tmp_path / "eval" / "results.json").read_text())
        assert "flow" not in results and results["rgb"]["num"] == 2
        assert results["rgb"]["top1"] == pytest.approx(ckpt["history"][0]["val"]["rgb"]["top1"])
    assert call_tool("distill", *args, "--resume", "--set", "train.epochs=2") == 0
    ckpt2 = ckpt_io.load_checkpoint(out / "last.pt")
    assert ckpt2["epoch"] == 2 and ckpt2["step"] == 2 and len(ckpt2["history"]) == 2
    assert any(not torch.equal(v, ckpt["model"][k]) for k, v in ckpt2["model"].items())
    assert call_tool("distill", "--resume", out, "--set", "train.epochs=3") == 0  # the settings, teacher saved in OUT
    ckpt3 = ckpt_io.load_checkpoint(out / "last.pt")
    assert ckpt3["epoch"] == 3 and ckpt3["step"] == 3 and len(ckpt3["history"]) == 3
    assert ckpt3["teacher"] == str(root / "teacher.pt") and ckpt3["distill"] == ckpt["distill"]
    assert ckpt_io.config_of_checkpoint(ckpt3).train.epochs == 3
    saved = torch.load(root / "teacher.pt", weights_only=True)["model"]
    assert all(torch.equal(saved[k], v) for k, v in teacher_state.items())


def test_cli_errors_name_the_problem(data, tmp_path):
    root, index, _ = data
    rgb_teacher = tmp_path / "rgb_teacher.pt"
    write_teacher(rgb_teacher, index, streams=("rgb",))
    config = write_config(tmp_path, index, {"teacher_stream": "flow"})
    args = ["--config", str(config), "--teacher", str(rgb_teacher), "--out", str(tmp_path)]
    with pytest.raises(DistillError, match=r"has no \['flow'\] stream for distill.teacher_stream=flow"):
        call_tool("distill", *args)
    with pytest.raises(ckpt_io.CheckpointError, match="last.pt not found"):
        call_tool("distill", *args, "--resume")
    with pytest.raises(ConfigError, match="unknown config key 'distill.beta'"):
        call_tool("distill", *args, "--set", "distill.beta=3")
    with pytest.raises(ckpt_io.CheckpointError, match="last.pt not found"):
        call_tool("distill", "--resume", str(tmp_path / "nothing"))
    write_teacher(tmp_path / "trained" / "last.pt", index)  # a run of the trainer, not of tools/distill.py
    with pytest.raises(DistillError, match="not a distillation checkpoint"):
        call_tool("distill", "--resume", str(tmp_path / "trained"))
    with pytest.raises(SystemExit):  # argparse: --resume RUN_DIR writes into RUN_DIR
        call_tool("distill", "--resume", str(tmp_path / "trained"), "--out", str(tmp_path / "elsewhere"))


class TinyNet(nn.Module):
    """Conv -> BN -> ReLU -> mean -> linear with the backbone interface: fit_distill in seconds."""

    num_features = 8
    endpoint_names = ("conv", "Logits")

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 8):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, width, 3, padding=1)
        self.bn = nn.BatchNorm3d(width)
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(width, num_classes)
        self.num_features = width

    def forward_features(self, x):
        return F.relu(self.bn(self.conv(x)))

    def forward_head(self, features):
        return self.fc(self.dropout(features.mean(dim=(2, 3, 4))))

    def forward_endpoints(self, x, names):
        out = {"conv": self.forward_features(x)}
        out["Logits"] = self.forward_head(out["conv"])
        return {n: out[n] for n in names}

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _tiny(seed: int, in_channels: int = 3, width: int = 8) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(in_channels, width=width)


KD_TWO_STREAM = {"teacher_stream": "both", "kd": 1.0, "feature": 0.0}
MARS_PLUS_KD = {"teacher_stream": "flow", "kd": 0.5, "feature": 10.0}


@pytest.mark.parametrize("distill", [KD_TWO_STREAM, MARS_PLUS_KD], ids=["kd", "mars+kd"])
def test_fit_distill_resume_reproduces_uninterrupted_run(data, tmp_path, distill):
    _, index, _ = data
    # dropout, accumulation over 2 batches and a warm-up that spans the resume point: all must carry over
    overrides = ["optim.warmup_epochs=1.5", "train.accum_steps=2", "train.batch_size=2"]
    run_cfg, cfg = load_distill_config(write_config(tmp_path, index, distill), ["train.epochs=2", *overrides])
    teacher = TwoStreamI3D(_tiny(7), _tiny(8, 2)) if cfg.teacher_stream == "both" else _tiny(8, 2)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    straight, history = fit_distill(run_cfg, cfg, teacher, tmp_path / "a", student=TwoStreamI3D(_tiny(0), None))
    assert [h["epoch"] for h in history] == [1, 2] and set(history[-1]["val"]) == {"rgb", "fused"}
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())
    first_leg, _ = load_distill_config(write_config(tmp_path, index, distill), ["train.epochs=1", *overrides])
    fit_distill(first_leg, cfg, teacher, tmp_path / "b", student=TwoStreamI3D(_tiny(0), None))
    resumed, history_b = fit_distill(run_cfg, cfg, teacher, tmp_path / "b", resume=True,
                                     student=TwoStreamI3D(_tiny(0), None))
    assert [h["epoch"] for h in history_b] == [1, 2]
    assert any(not torch.equal(v, _tiny(0).state_dict()[k[4:]]) for k, v in resumed.state_dict().items())
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_load_teacher_picks_the_stream(data):
    root, _, teacher_state = data
    flow, spec = load_teacher(root / "teacher.pt", DistillConfig(teacher_stream="flow"), num_classes=2)
    assert flow.in_channels == 2 and (spec.crop_size, spec.num_frames) == (32, 8)  # the teacher's saved spec
    assert torch.equal(flow.Conv3d_1a_7x7.conv.weight, teacher_state["flow.Conv3d_1a_7x7.conv.weight"])
    both, _ = load_teacher(root / "teacher.pt", DistillConfig(teacher_stream="both"), num_classes=2)
    assert both.streams == ("rgb", "flow")
    with pytest.raises(ValueError, match="2 classes"):
        load_teacher(root / "teacher.pt", DistillConfig(), num_classes=5)


DDP_WORKER = """
import sys, torch, torch.distributed as dist
sys.path[:0] = [{repo!r}, {tests!r}]
from pathlib import Path
from test_distill_cli import MARS_PLUS_KD, TwoStreamI3D, _tiny, write_config
from i3d.distill_train import fit_distill, load_distill_config
run_cfg, cfg = load_distill_config(write_config(Path({out!r}), Path({index!r}), MARS_PLUS_KD),
                                   ["train.epochs=2", "train.batch_size=2"])
teacher = _tiny(8, 2, width=16)  # 16 channels: the student's 8 go through a learned adapter
student, history = fit_distill(run_cfg, cfg, teacher, {out!r}, student=TwoStreamI3D(_tiny(0), None))
rank = dist.get_rank()
torch.save(student.state_dict(), Path({out!r}) / f"rank{{rank}}.pt")
torch.save(history, Path({out!r}) / f"history{{rank}}.pt")
dist.destroy_process_group()  # as tools/distill.py does: a live group can abort the exit
"""


def test_ddp_two_processes_gloo(data, tmp_path):
    """Student and adapters stay identical across ranks; both ranks see the same gathered validation."""
    _, index, _ = data
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER.format(repo=str(REPO), tests=str(Path(__file__).parent), index=str(index),
                                        out=str(tmp_path)))
    run_torchrun(script)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert all(torch.equal(v, rank1[k]) for k, v in rank0.items())
    assert not all(torch.equal(v, TwoStreamI3D(_tiny(0), None).state_dict()[k]) for k, v in rank0.items())
    h0, h1 = (torch.load(tmp_path / f"history{r}.pt") for r in (0, 1))
    assert h0[-1]["step"] == 2 and h0[-1]["val"] == h1[-1]["val"] and h0[-1]["val"]["rgb"]["num"] == 2
    ckpt = ckpt_io.load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["adapters"]["pooled.proj.weight"].shape == (16, 8, 1, 1, 1)
