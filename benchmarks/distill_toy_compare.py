"""Toy comparison of docs/DISTILLATION.md: RGB alone, MARS student, KD student, two-stream teacher.

A small 4-layer 3D CNN stands in for I3D, too slow per batch on a 2-core CPU for four runs (docs/DISTILLATION.md);
everything else is the library: i3d.train.fit for the teacher and the RGB-only baseline, i3d.distill_train.fit_distill
for the students. Run from the repository root, after the data commands of docs/DISTILLATION.md:

    PYTHONPATH=. python benchmarks/distill_toy_compare.py SEED [EPOCHS] [extra --set style overrides]

Results: runs/distill_toy/seed<SEED>/results.json (and one JSON line on stdout).
"""

import json
import sys
from pathlib import Path

import torch
from torch import nn

from i3d import checkpoint as ckpt_io
from i3d import train
from i3d.config import load_config
from i3d.distill import DistillConfig
from i3d.distill_train import fit_distill
from i3d.models import TwoStreamI3D

HERE = Path("runs/distill_toy").resolve()
EXTRA = sys.argv[3:]  # e.g. data.skip_missing=true for a smoke run


class SmallC3D(nn.Module):
    """4 x (conv 3x3x3 -> BN -> ReLU), channels 16-32-64-128, strides (1,2,2) then 2; global mean; linear."""

    endpoint_names = ("block1", "block2", "block3", "block4", "Logits")

    def __init__(self, in_channels=3, num_classes=8, dropout=0.3):
        super().__init__()
        chans, strides = (16, 32, 64, 128), ((1, 2, 2), 2, 2, 2)
        blocks, c = [], in_channels
        for out, s in zip(chans, strides, strict=True):
            blocks.append(nn.Sequential(nn.Conv3d(c, out, 3, s, 1, bias=False), nn.BatchNorm3d(out), nn.ReLU()))
            c = out
        self.blocks = nn.ModuleList(blocks)
        self.num_features = c
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward_endpoints(self, x, names):
        out = {}
        for i, b in enumerate(self.blocks):
            x = b(x)
            out[f"block{i + 1}"] = x
        out["Logits"] = self.forward_head(x)
        return {n: out[n] for n in names}

    def forward_features(self, x):
        for b in self.blocks:
            x = b(x)
        return x

    def forward_head(self, f):
        return self.fc(self.dropout(f.mean(dim=(2, 3, 4))))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, n):
        self.fc = nn.Linear(self.num_features, n)


def cfg_for(streams, seed, epochs):
    return load_config(None, [
        "model.num_classes=8", f"model.streams={streams}", "data.dataset=ucf101",
        f"data.index={HERE / 'toy'}", f"data.store_root={HERE / 'h5'}", "data.val_subset=test",
        "data.num_frames=16", "data.crop_size=48", "data.eval_num_frames=0", "data.flip=false", "data.num_workers=0",
        "optim.lr=0.05", "optim.schedule=cosine", "optim.warmup_epochs=1", "optim.weight_decay=0.0001",
        f"train.epochs={epochs}", "train.batch_size=8", "train.device=cpu", "train.progress=false",
        f"train.seed={seed}", f"train.eval_every={epochs}", *EXTRA,
    ])


def net(seed, in_channels):
    torch.manual_seed(seed)
    return SmallC3D(in_channels)


def main(seed: int, epochs: int):
    out = HERE / f"seed{seed}"
    results = {}
    two_stream = TwoStreamI3D(net(seed, 3), net(seed + 100, 2))
    _, h = train.fit(cfg_for("rgb,flow", seed, epochs), out / "teacher", model=two_stream)
    results["teacher"] = {k: h[-1]["val"][k]["top1"] for k in ("rgb", "flow", "fused")}
    _, h = train.fit(cfg_for("rgb", seed, epochs), out / "rgb_only", model=TwoStreamI3D(net(seed, 3), None))
    results["rgb_only"] = h[-1]["val"]["rgb"]["top1"]
    ckpt = ckpt_io.load_checkpoint(out / "teacher" / "last.pt")
    teacher = TwoStreamI3D(net(0, 3), net(0, 2))
    teacher.load_state_dict(ckpt["model"])
    for name, dcfg in {"mars": DistillConfig(teacher_stream="flow", feature=50.0, kd=0.0),
                       "kd": DistillConfig(teacher_stream="both", feature=0.0, kd=1.0, temperature=4.0)}.items():
        t = teacher.flow if dcfg.teacher_stream == "flow" else teacher
        _, h = fit_distill(cfg_for("rgb", seed, epochs), dcfg, t, out / name, student=TwoStreamI3D(net(seed, 3), None))
        results[name] = h[-1]["val"]["rgb"]["top1"]
        results[name + "_train"] = {k: round(v, 4) for k, v in h[-1]["train"].items()}
    print(json.dumps({"seed": seed, "epochs": epochs, **results}))
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 12)
