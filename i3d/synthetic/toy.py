"""A synthetic action dataset whose classes differ by motion, not by appearance.

Each video shows one textured shape moving over a textured background. The class is *how the shape moves*
(translate left/right/up/down, rotate clockwise/anticlockwise, zoom in/out); everything a single frame shows
(textures, colours, shape, size, position, background drift, sensor noise) is drawn from the same distribution
for every class. Classes come in mirror or time-reversed pairs (left/right, in/out, ...), so a single frame cannot
tell a class from its partner even in principle: only motion, which TV-L1 flow sees, separates them.

The files follow UCF101's layout so the demo exercises the real code path::

    DIR/videos/<ClassName>/v_<ClassName>_g<group>_c<clip>.avi   FFV1 (lossless), 25 fps
    DIR/classInd.txt       "1 MoveDown" ... (1-based, sorted class names)
    DIR/trainlist01.txt    "MoveDown/v_MoveDown_g03_c01.avi 1"
    DIR/testlist01.txt     "MoveDown/v_MoveDown_g01_c01.avi"
    DIR/toy_dataset.json   the generator's parameters (a re-run with the same ones skips finished videos)

As in UCF101, clips of one group share their scene (background, shape and textures) and test groups are never
seen in training (groups 1..test_groups are the test split). Unlike UCF101, a group's scene is the same in every
class: group 3 of MoveLeft and group 3 of ZoomIn show the same object over the same background. A network can then
not tell the classes apart by remembering which scene belongs to which class (with class-specific scenes, an RGB
I3D reached 0.77 training accuracy from scratch and 0.97 from Kinetics weights, but 0.06 and 0.16 on unseen scenes);
only the motion separates them. Every video is a pure function of (seed, class name, group, clip): adding a class
or videos leaves the existing ones unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.files import write_atomic
from flow.video import write_video

GENERATOR_VERSION = "2"  # 2: scenes shared by all classes
FOURCC = "FFV1"  # lossless: decoded frames equal the rendered ones, so flow sees exactly the motion we drew
TEXTURES = ("noise", "stripes", "checker", "blobs")
SHAPES = ("disc", "square", "triangle", "polygon")
_PATCH_RADIUS = 56  # object radius (px) in its own texture patch; frames scale the patch by radius / this


class ToyDatasetError(Exception):
    """Bad generator parameters or an output folder that cannot be (re)used; the message says what to do."""


@dataclass(frozen=True)
class Motion:
    """The motion of one class as unit directions; each video draws its own speed.

    dx, dy: translation direction (x right, y down). spin: +1 anticlockwise on screen, -1 clockwise.
    zoom: +1 grows (zoom in), -1 shrinks (zoom out).
    """

    dx: float = 0.0
    dy: float = 0.0
    spin: float = 0.0
    zoom: float = 0.0


_D = math.sqrt(0.5)
MOTIONS: dict[str, Motion] = {
    "MoveLeft": Motion(dx=-1.0),
    "MoveRight": Motion(dx=1.0),
    "MoveUp": Motion(dy=-1.0),
    "MoveDown": Motion(dy=1.0),
    "RotateClockwise": Motion(spin=-1.0),
    "RotateAnticlockwise": Motion(spin=1.0),
    "ZoomIn": Motion(zoom=1.0),
    "ZoomOut": Motion(zoom=-1.0),
    # not in the default set: diagonals, for harder variants (--classes MoveUpLeft MoveDownRight ...)
    "MoveUpLeft": Motion(dx=-_D, dy=-_D),
    "MoveUpRight": Motion(dx=_D, dy=-_D),
    "MoveDownLeft": Motion(dx=-_D, dy=_D),
    "MoveDownRight": Motion(dx=_D, dy=_D),
}
DEFAULT_CLASSES = tuple(list(MOTIONS)[:8])


@dataclass(frozen=True)
class ToyConfig:
    """Everything that decides the dataset's pixels. Defaults are `make demo`'s dataset, sized for 2 CPU cores.

    Ranges are (low, high) per video, drawn uniformly. Speeds are per frame: translation in pixels, rotation in
    degrees, zoom as a relative size change (0.03 = 3 %). Translation and zoom are reduced for a video when the
    full range would carry the object out of the frame within num_frames. The motion ranges are large for a 64x80
    frame on purpose: with rotations of 2-6 degrees and zooms of 2-5 % per frame (the first defaults) even a
    nearest-centroid classifier of the object's mean flow, curl and divergence in the stored TV-L1 flow scored only
    0.78 on unseen scenes, confusing rotation with zoom, and I3D did worse; at these ranges it scores 1.0.
    """

    height: int = 64
    width: int = 80
    num_frames: int = 12  # the training clip is 8 frames; whole videos (12) at test
    fps: float = 25.0
    classes: tuple[str, ...] = DEFAULT_CLASSES
    videos_per_class: int = 72  # 64 train + 8 test: 512 + 64 videos; many scenes are what makes I3D generalise
    clips_per_group: int = 1  # one video per scene and class (each scene is shared by all classes)
    test_groups: int = 8
    seed: int = 0
    speed: tuple[float, float] = (2.0, 4.5)
    spin_deg: tuple[float, float] = (8.0, 15.0)
    zoom: tuple[float, float] = (0.06, 0.1)
    radius: tuple[float, float] = (0.22, 0.35)  # object radius at the middle frame, as a fraction of the short side
    drift: float = 0.3  # maximum background speed (px/frame), random direction
    noise_std: tuple[float, float] = (1.0, 3.0)  # per-pixel Gaussian noise, 0-255 scale
    flicker: float = 0.015  # std of a per-frame brightness gain

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))
        for name in ("speed", "spin_deg", "zoom", "radius", "noise_std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        _validate(self)

    @property
    def num_groups(self) -> int:
        return math.ceil(self.videos_per_class / self.clips_per_group)


def _validate(cfg: ToyConfig) -> None:
    unknown = [c for c in cfg.classes if c not in MOTIONS]
    if unknown:
        raise ToyDatasetError(f"unknown toy class(es) {unknown}; choose from {sorted(MOTIONS)}")
    if len(cfg.classes) < 2 or len(set(cfg.classes)) != len(cfg.classes):
        raise ToyDatasetError(f"classes {list(cfg.classes)}: give at least two, without repeats")
    if min(cfg.height, cfg.width) < 32:
        raise ToyDatasetError(f"frame size {cfg.height}x{cfg.width} is too small: use at least 32x32")
    if cfg.num_frames < 2 or cfg.fps <= 0:
        raise ToyDatasetError(f"num_frames={cfg.num_frames}, fps={cfg.fps}: need at least 2 frames and fps > 0")
    if cfg.clips_per_group < 1 or cfg.videos_per_class < 1:
        raise ToyDatasetError(
            f"clips_per_group={cfg.clips_per_group}, videos_per_class={cfg.videos_per_class}: use >= 1"
        )
    if not 1 <= cfg.test_groups < cfg.num_groups:
        raise ToyDatasetError(
            f"videos_per_class={cfg.videos_per_class} in groups of {cfg.clips_per_group} makes {cfg.num_groups} "
            f"group(s); test_groups={cfg.test_groups} must leave at least one for training: add videos or lower it"
        )
    for name in ("speed", "spin_deg", "zoom", "radius", "noise_std"):
        low, high = getattr(cfg, name)
        if not 0 <= low <= high:
            raise ToyDatasetError(f"{name}=({low}, {high}) must satisfy 0 <= low <= high")
    if cfg.radius[1] >= 0.5 or cfg.radius[0] <= 0 or cfg.zoom[1] >= 0.5 or cfg.drift < 0 or cfg.flicker < 0:
        raise ToyDatasetError(
            f"radius={cfg.radius} must lie in (0, 0.5), zoom={cfg.zoom} below 0.5, drift and flicker >= 0"
        )


# ---------------------------------------------------------------- appearance: textures, colours, shapes


def make_texture(rng: np.random.Generator, kind: str, height: int, width: int, scale: float) -> np.ndarray:
    """A (height, width) float32 pattern in [0, 1]; scale is its period (stripes, checker) or feature size in pixels."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if kind == "noise":
        tex = _smooth_noise(rng, height, width, scale / 2)
    elif kind == "stripes":  # wavy: straight stripes would leave the motion along them unobservable (aperture)
        wave = 3.0 * np.pi * (_smooth_noise(rng, height, width, 1.5 * scale) - 0.5)
        tex = np.tanh(2.5 * np.sin(2 * np.pi * u / scale + wave))
    elif kind == "checker":
        tex = np.tanh(3.0 * np.sin(2 * np.pi * u / scale) * np.sin(2 * np.pi * v / scale))
    elif kind == "blobs":  # signed impulses blurred at three radii: Gaussian blobs of mixed sizes
        tex = np.zeros((height, width), np.float32)
        for sigma in (0.15 * scale, 0.25 * scale, 0.4 * scale):
            impulses = np.zeros((height, width), np.float32)
            count = max(3, int(height * width / (4 * sigma) ** 2))
            impulses[rng.integers(0, height, count), rng.integers(0, width, count)] = rng.choice([-1.0, 1.0], count)
            tex += cv2.GaussianBlur(impulses, (0, 0), sigma) * sigma**2
    else:
        raise ToyDatasetError(f"unknown texture {kind!r}; choose from {TEXTURES}")
    # stretch between percentiles, not min/max: smooth noise and blobs would otherwise stay a low-contrast grey
    low, high = np.percentile(tex, [5, 95])
    return np.clip((tex - low) / max(float(high - low), 1e-6), 0, 1).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Uniform random values on a grid of `cell` pixels, cubic-interpolated: (height, width) float32."""
    cell = max(2.0, cell)
    coarse = rng.random((int(height / cell) + 2, int(width / cell) + 2)).astype(np.float32)
    return cv2.resize(coarse, None, fx=cell, fy=cell, interpolation=cv2.INTER_CUBIC)[:height, :width]


def random_colours(rng: np.random.Generator, min_contrast: float = 90.0) -> np.ndarray:
    """Two RGB colours (2, 3) float32 in 0-255 whose grey levels differ by at least `min_contrast`.

    TV-L1 works on grey frames: two colours of similar luminance would make a texture it cannot track.
    """
    luma = np.array([0.299, 0.587, 0.114])
    while True:
        hsv = np.stack([rng.uniform(0, 360, 2), rng.uniform(0.1, 0.9, 2), rng.uniform(0.1, 1.0, 2)], axis=1)
        rgb = cv2.cvtColor(hsv[None].astype(np.float32), cv2.COLOR_HSV2RGB)[0] * 255.0
        if abs(float((rgb[0] - rgb[1]) @ luma)) >= min_contrast:
            return rgb


def colourise(texture: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map a [0, 1] texture onto the segment between two colours: (H, W) -> (H, W, 3) float32."""
    return colours[0] + texture[..., None] * (colours[1] - colours[0])


