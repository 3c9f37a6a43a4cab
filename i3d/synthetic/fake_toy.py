"""A generated real/fake video dataset laid out like the Deepfake Detection Challenge (DFDC) training set.

Every REAL video shows a textured "face" (a soft-edged ellipse with its own skin-like texture, two eyes and a
mouth) drifting over a drifting background. A FAKE video is made from one REAL video (its "original", as in DFDC):
the same scene and motion, but inside the face the texture is blended with another real video's face texture and
warped by a small displacement field that changes from frame to frame, with a slightly mismatched blending mask.
Everything outside the face is identical to the original, so only the face region (and its temporal wobble)
tells the classes apart - the artefacts face-swap detectors look for, in miniature.

    OUT/train/dfdc_train_part_0/<name>.mp4 ... metadata.json   {"<name>.mp4": {"label": "FAKE", "split": "train",
    OUT/val/dfdc_train_part_1/...                                             "original": "<real>.mp4"}, ...}
    OUT/fake_dataset.json                                      the generator's parameters

Each part holds `reals_per_part` REAL videos and `fakes_per_real` FAKEs made from each, so FAKE outnumbers REAL as
in DFDC (about 5:1 there). Every video is a pure function of (seed, part, index): the dataset is reproducible.
Read it with `i3d.data.dfdc.dfdc_index(OUT / "train")`.
"""

from __future__ import annotations

import dataclasses
import json
import string
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flow.video import write_video

# numpy's SeedSequence ignores trailing zero words ([0, 0] seeds like [0, 0, 0, 0]), so every seed list ends in a tag
_REAL_TAG, _FAKE_TAG = 0x5EA1, 0xFA4E
VIDEO_CODECS = {"mp4v": ".mp4", "FFV1": ".avi"}  # mp4 as in DFDC (lossy); FFV1 keeps every pixel exactly as rendered


class FakeDatasetError(Exception):
    """Bad generator parameters or an unusable output folder; the message says what to do."""


@dataclass(frozen=True)
class FakeToyConfig:
    """Everything that decides the dataset. Defaults are small enough for a CPU test.

    Attributes:
        height, width, num_frames, fps: video geometry and rate.
        reals_per_part: REAL videos per DFDC part; each part also gets `fakes_per_real` FAKEs per REAL.
        train_parts, val_parts: number of parts under OUT/train and OUT/val.
        blend: weight of the donor face texture inside a FAKE face (0 = no blend).
        warp_px: amplitude in pixels of the frame-to-frame warp inside a FAKE face (0 = no warp).
        codec: "mp4v" (.mp4, lossy, as in DFDC) or "FFV1" (.avi, lossless).
        seed: base seed.
    """

    height: int = 48
    width: int = 64
    num_frames: int = 12
    fps: float = 25.0
    reals_per_part: int = 4
    fakes_per_real: int = 2
    train_parts: int = 1
    val_parts: int = 1
    blend: float = 0.35
    warp_px: float = 1.5
    codec: str = "mp4v"
    seed: int = 0

    def __post_init__(self):
        if min(self.height, self.width) < 16 or self.num_frames < 2 or self.fps <= 0:
            raise FakeDatasetError(f"video {self.height}x{self.width}, {self.num_frames} frames at {self.fps} fps: "
                                   "use at least 16x16 pixels, 2 frames and fps > 0")
        if self.reals_per_part < 2 or self.fakes_per_real < 0 or self.train_parts < 1 or self.val_parts < 0:
            raise FakeDatasetError(f"reals_per_part={self.reals_per_part} (>= 2: a fake needs a donor), "
                                   f"fakes_per_real={self.fakes_per_real} (>= 0), train_parts={self.train_parts} "
                                   f"(>= 1), val_parts={self.val_parts} (>= 0)")
        if not 0 <= self.blend <= 1 or self.warp_px < 0:
            raise FakeDatasetError(f"blend={self.blend} must lie in [0, 1] and warp_px={self.warp_px} be >= 0")
        if self.codec not in VIDEO_CODECS:
            raise FakeDatasetError(f"codec={self.codec!r} is not one of {sorted(VIDEO_CODECS)}")


