"""How faces are found and cut (`FaceOptions`), where a video's clips and record go, and reading back the options
a folder of clips was cut with (`recorded_options`: test videos are cut as the training clips were)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from faces.crop import CropPlan

SIDECAR = ".faces.json"


@dataclass(frozen=True)
class FaceOptions:
    """How faces are found and cut (the DFDC authors' recipe by default; recorded in each `.faces.json`)."""

    stride: int = 10  # detect in every stride-th frame
    detect_size: int = 960  # frames are shrunk to this longer side for detection (0: full size)
    min_score: float = 0.9  # MTCNN's face probability
    min_face: int = 20  # MTCNN's smallest face, pixels at the detection size
    min_iou: float = 0.3  # a detection joins a track if it overlaps its latest box this much
    max_missed: int = 1  # sampled frames in a row a track may go without a detection
    margin: float = 0.2  # the clip's box: the union of the face boxes grown by this fraction per side
    square: bool = True  # square boxes: resizing to size x size keeps the face's proportions
    size: int = 224  # clips are size x size pixels (0: the box's own size)
    split_frames: int = 150  # segments of this many frames, one clip each per track (0: whole videos)
    min_frames: int = 64  # shorter clips are set aside (reported, not written)
    reuse: bool = True  # a DFDC FAKE takes its original's tracks instead of detecting
    device: str = "cpu"  # where MTCNN runs (not recorded: it does not change the boxes beyond rounding)
    overwrite: bool | tuple[str, ...] = False  # True: redo every video; video ids: redo those

    def __post_init__(self):
        """Each bad option is a ValueError of one line naming it by its command-line flag."""
        for flag, value, least in (("--stride", self.stride, 1), ("--detect-size", self.detect_size, 0),
                                   ("--min-face", self.min_face, 1), ("--max-missed", self.max_missed, 0),
                                   ("--size", self.size, 0), ("--split-frames", self.split_frames, 0),
                                   ("--min-frames", self.min_frames, 1)):
            if value < least:
                raise ValueError(f"{flag} {value}: must be >= {least}")
        for flag, value in (("--min-score", self.min_score), ("--min-iou", self.min_iou)):
            if not 0 <= value <= 1:
                raise ValueError(f"{flag} {value}: must be between 0 and 1")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"--margin {self.margin}: must be >= 0 (a fraction of the face boxes' size per side)")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"--device {self.device!r}: use cpu, cuda or cuda:N")

    def overwrites(self, video_id: str) -> bool:
        return self.overwrite is True or (isinstance(self.overwrite, tuple) and video_id in self.overwrite)

    def recorded(self) -> dict:
        """The options that shape the clips (saved in `.faces.json`, compared on resume)."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "overwrite")}


def recorded_options(out: str | Path, **changes) -> FaceOptions:
    """The options the clips in OUT were cut with (their `.faces.json`), e.g. to cut test videos as the training
    clips were; `changes` go on top (device, reuse).

    Raises:
        FileNotFoundError when OUT holds no finished clips; ValueError when its clips were cut with different options.
    """
    seen = {}
    for sidecar in sorted(Path(out).rglob(f"*{SIDECAR}")):
        try:
            done = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if done.get("crops") and isinstance(done.get("options"), dict):
            seen.setdefault(json.dumps(done["options"], sort_keys=True), sidecar)
    if not seen:
        raise FileNotFoundError(f"{out}: no face clips with recorded options; give the --out folder of "
                                "tools/extract_faces.py")
    if len(seen) > 1:
        first, second = list(seen.values())[:2]
        raise ValueError(f"{out}: its clips were cut with different options ({first} and {second}); re-cut them "
                         "with one set (tools/extract_faces.py --overwrite)")
    known = set(FaceOptions.__dataclass_fields__)
    values = {k: v for k, v in json.loads(next(iter(seen))).items() if k in known and k not in ("overwrite", "device")}
    return FaceOptions(**{**values, **changes})


def sidecar_path(out: Path, video_id: str) -> Path:
    return Path(out) / f"{video_id}{SIDECAR}"


def crop_file(video_id: str, plan: CropPlan) -> str:
    """The clip's path relative to OUT: <video_id>_<track>_<segment>.avi."""
    return f"{video_id}_{plan.track}_{plan.segment}.avi"
