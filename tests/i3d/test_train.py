"""Training on tiny stores: learning, checkpoints, exact resume, 2-process gloo DDP, NaN stop, schedules.

Most tests train `TinyNet` (one conv) through `fit(..., model=...)` so that they take seconds; the I3D path is
covered by `build_model_from_config` here and by tests/tools/test_train_eval_cli.py.
"""

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.pictures import GAP, LINE
from flow.store_writer import write_store
from i3d import board, build, loaders, train
from i3d import checkpoint as ckpt_io
from i3d.config import load_config
from i3d.models import InceptionI3d, TwoStreamI3D
from tests.helpers import run_torchrun

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "test_tiny.yaml"


def write_tiny_dataset(root: Path, per_class=(6, 3), frames=12, h=40, w=48) -> Path:
    """Two trivially separable classes: dark RGB moving right vs bright RGB moving left. Returns the CSV index."""
    rows = ["video_id,label,split"]
    for label, name in enumerate(("dark", "bright")):
        for split, count in zip(("train", "val"), per_class, strict=True):
            for k in range(count):
                rng = np.random.default_rng((label, k, split == "val"))
                rgb = rng.integers(0, 100, (frames, h, w, 3), dtype=np.uint8) + np.uint8(140 * label)
                flow = rng.normal(0, 1, (frames, h, w, 2)).astype(np.float32)
                flow[..., 0] += 4.0 if label == 0 else -4.0
                video_id = f"{name}/{split}{k}"
                write_store(root / "h5" / f"{video_id}.h5", rgb, flow, {})
                rows.append(f"{video_id},{name},{split}")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root / "index.csv"


class TinyNet(nn.Module):
    """Conv -> BN -> ReLU -> global mean -> dropout -> linear, with the backbone interface."""

    num_features = 8

    def __init__(self, num_classes: int = 2, in_channels: int = 3, dropout: float = 0.3):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, 8, 3, padding=1)
        self.bn = nn.BatchNorm3d(8)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(8, num_classes)

    def forward_features(self, x):
        return F.relu(self.bn(self.conv(x)))

    def forward_head(self, features):
        return self.fc(self.dropout(features.mean(dim=(2, 3, 4))))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(8, num_classes)


class StopAt(TinyNet):
    """Raises `error` (or returns NaN) at its `at`-th training forward: a crash or a diverged step."""

    def __init__(self, at: int, error=None, **kw):
        super().__init__(**kw)
        self.at, self.error, self.calls = at, error, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls >= self.at:
                if self.error is not None:
                    raise self.error
                return super().forward(x) * float("nan")
        return super().forward(x)


def tiny_model(rgb=TinyNet, flow=TinyNet) -> TwoStreamI3D:
    """Two-stream model of `rgb` / `flow` backbone classes, the same weights at every call."""
    torch.manual_seed(0)
    return TwoStreamI3D(rgb(in_channels=3), flow(in_channels=2))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def tiny_cfg(index: Path, *overrides: str):
    return load_config(TINY, [f"data.index={index}", f"data.store_root={index.parent / 'h5'}", *overrides])


