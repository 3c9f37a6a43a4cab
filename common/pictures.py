"""Pictures for people to look at: tiles put in rows and columns, captions, boxes, and PNG files.

Every image is (H, W, 3) uint8 RGB; plain numpy and OpenCV. The previews of stores (`flow.preview`), model input
(`i3d.data.pictures`, the trainer's TensorBoard pictures) and inference runs (`i3d.inference.preview`) are built
from these few functions.

    row = hstack([caption(frame, f"frame {t}") for t, frame in enumerate(frames)])
    save_picture("strip.png", vstack([caption(row, "RGB"), flow_row]))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from common.files import write_atomic

FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.35
LINE = 12  # pixels per caption line at FONT_SCALE
GAP = 4  # pixels between tiles
BACKGROUND = 255  # white
PICTURES = (".png", ".jpg", ".jpeg")


def resize_height(image: np.ndarray, height: int) -> np.ndarray:
    """`image` scaled to `height` rows, its aspect kept: nearest neighbour when enlarging (small frames stay
    pixel-sharp), area averaging when shrinking."""
    h, w = image.shape[:2]
    if h == height:
        return image
    width = max(1, round(w * height / h))
    interpolation = cv2.INTER_NEAREST if height > h else cv2.INTER_AREA
    return cv2.resize(image, (width, height), interpolation=interpolation)


def pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` in the top-left corner of a `height` x `width` background."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    out = np.full((height, width, 3), BACKGROUND, np.uint8)
    out[:h, :w] = image
    return out


def hstack(images: Sequence[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Images side by side, top-aligned, `gap` pixels of background between them."""
    height = max(i.shape[0] for i in images)
    spacer = np.full((height, gap, 3), BACKGROUND, np.uint8)
    parts = [p for i in images for p in (spacer, pad(i, height, i.shape[1]))][1:]
    return np.concatenate(parts, axis=1)


def vstack(images: Sequence[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Images one above the other, left-aligned, `gap` pixels of background between them."""
    width = max(i.shape[1] for i in images)
    spacer = np.full((gap, width, 3), BACKGROUND, np.uint8)
    parts = [p for i in images for p in (spacer, pad(i, i.shape[0], width))][1:]
    return np.concatenate(parts, axis=0)


def text_width(text: str) -> int:
    return cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0]


def caption(image: np.ndarray, text: str) -> np.ndarray:
    """`image` under its caption (lines split at newlines), widened with background when the text is wider."""
    lines = text.split("\n")
    band = np.full((LINE * len(lines) + 2, max(image.shape[1], *(text_width(t) + 4 for t in lines)), 3), BACKGROUND,
                   np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(band, line, (2, LINE * (k + 1) - 2), FONT, FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return vstack([band, image], gap=0)


def text_tile(text: str, width: int = 0) -> np.ndarray:
    """A caption alone (a message in place of a picture), at least `width` pixels wide."""
    return caption(np.full((1, max(width, 1), 3), BACKGROUND, np.uint8), text)


def draw_box(image: np.ndarray, box: Sequence[float], colour: tuple[int, int, int], thickness: int = 1,
             label: str = "") -> np.ndarray:
    """A copy of `image` with the rectangle `box` (x0, y0, x1, y1; x1, y1 exclusive) outlined, `label` above it."""
    out = np.ascontiguousarray(image).copy()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, thickness)
    if label:
        cv2.putText(out, label, (x0 + 1, max(y0 - 3, LINE - 2)), FONT, FONT_SCALE, colour, 1, cv2.LINE_AA)
    return out


def save_picture(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write `image` (RGB) to `path` atomically; the suffix picks the format (`PICTURES`). Returns the path."""
    path = Path(path)
    if path.suffix.lower() not in PICTURES:
        raise ValueError(f"{path}: a picture is written as {', '.join(PICTURES)}")
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: OpenCV could not write the picture")

    write_atomic(path, write)
    return path