@dataclass(frozen=True)
class FaceScene:
    """What one REAL video shows; a FAKE re-renders its original's scene with a donor's face texture."""

    background: np.ndarray  # (2H, 2W, 3) float32 texture, larger than a frame so it can drift
    face: np.ndarray  # (H, W, 3) float32 face texture in frame coordinates at the first frame
    center: tuple[float, float]  # face centre (x, y) at frame 0
    axes: tuple[float, float]  # ellipse half-axes (x, y)
    face_velocity: tuple[float, float]  # px per frame
    background_velocity: tuple[float, float]


# ---------------------------------------------------------------- rendering


def _smooth_texture(rng: np.random.Generator, height: int, width: int, cell: int, low: float, high: float,
                    tint: np.ndarray) -> np.ndarray:
    """Smooth random texture (H, W, 3) float32 in [low, high] * tint: upsampled noise, colour by `tint`."""
    noise = rng.random((height // cell + 2, width // cell + 2)).astype(np.float32)
    gray = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    gray = (gray - gray.min()) / (np.ptp(gray) + 1e-6)
    return (low + (high - low) * gray)[..., None] * tint[None, None, :]


def make_face_scene(cfg: FakeToyConfig, rng: np.random.Generator) -> FaceScene:
    """Draw one scene: background, face texture (skin tone, eyes, mouth), position and motions."""
    h, w = cfg.height, cfg.width
    background = _smooth_texture(rng, 2 * h, 2 * w, 6, 40, 200, rng.uniform(0.6, 1.0, 3).astype(np.float32))
    skin = np.asarray([1.0, rng.uniform(0.7, 0.85), rng.uniform(0.55, 0.7)], np.float32)
    face = _smooth_texture(rng, h, w, 3, 120, 230, skin)
    axes = (w * rng.uniform(0.16, 0.22), h * rng.uniform(0.26, 0.32))
    center = (w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.08, 0.08) * h)
    cx, cy = center
    for dx in (-0.4, 0.4):  # eyes and mouth, drawn into the face texture so they move with it
        cv2.circle(face, (round(cx + dx * axes[0]), round(cy - 0.25 * axes[1])), max(1, round(0.12 * axes[0])),
                   (40.0, 30.0, 30.0), -1, cv2.LINE_AA)
    cv2.ellipse(face, (round(cx), round(cy + 0.45 * axes[1])), (max(1, round(0.35 * axes[0])), 1), 0, 0, 360,
                (90.0, 30.0, 40.0), -1, cv2.LINE_AA)
    speed = rng.uniform(0.2, 0.6)
    angle = rng.uniform(0, 2 * np.pi)
    return FaceScene(background, face, center, axes, (speed * np.cos(angle), speed * np.sin(angle)),
                     tuple(rng.uniform(-0.5, 0.5, 2)))


def _face_mask(h: int, w: int, center, axes, grow: float = 0.0) -> np.ndarray:
    """Soft ellipse mask (H, W, 1) float32 in [0, 1]; `grow` enlarges the half-axes by that many pixels."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((x - center[0]) / (axes[0] + grow)) ** 2 + ((y - center[1]) / (axes[1] + grow)) ** 2)
    return np.clip((1.15 - r) / 0.3, 0.0, 1.0)[..., None]


def _shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)


def _wobble(image: np.ndarray, amplitude: float, t: int, phase: float) -> np.ndarray:
    """Warp `image` by a smooth sinusoidal displacement whose phase moves every frame (a temporal flicker)."""
    h, w = image.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    arg = 2 * np.pi * (x / max(w, 1) + y / max(h, 1)) * 1.5 + phase + 1.3 * t
    map_x = (x + amplitude * np.sin(arg)).astype(np.float32)
    map_y = (y + amplitude * np.cos(arg * 0.7)).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def render_face_video(cfg: FakeToyConfig, scene: FaceScene, donor: FaceScene | None = None,
                      fake_rng: np.random.Generator | None = None) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 RGB of `scene`; with a `donor`, the FAKE version (blended, warped face)."""
    h, w = cfg.height, cfg.width
    phase = float(fake_rng.uniform(0, 2 * np.pi)) if fake_rng is not None else 0.0
    grow = float(fake_rng.uniform(0.5, 1.5)) if fake_rng is not None else 0.0  # the swapped face's mask is a bit off
    face = scene.face if donor is None else (1 - cfg.blend) * scene.face + cfg.blend * donor.face
    frames = []
    for t in range(cfg.num_frames):
        bx, by = (t * v for v in scene.background_velocity)
        background = _shift(scene.background, bx - w / 2, by - h / 2)[:h, :w]
        fx, fy = (t * v for v in scene.face_velocity)
        center = (scene.center[0] + fx, scene.center[1] + fy)
        moved = _shift(face, fx, fy)
        if donor is not None and cfg.warp_px > 0:
            moved = _wobble(moved, cfg.warp_px, t, phase)
        mask = _face_mask(h, w, center, scene.axes, grow)
        frames.append(background * (1 - mask) + moved * mask)
    return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- files


def dfdc_video_name(rng: np.random.Generator) -> str:
    """A DFDC-like 10-letter name, e.g. "aaqaifqrwn"."""
    return "".join(rng.choice(list(string.ascii_lowercase), 10))


def make_part(cfg: FakeToyConfig, folder: Path, part: int) -> dict:
    """Render one DFDC part into `folder` (videos + metadata.json) and return its metadata dict."""
    rng = np.random.default_rng([cfg.seed, part, _REAL_TAG])
    ext = VIDEO_CODECS[cfg.codec]
    reals = [(dfdc_video_name(rng) + ext, make_face_scene(cfg, rng)) for _ in range(cfg.reals_per_part)]
    metadata = {}
    for k, (name, scene) in enumerate(reals):
        write_video(folder / name, render_face_video(cfg, scene), cfg.fps, fourcc=cfg.codec)
        metadata[name] = {"label": "REAL", "split": "train", "original": None}
        for j in range(cfg.fakes_per_real):
            donor = reals[(k + 1 + j % (len(reals) - 1)) % len(reals)][1]  # another real video of the part
            fake_rng = np.random.default_rng([cfg.seed, part, k, j, _FAKE_TAG])
            fake = dfdc_video_name(fake_rng) + ext
            write_video(folder / fake, render_face_video(cfg, scene, donor, fake_rng), cfg.fps, fourcc=cfg.codec)
            metadata[fake] = {"label": "FAKE", "split": "train", "original": name}
    if len(metadata) != cfg.reals_per_part * (1 + cfg.fakes_per_real):
        raise FakeDatasetError(f"{folder}: two videos drew the same name; change the seed ({cfg.seed})")
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
    return metadata


def make_fake_dataset(out: str | Path, cfg: FakeToyConfig = FakeToyConfig(), *, overwrite: bool = False) -> dict:
    """Write the dataset under `out` (train/ and val/ folders of DFDC parts) and return a summary.

    Args:
        out: output folder; it must not hold a dataset already unless `overwrite`.
        cfg: generator parameters (saved as out/fake_dataset.json).
        overwrite: replace the videos and metadata of an existing dataset.

    Returns:
        {"train": [part folders], "val": [part folders], "num_real": n, "num_fake": n}.
    """
    out = Path(out)
    if (out / "fake_dataset.json").exists() and not overwrite:
        raise FakeDatasetError(f"{out} already holds a generated dataset; pass overwrite=True (--overwrite) "
                               "or choose another folder")
    summary = {"train": [], "val": [], "num_real": 0, "num_fake": 0}
    for part in range(cfg.train_parts + cfg.val_parts):
        side = "train" if part < cfg.train_parts else "val"
        folder = out / side / f"dfdc_train_part_{part}"
        metadata = make_part(cfg, folder, part)
        summary[side].append(str(folder))
        summary["num_real"] += sum(e["label"] == "REAL" for e in metadata.values())
        summary["num_fake"] += sum(e["label"] == "FAKE" for e in metadata.values())
    (out / "fake_dataset.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    return summary
