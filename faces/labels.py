"""DFDC labels in and out: the videos' `metadata.json` (label, original) and the crop folders' own `metadata.json`.

In: every folder holding videos may hold a DFDC `metadata.json` (`i3d.data.dfdc` reads it); a video listed there
gets its label, split and, for a FAKE, the video_id of its original (in the same folder).

Out: every output folder that holds labelled crops gets a `metadata.json` in the same format, one entry per crop
file, so that `i3d.data.dfdc.dfdc_index(OUT)` reads the crops as it reads DFDC:

    {"aaqaifqrwn_0_1.avi": {"label": "FAKE", "split": "train", "original": "vudstovrck_0_1.avi",
                            "source": "aaqaifqrwn.mp4", "track": 0, "segment": 1}, ...}

A FAKE crop's `original` is its original video's crop of the same track and segment (the boxes were shared, so the
two crops show the same face region), or null when that crop was not written. One shard of an array job writes
`metadata-shardIofN.json` instead (shards must not rewrite one file together); a final unsharded run writes
`metadata.json` with everything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.dfdc import CLASSES, read_metadata
from common.files import write_json


@dataclass(frozen=True)
class VideoLabel:
    """A video's DFDC entry: label "REAL" or "FAKE", split, and a FAKE's original (a video_id of this run)."""

    label: str
    split: str | None
    original: str | None


def read_dfdc_labels(videos: list[tuple[str, Path]]) -> dict[str, VideoLabel]:
    """{video_id: VideoLabel} for the videos that a `metadata.json` beside them lists."""
    by_file = {(path.resolve().parent, path.stem): video_id for video_id, path in videos}
    labels = {}
    for folder in sorted({path.resolve().parent for _, path in videos}):
        meta = folder / "metadata.json"
        if not meta.is_file():
            continue
        for record in read_metadata(meta, root=folder):  # ids relative to the folder: file stems
            video_id = by_file.get((folder, record.video_id))
            if video_id is None:
                continue  # listed but not among the videos of this run
            original = None
            if record.original:
                original = (Path(video_id).parent / record.original).as_posix()
            labels[video_id] = VideoLabel(CLASSES[record.label], record.split, original)
    return labels


def crop_entries(records: list[dict], labels: dict[str, VideoLabel], crops_of: dict[str, list[dict]]) -> dict:
    """{output folder (relative): {crop file name: entry}} for the labelled videos' crops.

    Args:
        records: the run's video records (each with `video_id`, `source` and `crops`).
        labels: from `read_dfdc_labels`.
        crops_of: {video_id: its crops} for every video whose crops are known (originals from earlier runs too).
    """
    folders: dict[str, dict] = {}
    for record in records:
        label = labels.get(record["video_id"])
        if label is None:
            continue
        originals = {(c["track"], c["segment"]): c["file"] for c in crops_of.get(label.original or "", [])}
        for crop in record.get("crops", []):
            original = originals.get((crop["track"], crop["segment"]))
            entry = {
                "label": label.label,
                "split": label.split,
                "original": Path(original).name if original else None,
                "source": Path(record["source"]).name,
                "track": crop["track"],
                "segment": crop["segment"],
            }
            folders.setdefault(Path(crop["file"]).parent.as_posix(), {})[Path(crop["file"]).name] = entry
    return folders


def write_crop_metadata(out: Path, records: list[dict], folders: dict[str, dict], suffix: str = "") -> list[Path]:
    """Merge `folders` (see `crop_entries`) into OUT/<folder>/metadata{suffix}.json; the entries of the videos in
    `records` are replaced whole (a redone video may have fewer crops now), the others kept. Returns the files."""
    redone = {Path(r["source"]).name for r in records}
    written = []
    for folder in sorted(set(folders) | {Path(r["video_id"]).parent.as_posix() for r in records}):
        path = out / folder / f"metadata{suffix}.json"
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet (or not ours): this run's entries are all there is
            old = {}
        old = old if isinstance(old, dict) else {}
        kept = {k: v for k, v in old.items() if isinstance(v, dict) and v.get("source") not in redone}
        entries = dict(sorted({**kept, **folders.get(folder, {})}.items()))
        if entries or old:
            write_json(path, entries)
            written.append(path)
    return written
