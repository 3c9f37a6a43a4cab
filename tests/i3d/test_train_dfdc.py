"""The trainer's DFDC hooks: dfdc index, binary head (BCE, best.pt by log loss), rebalanced sampler, video CutMix
with one box for both streams and soft targets, input-contract checks, zoo weights."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flow.store_writer import write_store
from i3d import build, loaders, train
from i3d import checkpoint as ckpt_io
from i3d.config import ConfigError, load_config
from i3d.data.sampler import RebalancedSampler
from i3d.models import TwoStreamI3D

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "test_tiny.yaml"


class MeanNet(nn.Module):
    """A linear layer on the clip's per-channel mean: learns brightness in a few steps."""

    def __init__(self, in_channels: int, num_classes: int = 1):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.fc(x.mean(dim=(2, 3, 4)))


def write_dfdc(root: Path, parts=(("train", 0, 2, 6), ("val", 1, 2, 2))) -> Path:
    """DFDC parts (metadata.json) with RGB-only stores: REAL videos dark, FAKE bright. Returns root."""
    for side, part, n_real, n_fake in parts:
        folder = root / "dfdc" / side / f"dfdc_train_part_{part}"
        folder.mkdir(parents=True)
        meta = {}
        for k in range(n_real + n_fake):
            fake = k >= n_real
            name = f"{'fake' if fake else 'real'}{k}"
            meta[f"{name}.mp4"] = {"label": "FAKE" if fake else "REAL", "split": "train",
                                   "original": "real0.mp4" if fake else None}
            rng = np.random.default_rng((part, k))
            rgb = rng.integers(0, 90, (10, 36, 40, 3), dtype=np.uint8) + np.uint8(140 * fake)
            write_store(root / "h5" / folder.name / f"{name}.h5", rgb, None, {})
        (folder / "metadata.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def dfdc(tmp_path_factory) -> Path:
    return write_dfdc(tmp_path_factory.mktemp("dfdc"))


def dfdc_cfg(root: Path, *overrides: str):
    return load_config(TINY, [
        "data.dataset=dfdc", f"data.index={root / 'dfdc' / 'train'}", f"data.val_index={root / 'dfdc' / 'val'}",
        "data.train_subset=", "data.val_subset=", f"data.store_root={root / 'h5'}", "model.streams=rgb",
        "model.num_classes=1", "train.batch_size=2", *overrides,
    ])


def binary_model() -> TwoStreamI3D:
    torch.manual_seed(0)
    return TwoStreamI3D(MeanNet(3), None)


def test_the_dfdc_recipes_load_with_the_hooks():
    for path in sorted((REPO / "configs").glob("dfdc_*.yaml")):
        cfg = load_config(path)
        assert cfg.data.dataset == "dfdc" and cfg.data.sampler == "rebalanced" and cfg.model.num_classes == 1
        assert (cfg.train.cutmix_alpha > 0) == ("cutmix" in path.stem)
    with pytest.raises(ConfigError, match="data.sampler='weighted'"):
        load_config(TINY, ["data.sampler=weighted"])
    with pytest.raises(ConfigError, match="train.cutmix_mode='cube'"):
        load_config(TINY, ["train.cutmix_mode=cube"])
    with pytest.raises(ConfigError, match="train.cutmix_alpha=-1"):
        load_config(TINY, ["train.cutmix_alpha=-1"])


def test_binary_head_trains_with_bce_and_keeps_the_lowest_log_loss(dfdc, tmp_path):
    cfg = dfdc_cfg(dfdc, "train.epochs=5", "optim.lr=0.5", "optim.schedule=constant")
    model, history = train.fit(cfg, tmp_path / "run", model=binary_model())
    val = history[-1]["val"]["fused"]
    assert set(val) >= {"log_loss", "auc", "accuracy", "num"} and val["num"] == 4
    assert val["auc"] == 1.0 and val["accuracy"] == 1.0  # dark REAL vs bright FAKE
    losses = [h["val"]["fused"]["log_loss"] for h in history]
    assert losses[-1] < losses[0] < math.log(2) + 0.2
    assert history[-1]["train"]["loss_rgb"] < history[0]["train"]["loss_rgb"]
    best = ckpt_io.load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == 1 + int(np.argmin(losses)) and best["best_score"] == pytest.approx(-min(losses))
    assert best["classes"] == ["REAL", "FAKE"]
    spec = best["input_spec"]  # the stores' short side (write_store records none: min(H, W)), the run's clips
    assert (spec["crop_size"], spec["short_side"], spec["normalization"], spec["num_frames"]) == (32, 36, "i3d", 8)


def test_rebalanced_sampler_is_used(dfdc):
    train_loader, _, classes, _ = loaders.build_loaders(dfdc_cfg(dfdc, "data.sampler=rebalanced"))
    sampler = train_loader.sampler
    assert isinstance(sampler, RebalancedSampler) and classes == ["REAL", "FAKE"]
    assert len(train_loader) == 2  # 2 REAL + 2 of the 6 FAKE, batches of 2 (random: 8 videos -> 4 batches)
    labels = [train_loader.dataset.items[i][1] for i in sampler]
    assert sorted(labels) == [0, 0, 1, 1]
    random_loader, _, _, _ = loaders.build_loaders(dfdc_cfg(dfdc))
    assert len(random_loader) == 4 and not isinstance(random_loader.sampler, RebalancedSampler)


def test_cutmix_pastes_one_box_into_both_streams_with_soft_targets(monkeypatch):
    cfg = load_config(TINY, ["train.cutmix_alpha=1.0", "train.cutmix_mode=both", "model.num_classes=1"])
    b, t, s = 4, 8, 16
    rgb = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, 3, t, s, s).clone()  # clip i = i
    flow = -rgb[:, :2].clone() - 1
    labels = torch.tensor([0, 1, 0, 1])
    model = TwoStreamI3D(MeanNet(3), MeanNet(2))
    seen = []
    real_loss = train.classification_loss
    monkeypatch.setattr(train, "classification_loss", lambda logits, targets: seen.append(targets) or
                        real_loss(logits, targets))
    opt, sched = build.build_optimizer(cfg, model, 1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    batch = {"rgb": rgb, "flow": flow, "label": labels}
    train.train_one_epoch(model, [batch], opt, sched, scaler, cfg, epoch=0, step=0, device=torch.device("cpu"))
    got_rgb, got_flow = model.rgb.inputs[0], model.flow.inputs[0]
    source = got_rgb[:, 0]  # (B, T, H, W): which clip each voxel came from
    assert torch.equal(-got_flow[:, 0] - 1, source)  # flow pasted from the same clip at the same voxels
    changed = source != torch.arange(b).view(b, 1, 1, 1)
    assert changed.any()
    region = changed.any(0)  # one box: its voxels form a cuboid
    ts, ys, xs = (torch.nonzero(region.any(dim=d)).squeeze(1) for d in ((1, 2), (0, 2), (0, 1)))
    box = region[ts.min() : ts.max() + 1, ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert box.all() and box.sum() == region.sum()
    fraction = region.float().mean().item()
    perm = source[:, ts.min(), ys.min(), xs.min()].long()
    expected = (1 - fraction) * labels.float() + fraction * labels[perm].float()
    targets = seen[0]
    assert targets.shape == (b, 1) and torch.allclose(targets[:, 0], expected)  # soft, by pasted volume


def test_contract_check_and_zoo_weights(tmp_path, caplog):
    bad = load_config(TINY, ["model.rgb.name=mc3_112", "data.normalization=i3d"])
    with pytest.raises(ConfigError, match="set --set data.normalization=imagenet"):
        build.check_input_contract(bad)
    build.check_input_contract(load_config(TINY, ["model.rgb.name=mc3_112", "data.normalization=imagenet"]))
    assert "differs from mc3_112's contract (112 px)" in caplog.text  # crop 32 is allowed, with a warning
    build.check_input_contract(load_config(TINY, ["model.streams=flow", "model.flow.name=mc3_112"]))  # flow: no RGB
    source = build.build_backbone("rgb", load_config().model.rgb.__class__(name="r3d_18"), 400, 0.0)
    torch.save(source.state_dict(), tmp_path / "r3d_18_kinetics.pth")  # a torchvision-format state dict
    scfg = load_config(TINY, ["model.rgb.name=r3d_18", f"model.rgb.pretrained={tmp_path / 'r3d_18_kinetics.pth'}"])
    net = build.build_backbone("rgb", scfg.model.rgb, 1, 0.0)
    assert torch.equal(net.stem[0].weight, source.stem[0].weight) and net.fc.out_features == 1