def test_fit_learns_and_writes_run_folder(dataset, tmp_path, caplog):
    cfg = tiny_cfg(dataset, "train.epochs=4", "optim.lr=0.1", "train.log_every=2", "train.progress=true")
    with caplog.at_level("INFO", logger="i3d.train"):
        model, history = train.fit(cfg, tmp_path / "run", model=tiny_model())
    # stderr is no terminal under pytest: progress is a log line every log_every steps, not a bar
    assert sum(m.startswith("epoch 1 batch ") for m in caplog.messages) == 1, caplog.messages  # step 2 of 3
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and history[-1]["step"] == 4 * 3  # 12 videos / batch 4
    val = history[-1]["val"]
    assert set(val) == {"rgb", "flow", "fused"}
    for stream in ("rgb", "flow", "fused"):
        assert val[stream]["top1"] == 1.0 and val[stream]["num"] == 6, (stream, val[stream])  # chance is 0.5
    assert history[-1]["train"]["loss_rgb"] < history[0]["train"]["loss_rgb"]
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set(EventAccumulator(str(run / "tb")).Reload().Tags()["scalars"])
    for tag in ("train/loss_rgb", "train/loss_flow", "train/loss_fused", "train/acc_fused", "train/lr",
                "train/clips_per_s", "train/data_wait_frac", "val/top1_fused", "val/top5_rgb", "val/loss_flow"):
        assert tag in tags, (tag, sorted(tags))
    ckpt = ckpt_io.load_checkpoint(run / "last.pt")
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng", "config"} <= set(ckpt)
    assert ckpt["epoch"] == 4 and ckpt["step"] == 12 and ckpt["classes"] == ["bright", "dark"]
    assert ckpt_io.config_of_checkpoint(ckpt) == cfg
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in ckpt["model"].items())
    best = ckpt_io.load_checkpoint(run / "best.pt")
    first_perfect = min(h["epoch"] for h in history if h["val"]["fused"]["top1"] == 1)
    assert best["best_score"] == 1.0 and best["epoch"] == first_perfect  # the fused top-1
    assert not list(run.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_tensorboard_shows_each_epochs_input_clips_and_confusion_matrix(dataset, tmp_path, one_torch_thread):
    cfg = tiny_cfg(dataset, "train.epochs=2", "data.flip=true", "train.eval_every=1", "train.batch_size=6")
    train.fit(cfg, tmp_path / "run", model=tiny_model())
    tb = tmp_path / "run" / "tb"
    inputs = board.read_images(tb, "inputs/clips")
    assert [step for step, _ in inputs] == [0, 2]  # the first step of each epoch, nothing per step
    # 4 clips of the batch of 6, each: a caption of two lines, then RGB over flow, 8 frames of the 32-px crop enlarged
    # to 64 px: 8 * 64 + 7 gaps of 4 px wide
    clip = 2 * LINE + 2 + 64 + GAP + 64
    assert inputs[0][1].shape == (4 * clip + 3 * 8, 8 * 64 + 7 * GAP, 3)
    assert not np.array_equal(inputs[0][1], inputs[1][1])  # another epoch, other crops
    confusion = board.read_images(tb, "val/confusion_fused")
    assert [step for step, _ in confusion] == [2, 4] and min(confusion[0][1].shape[:2]) > 200
    board.image_to_png(tb, "inputs/clips", tmp_path / "inputs.png")
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(tmp_path / "inputs.png")), cv2.COLOR_BGR2RGB), inputs[1][1])


def _equal_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_reproduces_uninterrupted_run(dataset, tmp_path):
    # everything that draws randomness or carries state across epochs: dropout, flip, cosine + warm-up, accumulation
    cfg = tiny_cfg(dataset, "train.epochs=2", "data.flip=true", "optim.schedule=cosine", "optim.warmup_epochs=0.5",
                   "train.accum_steps=2", "optim.lr=0.05")
    straight, _ = train.fit(cfg, tmp_path / "a", model=tiny_model())
    crash = tiny_model(rgb=lambda **kw: StopAt(at=4, error=KeyboardInterrupt(), **kw))  # dies in epoch 2 (3 per epoch)
    with pytest.raises(KeyboardInterrupt):
        train.fit(cfg, tmp_path / "b", model=crash)
    assert ckpt_io.load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    resumed, history = train.fit(cfg, tmp_path / "b", resume=True, model=tiny_model())
    assert [h["epoch"] for h in history] == [1, 2]
    assert _equal_state(straight.state_dict(), resumed.state_dict())
    assert not _equal_state(straight.state_dict(), tiny_model().state_dict())  # it did train
    a, b = (ckpt_io.load_checkpoint(tmp_path / r / "last.pt") for r in "ab")
    assert a["step"] == b["step"] == 4 and a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]


def test_non_finite_loss_stops_naming_step_and_stream(dataset, tmp_path):
    cfg = tiny_cfg(dataset, "train.epochs=3")
    nan_flow = tiny_model(flow=lambda **kw: StopAt(at=5, **kw))  # 5th training batch: 2nd of epoch 2, after 4 steps
    message = r"non-finite flow loss \(nan\) at step 4 \(epoch 2\).*kept: .*last\.pt"
    with pytest.raises(train.NonFiniteLossError, match=message):
        train.fit(cfg, tmp_path / "run", model=nan_flow)
    kept = ckpt_io.load_checkpoint(tmp_path / "run" / "last.pt")
    assert kept["epoch"] == 1 and all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