def shape_alpha(rng: np.random.Generator, kind: str, size: int, radius: float) -> np.ndarray:
    """Anti-aliased coverage (size, size) float32 in [0, 1] of a shape of outer radius centred in the patch."""
    canvas = np.zeros((size, size), np.uint8)
    centre = (size - 1) / 2
    shift = 4  # OpenCV draws with 1/16-px vertices
    if kind == "disc":
        c = int(round(centre * 2**shift))
        cv2.circle(canvas, (c, c), int(radius * 2**shift), 255, -1, cv2.LINE_AA, shift)
        return canvas.astype(np.float32) / 255
    if kind in ("square", "triangle"):
        n = 4 if kind == "square" else 3
        angles = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
        radii = np.full(n, radius)
    elif kind == "polygon":
        n = int(rng.integers(5, 9))  # jittered, not uniform, angles: uniform ones can make slivers
        angles = rng.uniform(0, 2 * np.pi) + (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * np.pi / n
        radii = rng.uniform(0.65, 1.0, n) * radius
    else:
        raise ToyDatasetError(f"unknown shape {kind!r}; choose from {SHAPES}")
    pts = np.stack([centre + radii * np.cos(angles), centre + radii * np.sin(angles)], axis=1)
    cv2.fillPoly(canvas, [np.round(pts * 2**shift).astype(np.int32)], 255, cv2.LINE_AA, shift)
    return canvas.astype(np.float32) / 255


@dataclass
class Scene:
    """What the clips of one group share: the background and the object's look (class-independent)."""

    background: np.ndarray  # (H + 2m, W + 2m, 3) float32 0-255, m = margin for the drift
    margin: int
    patch: np.ndarray  # (P, P, 4) float32: object RGB 0-255 and alpha 0-1, object radius _PATCH_RADIUS
    description: dict


def make_scene(rng: np.random.Generator, cfg: ToyConfig) -> Scene:
    margin = int(math.ceil(cfg.drift * (cfg.num_frames - 1))) + 2
    bg_kind, obj_kind, shape = rng.choice(TEXTURES), rng.choice(TEXTURES), rng.choice(SHAPES)
    short = min(cfg.height, cfg.width)
    bg_tex = make_texture(
        rng, bg_kind, cfg.height + 2 * margin, cfg.width + 2 * margin, rng.uniform(0.05, 0.12) * short
    )
    size = 2 * _PATCH_RADIUS + 4
    # Scaled to the top speed at the smallest object size: a periodic pattern moving by half its period per frame
    # aliases (TV-L1 sees it move backwards), so stripes and checks get 2.5-3.5x that; aperiodic ones can be finer.
    top_speed = max(cfg.speed[1], 2.0) * _PATCH_RADIUS / (cfg.radius[0] * short)  # in patch pixels
    periodic = obj_kind in ("stripes", "checker")
    obj_tex = make_texture(
        rng, obj_kind, size, size, rng.uniform(*((2.5, 3.5) if periodic else (1.5, 2.5))) * top_speed
    )
    alpha = shape_alpha(rng, shape, size, _PATCH_RADIUS)
    patch = np.dstack([colourise(obj_tex, random_colours(rng)), alpha]).astype(np.float32)
    background = colourise(bg_tex, random_colours(rng)).astype(np.float32)
    return Scene(background, margin, patch, {"background": str(bg_kind), "object": str(obj_kind), "shape": str(shape)})


# ---------------------------------------------------------------- motion and rendering


@dataclass
class ClipParams:
    """One video's motion: object centre, radius and angle per frame, background drift, noise."""

    centres: np.ndarray  # (T, 2) x, y in pixels
    radii: np.ndarray  # (T,) pixels
    angles: np.ndarray  # (T,) degrees, anticlockwise on screen
    drift: np.ndarray  # (2,) background px/frame
    noise_std: float
    gains: np.ndarray  # (T,) brightness flicker

    def affine(self, t: int) -> np.ndarray:
        """2x3 matrix mapping object-patch pixels to frame pixels at frame t."""
        size = 2 * _PATCH_RADIUS + 4
        centre = (size - 1) / 2
        # OpenCV's positive angle turns anticlockwise on screen (y points down)
        m = cv2.getRotationMatrix2D((centre, centre), float(self.angles[t]), float(self.radii[t] / _PATCH_RADIUS))
        m[:, 2] += self.centres[t] - centre
        return m


def sample_clip(rng: np.random.Generator, motion: Motion, cfg: ToyConfig) -> ClipParams:
    """Draw one video's motion of the given class; the object stays mostly inside the frame."""
    t = np.arange(cfg.num_frames) - (cfg.num_frames - 1) / 2  # time relative to the middle frame
    half = (cfg.num_frames - 1) / 2
    short = min(cfg.height, cfg.width)
    r_mid = rng.uniform(*cfg.radius) * short
    # zoom: the size stays within [0.05, 0.45] of the short side over the whole clip
    max_zoom = min(0.45 * short / r_mid, r_mid / (0.05 * short)) ** (1 / max(half, 1e-6)) - 1
    zoom = min(rng.uniform(*cfg.zoom), max_zoom)
    radii = r_mid * (1 + zoom) ** (motion.zoom * t)  # zoom out is zoom in played backwards
    spin = rng.uniform(*cfg.spin_deg) * motion.spin
    angles = rng.uniform(0, 360) + spin * t
    # translation: the centre travels inside the frame shrunk by half the largest radius
    margin = 0.5 * radii.max()
    room = np.array([cfg.width, cfg.height]) - 2 * margin
    direction = np.array([motion.dx, motion.dy])
    speed = rng.uniform(*cfg.speed) if direction.any() else 0.0
    travel = np.abs(direction) * 2 * half
    if speed > 0 and (travel * speed > room).any():
        speed = float(np.min(room[travel > 0] / travel[travel > 0]))
    velocity = direction * speed
    slack = room - np.abs(velocity) * 2 * half
    centre_mid = margin + np.abs(velocity) * half + slack * rng.random(2)
    centres = centre_mid + t[:, None] * velocity
    heading = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0, cfg.drift) * np.array([np.cos(heading), np.sin(heading)])
    gains = 1 + cfg.flicker * rng.standard_normal(cfg.num_frames)
    return ClipParams(centres, radii, angles, drift, float(rng.uniform(*cfg.noise_std)), gains)


