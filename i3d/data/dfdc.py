"""Deepfake Detection Challenge (DFDC) index: `metadata.json` folders -> (video_id, label) with 1 = FAKE, 0 = REAL.

The DFDC training set comes as folders `dfdc_train_part_N/`, each holding mp4 files and one `metadata.json`:

    {"aaqaifqrwn.mp4": {"label": "FAKE", "split": "train", "original": "vudstovrck.mp4"},
     "vudstovrck.mp4": {"label": "REAL", "split": "train", "original": null}, ...}

Like every index builder in `i3d.data.index`, `dfdc_index` returns `(pairs, classes)`; the video_id is the video's
path relative to the root without extension (`dfdc_train_part_0/aaqaifqrwn`), which is how extract_flow.py names
its stores. The metadata files are read by `common.dfdc`; the classes are ["REAL", "FAKE"].

A fake is its original with a face swapped in, so a fake and its original must fall on the same side of a
train/validation split; `split_by_original` keeps each such family together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.dfdc import CLASSES, DfdcRecord, read_metadata


def dfdc_records(root: str | Path, *, split: str | None = None) -> list[DfdcRecord]:
    """All videos under `root`: every `metadata.json` at any depth (one DFDC part, or a folder of parts).

    Args:
        root: a DFDC part folder or a folder of them.
        split: keep only entries whose "split" field equals this ("train", "test"); None keeps all.
    """
    root = Path(root)
    files = sorted(root.rglob("metadata.json"))
    if not files:
        raise FileNotFoundError(f"no metadata.json under {root}; point at a dfdc_train_part_N folder or their parent")
    records, seen = [], {}
    for file in files:
        for record in read_metadata(file, root):
            if record.video_id in seen:
                raise ValueError(f"{record.video_id} is listed twice, in {seen[record.video_id]} and {file}")
            seen[record.video_id] = file
            if split is None or record.split == split:
                records.append(record)
    return records


def dfdc_index(root: str | Path, *, split: str | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """(video_id, label) pairs with 1 = FAKE, 0 = REAL, and the class names ["REAL", "FAKE"]."""
    return [(r.video_id, r.label) for r in dfdc_records(root, split=split)], list(CLASSES)


def split_by_original(
    records: list[DfdcRecord], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[DfdcRecord], list[DfdcRecord]]:
    """Split into (train, val) with each real video and all fakes made from it on the same side.

    About `val_fraction` of the families (a real video plus its fakes; an orphan fake is its own family) go to val.
    """
    if not 0 <= val_fraction <= 1:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1]")
    family = {r.video_id: r.original or r.video_id for r in records}
    heads = sorted(set(family.values()))
    rng = np.random.default_rng(seed)
    val_heads = set(rng.permutation(heads)[: round(len(heads) * val_fraction)].tolist())
    train = [r for r in records if family[r.video_id] not in val_heads]
    val = [r for r in records if family[r.video_id] in val_heads]
    return train, val
