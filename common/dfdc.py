"""DFDC's `metadata.json` (one per folder of videos): label, split and original of every video.

    {"aaqaifqrwn.mp4": {"label": "FAKE", "split": "train", "original": "vudstovrck.mp4"},
     "vudstovrck.mp4": {"label": "REAL", "split": "train", "original": null}, ...}

Read here, below `faces/` (which labels the face clips it cuts) and `i3d/` (which indexes videos and clips for
training), so that neither imports the other. The classes are ["REAL", "FAKE"] (not sorted: FAKE is the positive
class of the competition's log loss).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CLASSES = ["REAL", "FAKE"]
LABELS = {"REAL": 0, "FAKE": 1}


@dataclass(frozen=True)
class DfdcRecord:
    """One video of a DFDC metadata.json."""

    video_id: str  # path relative to the root, without extension
    label: int  # 1 = FAKE, 0 = REAL
    original: str | None  # video_id of the real video a fake was made from (None for real videos)
    split: str | None  # the metadata's "split" field ("train" in the public parts), if any
    path: Path  # the video file (it may be absent: metadata is read without touching the videos)


def read_metadata(path: str | Path, root: str | Path | None = None) -> list[DfdcRecord]:
    """Parse one DFDC metadata.json; video ids are made relative to `root` (default: the file's folder)."""
    path = Path(path)
    folder = path.parent
    prefix = folder.relative_to(root) if root is not None else Path()
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read DFDC metadata ({err}); re-extract this part's archive") from err
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: expected a JSON object mapping video file names to entries")
    records = []
    for name, entry in sorted(entries.items()):
        label = entry.get("label") if isinstance(entry, dict) else None
        if label not in LABELS:
            raise ValueError(f"{path}: {name!r} has label {label!r}; DFDC labels are 'REAL' or 'FAKE'")
        original = entry.get("original")
        records.append(
            DfdcRecord(
                video_id=(prefix / Path(name).stem).as_posix(),
                label=LABELS[label],
                original=(prefix / Path(original).stem).as_posix() if original else None,
                split=entry.get("split"),
                path=folder / name,
            )
        )
    return records
