"""A synthetic action dataset whose classes need both streams: the object's colour and how it moves.

Each video shows one textured shape moving over a textured background. A class name is a motion (translate
left/right/up/down, rotate clockwise/anticlockwise, zoom in/out), optionally prefixed by a colour family of the
object: "RedMoveLeft", "BlueRotateClockwise", or plain "MoveLeft" (any colour). Everything else a frame shows
(textures, shape, size, position, background drift, sensor noise) is drawn from the same distribution for every
class. Motions come in mirror or time-reversed pairs (left/right, in/out, ...), so a single frame cannot tell a
motion from its partner; TV-L1 flow, computed on grey frames, cannot see the hue. The default classes cross two
colours with four motions: the RGB stream can name the colour and the flow stream the motion, and only together
(two-stream fusion) do they name the class. Plain motion classes make a dataset that only motion separates.

Clips of one group share their scene (background, shape and textures), as in UCF101, and unlike UCF101 a group's
scene is the same in every class: group 3 of RedMoveLeft and group 3 of BlueZoomIn show the same object over the
same background, only its colours drawn from another family. A network can then not tell the classes apart by
remembering which scene belongs to which class (docs/DEMO.md: such networks failed on unseen scenes). Every video is
a pure function of (seed, class name, group, clip): adding a class or videos leaves the existing ones unchanged.
`i3d.synthetic.toy_dataset` writes the videos and split lists.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from i3d.synthetic.toy_textures import LUMA, SHAPES, TEXTURES, colourise, make_texture, random_colours, shape_alpha

GENERATOR_VERSION = "3"  # 2: scenes shared by all classes; 3: colour classes
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
MOTION_CLASSES = tuple(list(MOTIONS)[:8])  # a dataset that only motion separates
# hue (degrees) at the centre of each colour family of the object
COLOURS: dict[str, float] = {"Red": 0.0, "Blue": 220.0}
# mirror pairs whose direction a few raw frames show poorly (rotation) or well (translation)
DEMO_MOTIONS = ("MoveLeft", "MoveRight", "RotateClockwise", "RotateAnticlockwise")
DEFAULT_CLASSES = tuple(colour + motion for colour in COLOURS for motion in DEMO_MOTIONS)


def class_parts(name: str) -> tuple[str | None, Motion]:
    """A class name's colour family (None: any colour) and motion: "RedMoveLeft" -> ("Red", MOTIONS["MoveLeft"])."""
    if name in MOTIONS:
        return None, MOTIONS[name]
    for colour in COLOURS:
        if name.startswith(colour) and name[len(colour) :] in MOTIONS:
            return colour, MOTIONS[name[len(colour) :]]
    raise ToyDatasetError(
        f"unknown toy class {name!r}: use a motion ({', '.join(MOTIONS)}), optionally prefixed by a colour "
        f"({', '.join(COLOURS)}), e.g. {DEFAULT_CLASSES[0]}"
    )


@dataclass(frozen=True)
class ToyConfig:
    """Everything that decides the dataset's pixels. Defaults are `make demo`'s dataset, sized for 2 CPU cores.

    Ranges are (low, high) per video, drawn uniformly. Speeds are per frame: translation in pixels, rotation in
    degrees, zoom as a relative size change (0.03 = 3 %). Translation and zoom are reduced for a video when the
    full range would carry the object out of the frame within num_frames. The motion ranges are large for frames
    this small on purpose: TV-L1 recovers only part of a small rotation or zoom, and with smaller ranges even a
    classifier of hand-made flow statistics confused rotation with zoom (docs/DEMO.md).
    """

    height: int = 48
    width: int = 64
    num_frames: int = 10  # the training clip is 8 frames; whole videos at test
    fps: float = 25.0
    classes: tuple[str, ...] = DEFAULT_CLASSES
    videos_per_class: int = 48  # 40 train + 8 test; many scenes seen few times are what makes I3D generalise
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
    for name in cfg.classes:
        class_parts(name)
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


# ---------------------------------------------------------------- scenes: what the clips of a group share


@dataclass
class Scene:
    """What the clips of one group share: the background and the object's look (class-independent)."""

    background: np.ndarray  # (H + 2m, W + 2m, 3) float32 0-255, m = margin for the drift
    margin: int
    patch: np.ndarray  # (P, P, 4) float32: object RGB 0-255 and alpha 0-1, object radius _PATCH_RADIUS
    texture: np.ndarray  # (P, P) float32 in [0, 1]: the object's pattern before colouring
    description: dict


def make_scene(rng: np.random.Generator, cfg: ToyConfig) -> Scene:
    """Draw a group's background, object shape and object texture, coloured with any colours."""
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
    description = {"background": str(bg_kind), "object": str(obj_kind), "shape": str(shape)}
    return Scene(background, margin, patch, obj_tex, description)


def recolour(scene: Scene, rng: np.random.Generator, hue: float) -> Scene:
    """The scene with its object in a colour family around `hue` and a greyish background.

    The background keeps a quarter of its saturation, so that the object's colour is the one strong colour in the
    frame; its grey levels do not change, so the motion TV-L1 sees stays what it was.
    """
    grey = scene.background @ LUMA.astype(np.float32)
    background = grey[..., None] + 0.25 * (scene.background - grey[..., None])
    colours = random_colours(rng, hue=hue)
    patch = np.dstack([colourise(scene.texture, colours), scene.patch[..., 3]]).astype(np.float32)
    return dataclasses.replace(scene, background=background.astype(np.float32), patch=patch)


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
    colour, motion = class_parts(class_name)
    scene = make_scene(_rng(cfg, _SCENE_KEY, group), cfg)  # the same in every class (module docstring)
    if colour is not None:  # the same in every class of this colour
        scene = recolour(scene, _rng(cfg, _SCENE_KEY, group, _class_key(colour)), COLOURS[colour])
    rng = _rng(cfg, _class_key(class_name), group, clip)
    return render(scene, sample_clip(rng, motion, cfg), rng, cfg)
