"""Pictures of what a long inference run will feed its models, to look at before it starts.

    features_preview(extractor, jobs[:4], "runs/feats/preview.png")     # tools/extract_features.py --preview 4
    ensemble_preview(members, videos[:4], "runs/dfdc/submission_preview.png", faces=FaceOptions(), face_dir=FACES)

Features: each video's first snippet through the run's own frame source (`feature_run.load_frames`: the store, or
the video decoded as the spec says with TV-L1 on the fly) and the spec's centre crop and normalisation
(`transforms.stream_input`), drawn back as RGB over colour-wheel flow (`i3d.data.pictures`). Ensemble: each member's
first test clip (`predict.video_inputs`), or with face clips the faces as `faces.extract.cut_faces` cuts them (into
the run's face folder, where the run then finds them done) with the tracks' boxes drawn on a raw frame. A video
that cannot be shown is a line of text in the picture; the run reports it as it would have.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np

from common.pictures import caption, draw_box, hstack, resize_height, save_picture, text_tile, vstack
from faces.extract import cut_faces
from faces.options import FaceOptions
from faces.track import Track, frame_boxes
from flow.video import VideoReader, read_video
from i3d.data import transforms as T
from i3d.data.pictures import clip_picture, spread
from i3d.inference.feature_run import load_frames
from i3d.inference.features import FeatureExtractor
from i3d.inference.predict import video_inputs

FRAMES = 8  # frames of a clip shown
HEIGHT = 96  # rows of a shown frame
RAW_HEIGHT = 240  # rows of the raw frame the face boxes are drawn on
TRACK_COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))


def _cannot(what: str, error: Exception) -> np.ndarray:
    return text_tile(f"{what}: cannot show it ({type(error).__name__}: {' '.join(str(error).split())[:160]})", 400)


# ---------------------------------------------------------------- features


def first_snippet(extractor: FeatureExtractor, video: Path | None, store: Path | None) -> dict[str, np.ndarray]:
    """{stream: (n, H, W, C)} of the video's first snippet (fewer frames when the video is shorter), from the frame
    source the run reads it from."""
    chunks, _, _ = load_frames(extractor, video, store)
    parts, n = [], 0
    for chunk in chunks:
        parts.append(chunk)
        n += len(next(iter(chunk.values())))
        if n >= extractor.options.snippet:
            break
    return {s: np.concatenate([p[s] for p in parts])[: extractor.options.snippet] for s in parts[0]}


def features_preview(extractor: FeatureExtractor, jobs, path: str | os.PathLike) -> Path:
    """A PNG of each job's (video_id, video, store) first snippet as the extractor's nets receive it."""
    spec, rows = extractor.spec, []
    for video_id, video, store in jobs:
        try:
            frames = first_snippet(extractor, video, store)
            h, w = next(iter(frames.values())).shape[1:3]
            spec.check_frames(h, w, where=str(store or video))
            y0, x0 = T.center_crop_origin(h, w, spec.crop_size)
            inputs = {s: T.stream_input(s, x, y0, x0, spec.crop_size, normalization=spec.normalization,
                                        flow_bound=spec.flow_bound)[0] for s, x in frames.items()}
            source = "store" if store is not None else "video"
            title = (f"{video_id} ({source}): first snippet, centre crop {spec.crop_size} of {h}x{w}, "
                     f"{spec.normalization} RGB" + (f", flow bound {spec.flow_bound:g} px" if "flow" in inputs else ""))
            rows.append(clip_picture(inputs, spec.normalization, frames=FRAMES, height=HEIGHT, title=title))
        except Exception as e:  # the run records it; the picture says so and goes on
            rows.append(_cannot(video_id, e))
    return save_picture(path, vstack(rows or [text_tile("no videos")], gap=10))


# ---------------------------------------------------------------- ensemble


def member_inputs_picture(members, name: str, path: Path) -> np.ndarray:
    """Every member's first test clip of one video, as `predict_decoded` makes them (one decoding per frame rate and
    short side)."""
    decoded, pictures = {}, []
    for m in members:
        key = (m.spec.fps, m.spec.short_side)
        if key not in decoded:
            decoded[key] = read_video(path, fps=key[0], short_side=key[1])[0]
        inputs = video_inputs(decoded[key], m.spec, m.model.streams)
        clips, _, t = next(iter(inputs.values())).shape[:3]
        title = (f"{name}, {m.name} ({m.checkpoint.name}): test clip 1 of {clips}, {t} frames, crop {m.spec.crop_size}"
                 f", {m.spec.normalization} RGB")
        pictures.append(clip_picture({s: x[0] for s, x in inputs.items()}, m.spec.normalization, frames=FRAMES,
                                     height=HEIGHT, title=title))
    return vstack(pictures)


def raw_frame(path: Path, index: int) -> np.ndarray:
    """Frame `index` of a video decoded as face cutting decodes it (every frame, full size)."""
    frames = iter(VideoReader(path, fps=0, short_side=0, max_frames=index + 1))
    return collections.deque(frames, maxlen=1)[0]  # the last one read


def faces_picture(record: dict, path: Path, face_dir: Path, stride: int) -> np.ndarray:
    """One video's face cutting: a raw frame with each track's face box (thin) and clip box (thick) drawn, then a
    few frames of every face clip written."""
    crops, tracks = record["crops"], [Track.from_json(t) for t in record["tracks"]]
    if crops:
        index = (crops[0]["start"] + crops[0]["end"]) // 2
    else:
        index = tracks[0].frames[0] if tracks else 0
    frame = raw_frame(path, index)
    scale = RAW_HEIGHT / frame.shape[0]
    frame = resize_height(frame, RAW_HEIGHT)
    for k, track in enumerate(tracks):
        start, boxes = frame_boxes(track, record["frames"], stride)
        if start <= index < start + len(boxes):
            frame = draw_box(frame, boxes[index - start] * scale, TRACK_COLOURS[k % len(TRACK_COLOURS)], 1,
                             f"track {k}")
    for crop in crops:
        if crop["start"] <= index < crop["end"]:
            colour = TRACK_COLOURS[crop["track"] % len(TRACK_COLOURS)]
            frame = draw_box(frame, np.asarray(crop["box"]) * scale, colour, 2)
    title = (f"{Path(path).name}: frame {index} of {record['frames']}, {len(tracks)} face tracks, {len(crops)} clips; "
             "thin: the track's face, thick: its clip's box")
    rows = [caption(frame, title)]
    for crop in crops:
        clip = read_video(face_dir / crop["file"], fps=0, short_side=0)[0]
        chosen = spread(len(clip), FRAMES)
        tiles = hstack([resize_height(clip[t], HEIGHT) for t in chosen])
        rows.append(caption(tiles, f"{crop['file']}: track {crop['track']}, frames {crop['start']}-{crop['end'] - 1}"
                                   f", shown {', '.join(str(int(t)) for t in chosen)}"))
    if not crops:
        rows.append(text_tile("no face clip: " + ("; ".join(record["warnings"]) or "no face found")))
    return vstack(rows)


def ensemble_preview(members, videos, path: str | os.PathLike, *, faces: FaceOptions | None = None,
                     face_dir: str | Path | None = None) -> Path:
    """A PNG of what the ensemble will score for each (video_id, path) of `videos`: every member's input clip, or
    with `faces` the face clips cut into `face_dir` and their boxes on a raw frame."""
    rows = []
    for video_id, video in videos:
        name = Path(video).name
        try:
            if faces is None:
                rows.append(member_inputs_picture(members, name, Path(video)))
            else:
                record = cut_faces(video_id, video, out=face_dir, opts=faces)
                rows.append(faces_picture(record, Path(video), Path(face_dir), faces.stride))
        except Exception as e:  # the run records it; the picture says so and goes on
            rows.append(_cannot(name, e))
    return save_picture(path, vstack(rows or [text_tile("no videos")], gap=12))
