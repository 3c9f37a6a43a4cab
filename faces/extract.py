"""Face-crop videos from raw videos: one video (`cut_faces`) and many (`extract_faces`, on `common.runner`); the
options and file names are in `faces.options`.

For each video, OUT gets one clip per person and segment and a record of how they were made:

    OUT/<video_id>_<track>_<segment>.avi   a face-crop clip: FFV1 (lossless: a fake's traces are not re-encoded
                                           away), size x size, the source's frame rate
    OUT/<video_id>.faces.json              detections, tracks, clips, clips set aside, options; written last, so
                                           its presence means the video is finished (a rerun skips it)
    OUT/report.json, OUT/index.csv         every video's outcome (done / skipped / no_face / failed), the
                                           finished ones with their clip count (`common.record`)
    OUT/<folder>/metadata.json             DFDC labels for the crops (`faces.labels`)

One video: decode and detect faces in every `stride`-th frame (`faces.detect`), link the detections into tracks
(`faces.track`), plan the clips (`faces.crop`), then decode again and cut each clip's box from its frames; a clip is
written (atomically, `flow.video.write_video`) as soon as its last frame is cut. Decoding twice costs a few
ms per frame; holding the frames instead would take 1.8 GB per worker for a 300-frame 1080p DFDC video. A FAKE
whose original has been done takes the original's tracks from its `.faces.json` and skips detection (`reuse`): the
DFDC authors' choice, which halves the detection cost (DFDC has ~5 fakes per real video, so more than halves) and
cuts a fake's clips through exactly the boxes of its original's clips. A video with no face gets no clip; its
`.faces.json` says so, and a rerun does not detect again. A video that cannot be read is a "failed" record.
`--overwrite REAL_ID` redoes that video only: name its fakes too, or they keep the clips cut through its old boxes.

Many videos: the files, folders, globs and lists of `common.videos.find_videos`, shards (`--shard I/N`, by family:
a real video with its fakes, so that reuse works inside a shard), the batch runner's processes or Dask cluster,
real videos before fakes.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from common.files import remove_temps, write_json
from common.runner import Job, check_backend, check_out, run_job
from common.videos import find_run_videos, select_shard, shard_suffix
from faces.crop import CropPlan, cut, plan_crops
from faces.detect import MTCNNDetector
from faces.labels import VideoLabel, crop_entries, read_dfdc_labels, write_crop_metadata
from faces.options import SIDECAR, FaceOptions, crop_file, sidecar_path
from faces.track import Track, link_tracks
from flow.video import VideoReader, write_video

STATUSES = ("done", "skipped", "no_face", "failed")


# -- one video ---------------------------------------------------------------------------------------------------
_DETECTORS: dict = {}


def get_detector(opts: FaceOptions) -> MTCNNDetector:
    """The detector for these options, built once per process and reused for every video it cuts."""
    key = (opts.min_score, opts.detect_size, opts.min_face, opts.device)
    if key not in _DETECTORS:
        _DETECTORS[key] = MTCNNDetector(opts.min_score, opts.detect_size, opts.min_face, opts.device)
    return _DETECTORS[key]


def cut_faces(video_id: str, src: str | Path, boxes_from: str | Path | None = None, *, out: str | Path,
              opts: FaceOptions, threads: int = 0, on_frames=None) -> dict:
    """Detect, track and cut one video's faces into OUT (or skip it when it is finished there).

    Args:
        boxes_from: the original's `.faces.json` for a FAKE (reuse its tracks); when it is missing, the video's own
            faces are detected, with a warning.
        threads: torch threads for MTCNN (0: torch's default); OpenCV stays on one.
        on_frames: progress (`common.runner.Job.work`); called with the frames of each decoding pass.

    Returns:
        A record: video_id, source, status (see `STATUSES`), frames, fps, height, width, boxes_from, sampled
        (frames detected in), tracks, crops (file, track, segment, start, end, box), set_aside, seconds, where
        they went (decode_seconds: both decoding passes; detect_seconds; cut_seconds: cutting, resizing and writing
        the clips), warnings, error (None).

    Raises:
        VideoError, OSError, ...: for a video that cannot be read or written (the runner records it as failed).
    """
    start = time.perf_counter()
    out = Path(out)
    record = _record(video_id, src)
    if threads:
        import torch

        torch.set_num_threads(threads)
        cv2.setNumThreads(1)
    sidecar = sidecar_path(out, video_id)
    earlier = None if opts.overwrites(video_id) else finished_faces(out, video_id, src)
    if earlier is not None:
        record.update({k: earlier[k] for k in record if k in earlier}, status="skipped", warnings=[], error=None,
                      seconds=0.0, decode_seconds=0.0, detect_seconds=0.0, cut_seconds=0.0)
        record["warnings"] += clip_option_mismatches(earlier, opts)
        return record
    _remove_earlier(out, video_id)
    tracks, stride, frames_hint = _find_tracks(video_id, src, opts, boxes_from, record)
    keep, aside = plan_crops(tracks, frames_hint, stride=stride, split_frames=opts.split_frames,
                             margin=opts.margin, min_frames=opts.min_frames, square=opts.square)
    if keep:
        keep, aside = _cut_clips(video_id, src, out, keep, aside, opts, record)
    record.update(status="done" if keep else "no_face", tracks=[t.to_json() for t in tracks],
                  crops=[_plan_json(crop_file(video_id, p), p) for p in keep],
                  set_aside=[_plan_json(None, p) for p in aside])
    if not keep:
        reason = "no face found" if not tracks else f"every clip is shorter than {opts.min_frames} frames"
        record["warnings"].append(f"{reason}; nothing written")
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    write_json(sidecar, {**record, "options": opts.recorded(), "source_stamp": source_stamp(src), "seconds": None})
    if on_frames is not None:
        on_frames(record["frames"])
    record["seconds"] = time.perf_counter() - start
    return record


def _record(video_id: str, src) -> dict:
    return {"video_id": video_id, "source": str(src), "status": "failed", "frames": 0, "fps": None, "height": None,
            "width": None, "boxes_from": None, "detector": None, "sampled": 0, "tracks": [], "crops": [],
            "set_aside": [], "decode_seconds": 0.0, "detect_seconds": 0.0, "cut_seconds": 0.0, "seconds": 0.0,
            "warnings": [], "error": None}


def _plan_json(file: str | None, plan: CropPlan) -> dict:
    entry = {"track": plan.track, "segment": plan.segment, "start": plan.start, "end": plan.end,
             "frames": plan.frames, "box": list(plan.box)}
    return {"file": file, **entry} if file else entry


def finished_faces(out: Path, video_id: str, src: str | Path | None = None) -> dict | None:
    """A finished video's `.faces.json` (with every clip it lists present), or None; with `src`, only when it was
    cut from that same file (same path, size and modification time): another video of the same name is redone."""
    try:
        done = json.loads(sidecar_path(out, video_id).read_text(encoding="utf-8"))
        files = [out / crop["file"] for crop in done["crops"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if src is not None and done.get("source_stamp") != source_stamp(src):
        return None
    return done if all(f.is_file() for f in files) else None


def source_stamp(src: str | Path) -> list | None:
    """[path, size, mtime_ns] of a video file (None when it is unreadable): what a finished cut was made from."""
    try:
        st = os.stat(src)
    except OSError:
        return None
    return [str(Path(src).resolve()), st.st_size, st.st_mtime_ns]


def clip_option_mismatches(earlier: dict, opts: FaceOptions) -> list[str]:
    """Where a finished video was cut with other options than this run's (it is kept; --overwrite redoes it)."""
    old = earlier.get("options", {})
    diffs = [f"{k} {old[k]!r} (asked {v!r})" for k, v in opts.recorded().items() if k in old and old[k] != v]
    return [f"kept clips made with other options: {', '.join(diffs)}; use --overwrite to redo them"] if diffs else []


def _remove_earlier(out: Path, video_id: str) -> None:
    """Before (re)doing a video: its old `.faces.json` first (so no record points at mixed clips), its old clips,
    and the temporary files a killed run left."""
    sidecar = sidecar_path(out, video_id)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        old = json.loads(sidecar.read_text(encoding="utf-8"))
        sidecar.unlink()
        for crop in old["crops"]:
            (out / crop["file"]).unlink(missing_ok=True)
    for pattern in faces_outputs(video_id):
        path = out / pattern
        remove_temps(path.parent, path.name)


def _find_tracks(video_id: str, src, opts: FaceOptions, boxes_from, record: dict) -> tuple[list[Track], int, int]:
    """(tracks, the stride they were detected at, the frame count they were planned for): the original's when
    `boxes_from` is a readable `.faces.json`, else this video's own."""
    if boxes_from is not None:
        try:
            original = json.loads(Path(boxes_from).read_text(encoding="utf-8"))
            tracks = [Track.from_json(t) for t in original["tracks"]]
            record.update(boxes_from=original["video_id"], detector=original["detector"])
            return tracks, int(original["options"]["stride"]), int(original["frames"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            why = f"{type(e).__name__}: {e}; not among the videos, or it failed"
            record["warnings"].append(f"the original's boxes ({boxes_from}) cannot be read ({why}): detected here")
    detector, detections, seconds = None, [], 0.0
    reader = VideoReader(src, fps=0, short_side=0)
    for index, frame in enumerate(_timed(reader, record)):
        if index % opts.stride == 0:
            detector = detector or get_detector(opts)  # not before a frame: a bad video fails without loading it
            tick = time.perf_counter()
            detections.append((index, detector(frame)))
            seconds += time.perf_counter() - tick
    _update_info(record, reader.info)
    record.update(detector=detector.name, sampled=len(detections), detect_seconds=seconds)  # VideoReader: >= 1 frame
    return link_tracks(detections, opts.min_iou, opts.max_missed), opts.stride, record["frames"]


def _update_info(record: dict, info: dict) -> None:
    record.update(frames=len(info["source_frame_indices"]), fps=info["sampled_fps"], height=info["height"],
                  width=info["width"])
    record["warnings"] += info["warnings"]


def _cut_clips(video_id: str, src, out: Path, keep: list[CropPlan], aside: list[CropPlan], opts: FaceOptions,
               record: dict) -> tuple[list[CropPlan], list[CropPlan]]:
    """Decode the video and write each planned clip as soon as its last frame is cut. Returns (written, set aside):
    a video shorter than planned (a fake with fewer frames than its original) ends its clips early."""
    reader = VideoReader(src, fps=0, short_side=0)
    buffers: dict[CropPlan, list[np.ndarray]] = {plan: [] for plan in keep}
    written, start, decoded = [], time.perf_counter(), record["decode_seconds"]
    for index, frame in enumerate(_timed(reader, record)):
        for plan in [p for p in buffers if p.start <= index < p.end]:
            buffers[plan].append(cut(frame, plan.box, opts.size))
            if index == plan.end - 1:
                write_video(out / crop_file(video_id, plan), buffers.pop(plan), reader.info["sampled_fps"])
                written.append(plan)
    _update_info(record, reader.info)
    for plan, frames in buffers.items():  # the video ended before these clips did
        short = CropPlan(plan.track, plan.segment, plan.start, plan.start + len(frames), plan.box)
        record["warnings"].append(f"the video ended at frame {record['frames']}, inside clip {plan.track}_"
                                  f"{plan.segment} (frames {plan.start}-{plan.end - 1})")
        if short.frames >= opts.min_frames:
            write_video(out / crop_file(video_id, short), frames, reader.info["sampled_fps"])
            written.append(short)
        elif short.frames:
            aside.append(short)
    record["cut_seconds"] = time.perf_counter() - start - (record["decode_seconds"] - decoded)
    return sorted(written, key=lambda p: (p.segment, p.track)), aside


def _timed(frames, record: dict):
    """Yield from `frames`, adding the time spent waiting for each (decoding) to record["decode_seconds"]."""
    frames = iter(frames)
    while True:
        tick = time.perf_counter()
        frame = next(frames, None)
        record["decode_seconds"] += time.perf_counter() - tick
        if frame is None:
            return
        yield frame


# -- many videos -------------------------------------------------------------------------------------------------
def plan_jobs(videos: list[tuple[str, Path]], labels: dict[str, VideoLabel], out: Path,
              opts: FaceOptions) -> tuple[list[tuple], list[tuple]]:
    """(first, then) lists of (video_id, source, boxes_from) jobs: fakes whose original is among the videos wait
    for it (`then`); with `reuse`, every fake takes its original's `.faces.json` (it warns when that is missing)."""
    ids = {video_id for video_id, _ in videos}
    first, then = [], []
    for video_id, src in videos:
        label = labels.get(video_id)
        if not (opts.reuse and label and label.label == "FAKE" and label.original):
            first.append((video_id, src, None))
            continue
        (then if label.original in ids else first).append((video_id, src, sidecar_path(out, label.original)))
    return first, then


def shard_families(videos: list[tuple[str, Path]], labels: dict[str, VideoLabel], index: int, count: int) -> list:
    """This shard's videos: `select_shard` over families (a real video and the fakes made from it)."""
    family = {video_id: (labels[video_id].original if video_id in labels else None) or video_id
              for video_id, _ in videos}
    mine = set(select_shard(sorted(set(family.values())), index, count))
    return [(video_id, src) for video_id, src in videos if family[video_id] in mine]


def faces_outputs(video_id: str) -> list[str]:
    """Name globs under OUT of every file a video writes: its clips and its `.faces.json`."""
    name = glob.escape(video_id)
    return [f"{name}_*.avi", f"{name}{SIDECAR}"]


def faces_index_row(record: dict) -> dict | None:
    """A finished video's row of index.csv: its `.faces.json` and how many clips it has."""
    if record["status"] not in ("done", "skipped", "no_face"):
        return None
    return {"video_id": record["video_id"], "faces": f"{record['video_id']}{SIDECAR}", "clips": len(record["crops"]),
            "frames": record["frames"], "fps": record["fps"]}


def clip_counts(records: list[dict]) -> dict:
    """Videos without a face, clips written and clips set aside by this run (the summary's own fields)."""
    made = [r for r in records if r["status"] in ("done", "no_face")]
    return {"no_face": sum(r["status"] == "no_face" for r in records), "crops": sum(len(r["crops"]) for r in made),
            "set_aside": sum(len(r["set_aside"]) for r in made)}


def faces_job(out: Path, opts: FaceOptions) -> Job:
    """Face cropping as a job of the batch runner: tasks (video_id, source, boxes_from)."""
    return Job("faces", work=partial(cut_faces, out=out, opts=opts), options=opts,
               finished_file=lambda vid: f"{vid}{SIDECAR}", outputs=faces_outputs,
               index_columns=("video_id", "faces", "clips", "frames", "fps"), index_row=faces_index_row,
               summarize=clip_counts)


def extract_faces(specs: list[str], out: str | Path, opts: FaceOptions, *, root=None, shard=None, workers: int = 1,
                  backend: str = "local", scheduler: str | None = None,
                  progress: bool = True) -> tuple[list[dict], dict]:
    """Find the videos, keep this shard's, cut their faces into OUT (real videos first, then the fakes that reuse
    their boxes), and write OUT/report.json and the crops' DFDC metadata.json files.

    Raises ValueError (a bad option) or FileNotFoundError (no videos) before any video is touched.
    """
    check_backend(backend, scheduler, workers)
    videos = find_run_videos(specs, root, opts.overwrite)
    labels = read_dfdc_labels(videos)
    if shard:
        videos = shard_families(videos, labels, *shard)
    out = check_out(out)
    first, then = plan_jobs(videos, labels, out, opts)
    records, summary = run_job(faces_job(out, opts), [first, then], out, workers=workers, backend=backend,
                               scheduler=scheduler, shard=shard, progress=progress)
    crops_of = {r["video_id"]: r["crops"] for r in records if r["status"] != "failed"}
    for label in labels.values():  # originals done by an earlier run
        if label.original and label.original not in crops_of:
            crops_of[label.original] = (finished_faces(out, label.original) or {}).get("crops", [])
    write_crop_metadata(out, records, crop_entries(records, labels, crops_of), shard_suffix(shard))
    return records, summary