@dataclass
class ToyClip:
    """A rendered video with its ground truth."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    alpha: np.ndarray  # (T, H, W) float32 object coverage
    params: ClipParams
    scene: Scene


def render(scene: Scene, params: ClipParams, rng: np.random.Generator, cfg: ToyConfig) -> ToyClip:
    """Draw every frame: drifting background, warped object on top, flicker and sensor noise."""
    h, w, m = cfg.height, cfg.width, scene.margin
    frames = np.empty((cfg.num_frames, h, w, 3), np.uint8)
    alphas = np.empty((cfg.num_frames, h, w), np.float32)
    for t in range(cfg.num_frames):
        # inverse map: frame (x, y) samples the background at (x + m - t*drift), so its content moves by +drift
        shift = np.float32([[1, 0, m - t * params.drift[0]], [0, 1, m - t * params.drift[1]]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        background = cv2.warpAffine(scene.background, shift, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
        patch = scene.patch
        scale = params.radii[t] / _PATCH_RADIUS
        if scale < 1:  # low-pass before shrinking so small objects do not alias (it would look like motion)
            patch = cv2.GaussianBlur(patch, (0, 0), 0.5 * math.sqrt(1 / scale**2 - 1))
        obj = cv2.warpAffine(patch, params.affine(t), (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        alpha = obj[..., 3:]
        frame = (background * (1 - alpha) + obj[..., :3] * alpha) * params.gains[t]
        frame += rng.normal(0, params.noise_std, frame.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(frame), 0, 255)
        alphas[t] = alpha[..., 0]
    return ToyClip(frames, alphas, params, scene)


def true_flow(clip: ToyClip, t: int) -> np.ndarray:
    """Ground-truth flow from frame t to t + 1, (H, W, 2) float32 px in OpenCV's convention.

    Object pixels (coverage >= 0.5 at frame t) follow the object's similarity transform; the rest the background
    drift. Pixels the object uncovers have no true correspondence; they get the background's motion.
    """
    h, w = clip.alpha.shape[1:]
    a0, a1 = np.vstack([clip.params.affine(t), [0, 0, 1]]), np.vstack([clip.params.affine(t + 1), [0, 0, 1]])
    step = (a1 @ np.linalg.inv(a0))[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    moved_x = step[0, 0] * xx + step[0, 1] * yy + step[0, 2]
    moved_y = step[1, 0] * xx + step[1, 1] * yy + step[1, 2]
    on_object = clip.alpha[t] >= 0.5
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0] = np.where(on_object, moved_x - xx, clip.params.drift[0])
    flow[..., 1] = np.where(on_object, moved_y - yy, clip.params.drift[1])
    return flow


_SCENE_KEY = 0x5CE7E  # scenes: (seed, _SCENE_KEY, group); clips: (seed, crc32 of the class name, group, clip)


def _rng(cfg: ToyConfig, key: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, key, *keys]))


def _class_key(class_name: str) -> int:
    # crc32 of the name, not its index, so a video does not change when the class list does
    return zlib.crc32(class_name.encode())


def make_clip(cfg: ToyConfig, class_name: str, group: int, clip: int) -> ToyClip:
    """Render video v_<class_name>_g<group>_c<clip> (1-based group and clip, as in UCF101)."""
    if class_name not in MOTIONS:
        raise ToyDatasetError(f"unknown toy class {class_name!r}; choose from {sorted(MOTIONS)}")
    scene = make_scene(_rng(cfg, _SCENE_KEY, group), cfg)  # the same in every class (module docstring)
    rng = _rng(cfg, _class_key(class_name), group, clip)
    return render(scene, sample_clip(rng, MOTIONS[class_name], cfg), rng, cfg)


# ---------------------------------------------------------------- files: videos and UCF101-style split lists


def video_name(class_name: str, group: int, clip: int) -> str:
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
        relative = f"{name}/{video_name(name, group, clip)}.avi"
        (test if is_test else train).append(relative if is_test else f"{relative} {labels[name]}")
    _write_text(out / "trainlist01.txt", train)
    _write_text(out / "testlist01.txt", test)


def config_to_dict(cfg: ToyConfig) -> dict:
    return {"generator_version": GENERATOR_VERSION, "fourcc": FOURCC, **json.loads(json.dumps(dataclasses.asdict(cfg)))}


def _prepare_out(out: Path, cfg: ToyConfig, overwrite: bool) -> None:
    """Check that `out` is new, empty or a toy dataset made with the same parameters (then it is resumed)."""
    meta = out / "toy_dataset.json"
    wanted = config_to_dict(cfg)
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


def make_dataset(
    out: Path, cfg: ToyConfig, *, overwrite: bool = False, progress: Callable[[str], None] | None = None
) -> dict:
    """Write the whole dataset under `out`; finished videos of a previous run with the same config are kept.

    `progress` is called with each video's path once it exists. Returns counts: {"written", "skipped", "train", "test"}.
    """
    out = Path(out)
    _prepare_out(out, cfg, overwrite)
    counts = {"written": 0, "skipped": 0, "train": 0, "test": 0}
    for name, group, clip, is_test in video_list(cfg):
        path = out / "videos" / name / f"{video_name(name, group, clip)}.avi"
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
