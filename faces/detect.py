"""Face detection with MTCNN (Zhang et al. 2016) as facenet-pytorch ships it: its three networks' weights (2 MB)
are inside the wheel, so nothing is downloaded at run time.

Why MTCNN. `benchmarks/bench_faces.py` ran the candidates whose weights come inside a package on real faces with
known boxes (scikit-image's photographs seen through a panning, zooming window, 640x360 frames, faces 15-200 px;
100 LFW faces; their 100 non-face patches and two face-free photos), one CPU thread each (the workers parallelise):

    detector                              astronaut   camera (3/4 view)  both people   LFW    false pos.  ms/frame
    MTCNN (facenet-pytorch 2.6.0)          24/24        24/24             48/48        100/100     0       89-116
    dlib HOG, upsample 1 (dlib-bin 20.0)   20/24        13/24             32/48         92/100     4       72-106
    Haar frontalface_default (OpenCV 4)    24/24         0/24             24/48         96/100     4       67-161
    LBP cascade (scikit-image 0.26)        24/24         1/24             25/48         92/100    34      293-436

(a hit: IoU >= 0.4 with the hand-marked box; a loaded machine, see docs/PERFORMANCE.md). Only MTCNN finds the
three-quarter face of `camera()` and the small faces, with no false positive. The others were also ruled out by how
they install: OpenCV 5.0's wheel no longer ships `cv2.data`'s Haar files (the table's came from an OpenCV 4 wheel,
which cannot be installed beside our contrib build), nor can OpenCV 5 read scikit-image's old-format LBP file (its
own Cascade is slow and fires on clothes); dlib's HOG is frontal-only. MediaPipe's wheel (1.2) ships no face model
(its Tasks API loads a .tflite file downloaded separately) and requires opencv-contrib-python, which would shadow
the headless build. YuNet (`cv2.FaceDetectorYN`) needs an ONNX file that no PyPI package ships without opencv-python.

facenet-pytorch 2.6.0 pins torch<2.3, numpy<2 and Pillow<10.3 in its metadata, although the detector runs on
today's versions (the tests show it): the Makefile installs it with `--no-deps`, so it never downgrades torch
(setup.py lists `requests`, which its `__init__` imports).

Frames are shrunk so that their longer side is at most `detect_size` before detection, and the boxes are mapped back to
the frame's pixels: MTCNN's time grows with the pixels (a 1920x1080 DFDC frame costs about four times as much at full
size as at 960x540: docs/PERFORMANCE.md, "Face detection and cropping"), and at 960x540 DFDC's faces are still
50-150 px, well above MTCNN's smallest, 20 px.
"""

from __future__ import annotations

import importlib.metadata

import cv2
import numpy as np


class FaceDetectorError(Exception):
    """The face detector cannot be built (its package is missing); the message says how to install it."""


class MTCNNDetector:
    """`detector(frame) -> (N, 5)` float array of (x0, y0, x1, y1, score) rows, best first, in the frame's pixels.

    Args:
        min_score: keep faces whose final-stage probability is at least this (MTCNN's own stage thresholds stay at
            their defaults, 0.6 / 0.7 / 0.7).
        detect_size: shrink frames so that the longer side is at most this many pixels first (0: full size).
        min_face: MTCNN's smallest face in pixels, at the detection size.
        device: "cpu" or "cuda".
    """

    def __init__(self, min_score: float = 0.9, detect_size: int = 960, min_face: int = 20, device: str = "cpu"):
        try:
            from facenet_pytorch.models.mtcnn import MTCNN
        except ImportError as e:
            raise FaceDetectorError(
                f"face detection needs facenet-pytorch ({e}): pip install --no-deps facenet-pytorch==2.6.0 requests "
                "(--no-deps: its metadata pins an old torch; `make install` does this)"
            ) from None
        self.min_score, self.detect_size = min_score, detect_size
        self.mtcnn = MTCNN(min_face_size=min_face, keep_all=True, select_largest=False, device=device)
        self.mtcnn.eval()

    @property
    def name(self) -> str:
        return f"mtcnn (facenet-pytorch {importlib.metadata.version('facenet-pytorch')})"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        small, scale = shrink(frame, self.detect_size)
        boxes, probs = self.mtcnn.detect(small)
        if boxes is None:
            return np.zeros((0, 5))
        found = np.concatenate([np.asarray(boxes, np.float64) / scale, np.asarray(probs, np.float64)[:, None]], 1)
        found = found[found[:, 4] >= self.min_score]
        return found[np.argsort(-found[:, 4], kind="stable")]


def shrink(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """(frame resized so that its longer side is at most `max_side`, the scale applied); 0 keeps the size."""
    longer = max(frame.shape[:2])
    if not max_side or longer <= max_side:
        return frame, 1.0
    scale = max_side / longer
    size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale
