"""Face detectors whose weights come inside a package, on real faces with known boxes: recall, false positives, speed.

    python benchmarks/bench_faces.py                               # every candidate that is installed
    python benchmarks/bench_faces.py --haar-xml haarcascade_frontalface_default.xml   # OpenCV 4's Haar file too

Scenes (`i3d.synthetic.faces`): 640x360 videos of a window panning and zooming over scikit-image's astronaut
(frontal face, 22-200 px wide) and camera (three-quarter view, 15-120 px), both side by side, 100 LFW faces
(`skimage.data.lfw_subset`, 25 px crops enlarged to 80 px on grey tiles), its 100 non-face patches and two
face-free photos. A hit is a detection with IoU >= 0.4 with a known box (hand-marked, so a detector's own box
convention costs a little IoU); every other detection is a false positive. One CPU thread per detector, as in
extraction (the workers parallelise). Then MTCNN's time per frame at DFDC's sizes, full size and shrunk to 960;
with --dfdc first the seconds a DFDC-sized video takes through `faces.extract.cut_faces`.

Candidates: MTCNN (facenet-pytorch), dlib's HOG detector (dlib-bin, upsampling once), scikit-image's LBP cascade
and, given --haar-xml, OpenCV's Haar cascade (OpenCV 5's wheel no longer ships the XML files; an OpenCV 4 wheel has
them in cv2/data/).
"""

import argparse
import importlib.util
import time

import cv2
import numpy as np
import torch

from faces.detect import MTCNNDetector
from faces.track import iou
from i3d.synthetic.faces import NO_FACE_PHOTOS, pan_zoom_video, photo_faces, side_by_side

FRAME = (360, 640)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=24, help="frames per panning video")
    p.add_argument("--haar-xml", help="an OpenCV Haar cascade file (e.g. from an OpenCV 4 wheel's cv2/data/)")
    p.add_argument(
        "--dfdc",
        action="store_true",
        help="also time cut_faces on one DFDC-sized video (300 frames 1920x1080), as REAL and as FAKE",
    )
    p.add_argument("--skip-detectors", action="store_true", help="only the DFDC-sized video")
    return p.parse_args(argv)


# -- candidates: frame (H, W, 3) RGB -> (N, 5) x0, y0, x1, y1, score -----------------------------------------------
def dlib_hog():
    import dlib

    detector = dlib.get_frontal_face_detector()

    def detect(frame):
        rects, scores, _ = detector.run(frame, 1, 0.0)
        return np.array([[r.left(), r.top(), r.right(), r.bottom(), s] for r, s in zip(rects, scores, strict=True)])

    return detect


