"""Write the synthetic motion dataset (`i3d.synthetic.toy`) to disk in UCF101's layout, resumably.

The files follow UCF101's layout so the demo exercises the real code path::

    DIR/videos/<ClassName>/v_<ClassName>_g<group>_c<clip>.avi   FFV1 (lossless), 25 fps
    DIR/classInd.txt       "1 BlueMoveLeft" ... (1-based, sorted class names)
    DIR/trainlist01.txt    "BlueMoveLeft/v_BlueMoveLeft_g09_c01.avi 1"
    DIR/testlist01.txt     "BlueMoveLeft/v_BlueMoveLeft_g01_c01.avi"
    DIR/toy_dataset.json   the generator's parameters (a re-run with the same ones skips finished videos)

As in UCF101, groups 1..test_groups are the test split, so test scenes are never seen in training.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from common.files import write_atomic
from flow.video import write_video
from i3d.synthetic.toy import GENERATOR_VERSION, ToyConfig, ToyDatasetError, make_clip

FOURCC = "FFV1"  # lossless: decoded frames equal the rendered ones, so flow sees exactly the motion we drew


def ucf101_video_name(class_name: str, group: int, clip: int) -> str:
    """UCF101's file name pattern, `v_<class>_g<group>_c<clip>` (what its split files and `i3d.data.index` expect)."""
    return f"v_{class_name}_g{group:02d}_c{clip:02d}"


def video_list(cfg: ToyConfig) -> list[tuple[str, int, int, bool]]:
    """(class_name, group, clip, is_test) of every video, classes sorted as in classInd.txt."""
    out = []
    for name in sorted(cfg.classes):
        for k in range(cfg.videos_per_class):
            group, clip = k // cfg.clips_per_group + 1, k % cfg.clips_per_group + 1
            out.append((name, group, clip, group <= cfg.test_groups))
    return out


def _write_text(path: Path, lines: list[str]) -> None:
    write_atomic(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8"))


def write_split_files(out: Path, cfg: ToyConfig) -> None:
    """classInd.txt, trainlist01.txt and testlist01.txt in UCF101's format (labels 1-based, sorted names)."""
    names = sorted(cfg.classes)
    labels = {name: i + 1 for i, name in enumerate(names)}
    _write_text(out / "classInd.txt", [f"{labels[n]} {n}" for n in names])
    train, test = [], []
    for name, group, clip, is_test in video_list(cfg):
        relative = f"{name}/{ucf101_video_name(name, group, clip)}.avi"
        (test if is_test else train).append(relative if is_test else f"{relative} {labels[name]}")
    _write_text(out / "trainlist01.txt", train)
    _write_text(out / "testlist01.txt", test)


def toy_dataset_meta(cfg: ToyConfig) -> dict:
    """What toy_dataset.json records: the generator's version, codec and parameters (a rerun compares them)."""
    return {"generator_version": GENERATOR_VERSION, "fourcc": FOURCC, **json.loads(json.dumps(dataclasses.asdict(cfg)))}


def _prepare_out(out: Path, cfg: ToyConfig, overwrite: bool) -> None:
    """Check that `out` is new, empty or a toy dataset made with the same parameters (then it is resumed)."""
    meta = out / "toy_dataset.json"
    wanted = toy_dataset_meta(cfg)
    if meta.exists():
        try:
            found = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ToyDatasetError(f"{meta} is unreadable ({err}); delete {out} or pass --overwrite") from err
        if found != wanted and not overwrite:
            diff = {k: (found.get(k), v) for k, v in wanted.items() if found.get(k) != v}
            raise ToyDatasetError(
                f"{out} holds a toy dataset made with other parameters (found, wanted): {diff}; "
                "pass --overwrite to regenerate it, or choose another --out"
            )
        if found != wanted or overwrite:
            shutil.rmtree(out / "videos", ignore_errors=True)
    elif out.exists() and any(out.iterdir()):
        raise ToyDatasetError(f"{out} is not empty and has no toy_dataset.json; choose a new or empty --out")
    out.mkdir(parents=True, exist_ok=True)
    _write_text(meta, [json.dumps(wanted, indent=2)])


def write_toy_dataset(
    out: Path, cfg: ToyConfig, *, overwrite: bool = False, progress: Callable[[str], None] | None = None
) -> dict:
    """Write the whole dataset under `out`; finished videos of a previous run with the same config are kept.

    `progress` is called with each video's path once it exists. Returns counts: {"written", "skipped", "train", "test"}.
    """
    out = Path(out)
    _prepare_out(out, cfg, overwrite)
    counts = {"written": 0, "skipped": 0, "train": 0, "test": 0}
    for name, group, clip, is_test in video_list(cfg):
        path = out / "videos" / name / f"{ucf101_video_name(name, group, clip)}.avi"
        counts["test" if is_test else "train"] += 1
        if path.exists():  # written atomically, so an existing file is complete
            counts["skipped"] += 1
        else:
            write_video(path, make_clip(cfg, name, group, clip).frames, cfg.fps, fourcc=FOURCC)
            counts["written"] += 1
        if progress is not None:
            progress(str(path))
    write_split_files(out, cfg)
    return counts
