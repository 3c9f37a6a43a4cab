"""Videos of real faces with known boxes: a camera window that pans and zooms over a photograph.

scikit-image ships real photographs (`skimage.data.astronaut()`: Eileen Collins, frontal; `camera()`: a man
looking through a camera, three-quarter view). Their faces were marked by hand (`PHOTO_FACES`: eyebrows to chin,
ear to ear, in the photo's pixels). A window moving and zooming over the photo gives a video in which every frame's
face box is that box mapped through the window, so face detection and tracking can be checked on real faces
against exact expectations (`tests/faces`, `benchmarks/bench_faces.py`).

    photo, boxes = side_by_side([load_photo("astronaut"), load_photo("camera")])   # two people, two boxes
    frames, truth = pan_zoom_video(photo, boxes, num_frames=40, size=(120, 160), zoom=(0.35, 0.5))
    # frames (40, 120, 160, 3) uint8 RGB; truth (40, 2, 4): each face's (x0, y0, x1, y1) in each frame

scikit-image is a dev dependency (`pip install -e '.[dev]'`); only `load_photo` imports it.
"""

from __future__ import annotations

import cv2
import numpy as np

# (x0, y0, x1, y1) of each face in the photo as scikit-image ships it (512 x 512), marked by hand
PHOTO_FACES = {
    "astronaut": [(178, 70, 268, 175)],
    "camera": [(200, 118, 256, 192)],
}
NO_FACE_PHOTOS = ("rocket", "coffee")  # real photographs without a face, for "no face" videos


def load_photo(name: str) -> np.ndarray:
    """A scikit-image photograph as (H, W, 3) uint8 RGB (grey ones are repeated over the channels)."""
    import skimage.data

    photo = getattr(skimage.data, name)()
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    return np.ascontiguousarray(photo[..., :3])


def photo_faces(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(photo, boxes (F, 4) float) for a photo of `PHOTO_FACES` or `NO_FACE_PHOTOS` (then F = 0)."""
    return load_photo(name), np.asarray(PHOTO_FACES.get(name, []), np.float64).reshape(-1, 4)


def side_by_side(photos: list[tuple[np.ndarray, np.ndarray]], height: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Photos resized to one height and put next to each other; their face boxes follow. Returns (photo, boxes)."""
    tiles, boxes, x = [], [], 0.0
    for photo, faces in photos:
        scale = height / photo.shape[0]
        tile = cv2.resize(photo, (round(photo.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
        boxes.append(np.asarray(faces, np.float64).reshape(-1, 4) * scale + [x, 0, x, 0])
        tiles.append(tile)
        x += tile.shape[1]
    return np.concatenate(tiles, axis=1), np.concatenate(boxes)


def window_path(num_frames: int, photo_shape: tuple[int, int], *, center: tuple[float, float] | None = None,
                amplitude: tuple[float, float] = (30.0, 20.0), zoom: tuple[float, float] = (0.5, 0.7),
                cycles: float = 1.0) -> np.ndarray:
    """A smooth camera path: (num_frames, 3) rows of (cx, cy, zoom), the window's centre in the photo and its scale.

    The centre traces an ellipse of `amplitude` pixels around `center` (the photo's centre by default) `cycles`
    times; the zoom goes from zoom[0] to zoom[1] and back (a frame shows the photo at that scale).
    """
    t = np.arange(num_frames) / max(num_frames - 1, 1)
    cx, cy = center if center is not None else (photo_shape[1] / 2, photo_shape[0] / 2)
    phase = 2 * np.pi * cycles * t
    z = zoom[0] + (zoom[1] - zoom[0]) * (1 - np.cos(phase)) / 2
    return np.stack([cx + amplitude[0] * np.sin(phase), cy + amplitude[1] * (1 - np.cos(phase)) / 2, z], axis=1)


def pan_zoom_video(photo: np.ndarray, boxes: np.ndarray, num_frames: int, size: tuple[int, int] = (240, 320),
                   path: np.ndarray | None = None, **path_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Frames seen through a moving window over `photo`, and where each face box is in each frame.

    Args:
        photo: (H, W, 3) uint8 RGB.
        boxes: (F, 4) face boxes (x0, y0, x1, y1) in the photo's pixels.
        num_frames: frames to make.
        size: (height, width) of the frames.
        path: (num_frames, 3) rows of (cx, cy, zoom) (see `window_path`, which makes one from `path_kwargs`).

    Returns:
        frames (T, h, w, 3) uint8 RGB (outside the photo: black), boxes (T, F, 4) float64 in frame pixels.
    """
    h, w = size
    if path is None:
        path = window_path(num_frames, photo.shape[:2], **path_kwargs)
    frames, truth = [], []
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    for cx, cy, z in path:
        # frame point (u, v) shows photo point ((u - w/2) / z + cx, (v - h/2) / z + cy); shrinking goes through
        # INTER_AREA first, as a camera's sensor averages, so that small faces are not aliased
        scaled = cv2.resize(photo, None, fx=z, fy=z, interpolation=cv2.INTER_AREA if z < 1 else cv2.INTER_LINEAR)
        m = np.float64([[1, 0, w / 2 - z * cx], [0, 1, h / 2 - z * cy]])
        frames.append(cv2.warpAffine(scaled, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))
        truth.append((boxes - [cx, cy, cx, cy]) * z + [w / 2, h / 2, w / 2, h / 2])
    return np.stack(frames), np.stack(truth).reshape(len(path), len(boxes), 4)


# -- the scenes of the tests and the benchmark -------------------------------------------------------------------
def two_people_video(num_frames: int = 60, size: tuple[int, int] = (180, 320)) -> tuple[np.ndarray, np.ndarray]:
    """Eileen Collins (frontal) and the cameraman (three-quarter view) side by side, the window panning slowly over
    both (faces 24-45 px at 180x320). Returns frames and boxes (T, 2, 4): [astronaut, cameraman]."""
    photo, boxes = side_by_side([photo_faces("astronaut"), photo_faces("camera")])
    scale = size[0] / 180
    return pan_zoom_video(photo, boxes, num_frames, size=size, center=(480, 190), amplitude=(30, 20),
                          zoom=(0.42 * scale, 0.48 * scale))


def astronaut_video(num_frames: int = 60, size: tuple[int, int] = (180, 320)) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut alone, panned and zoomed (face 40-60 px at 180x320). Returns frames and boxes (T, 1, 4)."""
    photo, boxes = photo_faces("astronaut")
    scale = size[0] / 180
    return pan_zoom_video(photo, boxes, num_frames, size=size, center=(230, 150), amplitude=(40, 30),
                          zoom=(0.45 * scale, 0.6 * scale))


def no_face_video(num_frames: int = 30, size: tuple[int, int] = (180, 320), name: str = "rocket") -> np.ndarray:
    """A window over a photograph without a face. Returns frames."""
    photo, boxes = photo_faces(name)
    return pan_zoom_video(photo, boxes, num_frames, size=size, zoom=(0.5, 0.6))[0]


def fake_of(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """A stand-in for a face swap: the same video with the first face's region blurred and tinted."""
    fake = frames.copy()
    for frame, (x0, y0, x1, y1) in zip(fake, boxes[:, 0].round().astype(int), strict=True):
        x0, y0 = max(x0, 0), max(y0, 0)
        region = frame[y0:y1, x0:x1]
        if region.size:
            frame[y0:y1, x0:x1] = np.clip(cv2.GaussianBlur(region, (5, 5), 0) * [1.1, 0.95, 0.95], 0, 255)
    return fake