def skimage_lbp():
    import skimage.data
    from skimage.feature import Cascade

    cascade = Cascade(skimage.data.lbp_frontal_face_cascade_filename())

    def detect(frame):
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        found = cascade.detect_multi_scale(gray, scale_factor=1.2, step_ratio=1, min_size=(20, 20), max_size=(400, 400))
        return np.array([[d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"], 1.0] for d in found])

    return detect


def opencv_haar(xml: str):
    cascade = cv2.CascadeClassifier(xml)
    if cascade.empty():
        raise SystemExit(f"--haar-xml {xml}: OpenCV cannot read it")

    def detect(frame):
        found = cascade.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 1.1, 5, minSize=(20, 20))
        return np.array([[x, y, x + w, y + h, 1.0] for x, y, w, h in found])

    return detect


def candidates(haar_xml: str | None) -> dict:
    found = {"MTCNN (facenet-pytorch)": MTCNNDetector(detect_size=0)}
    if importlib.util.find_spec("dlib"):
        found["dlib HOG (dlib-bin)"] = dlib_hog()
    found["LBP cascade (scikit-image)"] = skimage_lbp()
    if haar_xml:
        found["Haar frontalface (OpenCV)"] = opencv_haar(haar_xml)
    return found


# -- scenes: (name, frames (T, H, W, 3), boxes (T, F, 4)) ---------------------------------------------------------
def scenes(num_frames: int) -> list:
    out = []
    for name, zoom in (("astronaut", (0.25, 2.2)), ("camera", (0.3, 2.2))):
        photo, boxes = photo_faces(name)
        centre = ((boxes[0, 0] + boxes[0, 2]) / 2, (boxes[0, 1] + boxes[0, 3]) / 2)
        out.append((name, *pan_zoom_video(photo, boxes, num_frames, FRAME, center=centre, amplitude=(20, 10),
                                          zoom=zoom)))
    photo, boxes = side_by_side([photo_faces("astronaut"), photo_faces("camera")])
    out.append(("both", *pan_zoom_video(photo, boxes, num_frames, FRAME, amplitude=(40, 30), zoom=(0.5, 0.8))))
    out += lfw_tiles()
    for name in NO_FACE_PHOTOS:
        photo, boxes = photo_faces(name)
        out.append((name, *pan_zoom_video(photo, boxes, num_frames // 2, FRAME, zoom=(0.6, 1.2))))
    return out


def lfw_tiles() -> list:
    import skimage.data

    patches = (skimage.data.lfw_subset() * 255).astype(np.uint8)  # 100 faces, then 100 non-faces, 25 x 25
    tiles = np.full((200, 160, 160, 3), 128, np.uint8)
    for tile, patch in zip(tiles, patches, strict=True):
        tile[40:120, 40:120] = cv2.resize(patch, (80, 80), interpolation=cv2.INTER_CUBIC)[..., None]
    faces = np.tile(np.float64([40, 40, 120, 120]), (100, 1, 1))
    return [("LFW faces", tiles[:100], faces), ("LFW non-faces", tiles[100:], np.zeros((100, 0, 4)))]


def score(detect, frames: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, float]:
    """(hits, faces, false positives, ms per frame)."""
    hits = false = 0
    start = time.perf_counter()
    for frame, boxes in zip(frames, truth, strict=True):
        found = np.asarray(detect(frame), np.float64).reshape(-1, 5)
        matched = iou(boxes, found) >= 0.4 if len(boxes) and len(found) else np.zeros((len(boxes), len(found)), bool)
        hits += int(matched.any(axis=1).sum())
        false += int((~matched.any(axis=0)).sum())
    return hits, truth.shape[0] * truth.shape[1], false, (time.perf_counter() - start) / len(frames) * 1000


def mtcnn_sizes() -> None:
    photo, boxes = photo_faces("astronaut")
    for h, w in ((360, 640), (720, 1280), (1080, 1920)):
        frames, _ = pan_zoom_video(photo, boxes, 4, (h, w), zoom=(h / 512 * 0.6, h / 512 * 0.7))
        for detect_size in (0, 960):
            if detect_size and detect_size >= w:
                continue
            detect = MTCNNDetector(detect_size=detect_size)
            detect(frames[0])  # warm-up
            _, _, _, ms = score(detect, frames, np.zeros((len(frames), 0, 4)))
            print(f"MTCNN {w}x{h} detect_size {detect_size or 'full'}: {ms:.0f} ms/frame")


def dfdc_video() -> None:
    """tools/extract_faces.py's defaults on a 300-frame 1920x1080 mp4 (the astronaut, face ~200 px): the seconds of
    a REAL video (two decodes, 30 detections, two clips written) and of a FAKE reusing its boxes (one decode)."""
    import tempfile
    from pathlib import Path

    from faces.extract import cut_faces
    from faces.options import FaceOptions, sidecar_path
    from flow.video import write_video

    photo, boxes = photo_faces("astronaut")
    frames, _ = pan_zoom_video(photo, boxes, 300, (1080, 1920), center=(223, 150), amplitude=(30, 20), zoom=(2, 2.4))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "real.mp4"
        write_video(src, frames, 30.0, fourcc="mp4v")
        del frames
        opts = FaceOptions()
        real = cut_faces("real", src, out=Path(tmp) / "out", opts=opts)
        fake = cut_faces("fake", src, sidecar_path(Path(tmp) / "out", "real"), out=Path(tmp) / "out", opts=opts)
    for name, r in (("REAL", real), ("FAKE", fake)):
        print(f"DFDC-sized {name}: {r['status']}, {len(r['crops'])} clips, {r['seconds']:.1f} s "
              f"(detection {r['detect_seconds']:.1f} s in {r['sampled']} frames)")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.dfdc:
        dfdc_video()
    if args.skip_detectors:
        return
    work = scenes(args.frames)
    for name, detect in candidates(args.haar_xml).items():
        cells = []
        for scene, frames, truth in work:
            hits, total, false, ms = score(detect, frames, truth)
            cells.append(
                f"{scene} {hits}/{total} fp {false} {ms:.0f} ms" if total else f"{scene} fp {false} {ms:.0f} ms"
            )
        print(f"{name}: " + " | ".join(cells), flush=True)
    mtcnn_sizes()


if __name__ == "__main__":
    main(parse_args())