DDP_WORKER = """
import sys, torch, torch.distributed as dist
sys.path[:0] = [{repo!r}, {tests!r}]
from test_train import tiny_cfg, tiny_model
from i3d import train
from pathlib import Path
cfg = tiny_cfg(Path({index!r}), "train.epochs=2", "train.batch_size=2")
model, history = train.fit(cfg, {out!r}, model=tiny_model())
torch.save(model.state_dict(), Path({out!r}) / f"rank{{dist.get_rank()}}.pt")
torch.save(history, Path({out!r}) / f"history{{dist.get_rank()}}.pt")
dist.destroy_process_group()  # as tools/train_two_stream.py does: a live group can abort the exit
"""


def test_ddp_two_processes_gloo(dataset, tmp_path):
    script = tmp_path / "worker.py"
    out = tmp_path / "run"
    script.write_text(DDP_WORKER.format(repo=str(REPO), tests=str(Path(__file__).parent), index=str(dataset),
                                        out=str(out)))
    run_torchrun(script)
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    assert _equal_state(rank0, rank1)
    assert not _equal_state(rank0, tiny_model().state_dict())
    h0, h1 = (torch.load(out / f"history{r}.pt") for r in (0, 1))
    # 12 videos / (2 processes x batch 2) = 3 steps per epoch; both ranks see the same gathered validation
    assert h0[-1]["step"] == 6 and h0[-1]["val"] == h1[-1]["val"] and h0[-1]["val"]["fused"]["num"] == 6
    assert ckpt_io.load_checkpoint(out / "last.pt")["epoch"] == 2


def test_lr_schedules():
    cfg = load_config(None, ["optim.milestones=[2, 3]", "optim.warmup_epochs=1", "optim.warmup_factor=0.1"])
    factors = [build.lr_factor(s, cfg.optim, steps_per_epoch=10, total_steps=40) for s in (0, 5, 10, 19, 20, 30)]
    np.testing.assert_allclose(factors, [0.1, 0.55, 1.0, 1.0, 0.1, 0.01])
    cos = load_config(None, ["optim.schedule=cosine", "optim.lr=1", "optim.min_lr=0.2"]).optim
    np.testing.assert_allclose([build.lr_factor(s, cos, 10, 40) for s in (0, 20, 40, 50)], [1.0, 0.6, 0.2, 0.2])
    assert build.lr_factor(7, load_config(None, ["optim.schedule=constant"]).optim, 10, 40) == 1.0


def test_build_model_from_config_streams_and_pretrained(kinetics_rgb_ckpt):
    cfg = load_config(None, ["model.streams=rgb", "model.num_classes=7", f"model.rgb.pretrained={kinetics_rgb_ckpt}"])
    model = build.build_model_from_config(cfg)
    assert model.streams == ("rgb",) and model.flow is None and isinstance(model.rgb, InceptionI3d)
    assert model.rgb.logits.out_channels == 7 and model.rgb.dropout.p == 0.5
    from i3d.models.pretrained import load_i3d

    reference = InceptionI3d(num_classes=400)
    load_i3d(reference, kinetics_rgb_ckpt)
    assert torch.equal(model.rgb.Conv3d_1a_7x7.conv.weight, reference.Conv3d_1a_7x7.conv.weight)
    flow = build.build_model_from_config(load_config(None, ["model.streams=flow", "model.flow.name=r3d_18"]))
    assert flow.rgb is None and flow(flow=torch.zeros(1, 2, 8, 32, 32))["fused"].shape == (1, 400)
    with pytest.raises(FileNotFoundError, match="model.flow.pretrained=nowhere.pt"):
        build.build_model_from_config(load_config(None, ["model.flow.pretrained=nowhere.pt"]))


def test_missing_store_and_class_count_are_named(dataset, tmp_path):
    (dataset.parent / "h5" / "dark" / "val1.h5").rename(tmp_path / "moved.h5")
    try:
        with pytest.raises(FileNotFoundError, match=r"1 of 6 stores.*dark/val1\.h5.*--set data\.skip_missing=true"):
            loaders.build_loaders(tiny_cfg(dataset))
        _, val, _, _ = loaders.build_loaders(tiny_cfg(dataset, "data.skip_missing=true"))
        assert len(val.dataset) == 5
    finally:
        (tmp_path / "moved.h5").rename(dataset.parent / "h5" / "dark" / "val1.h5")
    with pytest.raises(ValueError, match="model.num_classes=2"):
        loaders.build_loaders(tiny_cfg(dataset, "model.num_classes=5"))


def test_checkpoint_round_trip_and_bad_file(tmp_path):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(5)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": {}, "scaler": {}, "epoch": 3,
             "step": 9, "rng": ckpt_io.rng_state(), "config": {}}
    expected = (torch.rand(3), np.random.rand(3), __import__("random").random())
    path = ckpt_io.save_checkpoint(tmp_path / "c" / "last.pt", state)
    ckpt = ckpt_io.load_checkpoint(path)  # weights_only: every value is a tensor or a plain Python object
    ckpt_io.set_rng_state(ckpt["rng"])
    again = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]
    assert ckpt["epoch"] == 3 and _equal_state(ckpt["model"], model.state_dict())
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt_io.CheckpointError, match=r"junk.pt is truncated or not a torch file \(UnpicklingError"):
        ckpt_io.load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(ckpt_io.CheckpointError, match="missing.pt not found"):
        ckpt_io.load_checkpoint(tmp_path / "missing.pt")
    assert math.isfinite(ckpt["step"])


def test_loaders_set_up_their_workers(dataset):
    from i3d.data import worker_init_fn

    train_loader, val_loader, _, _ = loaders.build_loaders(tiny_cfg(dataset, "data.num_workers=1"))
    assert train_loader.worker_init_fn is worker_init_fn and val_loader.worker_init_fn is worker_init_fn


def test_train_one_epoch_loss_fn_hook():
    """A custom loss_fn: its weighted terms are summed and back-propagated, logged as loss_<name>, plus its metrics."""
    cfg = load_config(TINY, ["train.accum_steps=1"])
    model = tiny_model()
    batch = {"rgb": torch.randn(2, 3, 4, 8, 8), "flow": torch.randn(2, 2, 4, 8, 8), "label": torch.tensor([0, 1])}

    def loss_fn(net, b, device):
        out = net(rgb=b["rgb"].to(device))  # the RGB stream only: flow gets no gradient
        ce = F.cross_entropy(out["rgb"], b["label"])
        return {"rgb": out["rgb"], "fused": out["fused"], "metrics": {"ce": ce.detach()}}, {"a": 2 * ce, "b": 0 * ce}

    opt, sched = build.build_optimizer(cfg, model, 1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    flow_before = {k: v.clone() for k, v in model.flow.state_dict().items()}
    stats = train.train_one_epoch(model, [batch], opt, sched, scaler, cfg, epoch=0, step=0,
                                  device=torch.device("cpu"), loss_fn=loss_fn)
    assert stats["step"] == 1 and stats["loss_a"] == pytest.approx(2 * stats["ce"]) and stats["loss_b"] == 0
    assert {"acc_rgb", "acc_fused", "clips_per_s", "data_wait_frac"} <= set(stats) and "loss_rgb" not in stats
    assert _equal_state(flow_before, model.flow.state_dict())
    with pytest.raises(train.NonFiniteLossError, match=r"non-finite b loss \(nan\) at step 1 \(epoch 1\)"):
        train.train_one_epoch(model, [batch], opt, sched, scaler, cfg, epoch=0, step=1, device=torch.device("cpu"),
                              loss_fn=lambda net, b, d: ({}, {"b": torch.tensor(float("nan"))}))


def test_channels_last_on_cuda_only_and_the_same_step():
    """train.channels_last: channels_last_3d on CUDA only; an I3D step in that layout equals the default layout's."""
    from i3d.models import InceptionI3d

    cfg = load_config(TINY)
    assert train.memory_format(cfg, torch.device("cuda")) == torch.channels_last_3d
    assert train.memory_format(cfg, torch.device("cpu")) == torch.contiguous_format
    off = load_config(TINY, ["train.channels_last=false"])
    assert train.memory_format(off, torch.device("cuda")) == torch.contiguous_format
    x = torch.randn(2, 3, 8, 48, 48, generator=torch.Generator().manual_seed(0))
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last_3d):
        torch.manual_seed(0)
        net = InceptionI3d(num_classes=3).to(memory_format=fmt)
        net.eval()  # no dropout; batch norm in its running statistics
        out = net(x.contiguous(memory_format=fmt))
        out.logsumexp(1).mean().backward()
        grads.append((out.detach(), net.Conv3d_1a_7x7.conv.weight.grad))
    assert net.Conv3d_1a_7x7.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    (logits, grad), (want_logits, want_grad) = grads[1], grads[0]  # float32 rounding apart
    assert (logits - want_logits).norm() <= 1e-4 * want_logits.norm()
    # the first conv's weight gradient sums ~10^5 products per weight, in another order per layout and CPU kernel
    assert (grad - want_grad).norm() <= 5e-3 * want_grad.norm()
