"""`TwoStreamClipDataset`: paired RGB and flow clips cut from the same frames through the same window.

One sample = one video's store read once: the frame indices and the crop are drawn first, then every requested
stream is read at those indices and cut with that crop, so the two streams can never disagree.

    store --read_rgb(indices, box)-------> (T,S,S,3) uint8 --rgb_clip-------> rgb  (3,T,S,S) uint8 + rgb_table
          --read_flow_codes(indices, box)-> (T,2,S,S) uint8 --flow_code_clip-> flow (2,T,S,S) uint8 + flow_table
                                   --[DataLoader, .to(device)]--> transforms.expand_compact --> float32 model input

The 8-bit values and their 256-entry tables are what the DataLoader carries (`compact=True`, what `i3d.loaders`
builds); the lookup runs on the device. Without `compact` a sample is expanded at once: float32 model input, equal
bit for bit to `transforms.stream_input` of the decoded frames, which is what `i3d.inference` feeds videos through.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from flow.quantize import DEFAULT_BOUND
from flow.store import FlowStoreError, VideoStore
from i3d.data import transforms as T

STREAMS = ("rgb", "flow")


@dataclass(frozen=True)
class ClipPlan:
    """Where one sample comes from: `indices` (K, T) frame indices, the crop corner, and whether it is mirrored."""

    indices: np.ndarray
    y0: int
    x0: int
    flip: bool


class TwoStreamClipDataset(Dataset):
    """Clips of `num_frames` frames, `crop_size` square, from `(store_path, label)` items.

    Train (`train=True`): a random start and `num_frames` consecutive frames, looping back to frame 0 when the video
    is shorter; one random crop; with `flip=True` a mirror with probability 1/2. The draw uses only
    `np.random.default_rng((seed, epoch, index))`, so it changes with `set_epoch`, and is the same for the same
    (seed, epoch, index) whatever the worker count, the rerun or the DistributedSampler shard.

    Eval (`train=False`): the centre crop; `num_frames=T` takes the T frames around the temporal centre,
    `num_frames=0` the whole video (looped up to `min_frames`), `num_clips=K` K clips centred in K equal segments of
    the video. With K > 1 the tensors get a leading clip dimension: rgb (K, 3, T, S, S), flow (K, 2, T, S, S),
    indices (K, T).

    A short video loops from its first frame (train and eval alike). Stored frames smaller than `crop_size` are an
    error naming the store (never padded: that would hide a store extracted at the wrong size).

    Each sample is a dict: `rgb` (3, T, S, S) float32 (`transforms.normalize_rgb(kind=normalization)`), `flow`
    (2, T, S, S) float32 = clip(px, -flow_bound, flow_bound) / flow_bound (only the requested `streams` are present,
    and only those are read), `label` int, `indices` (T,) int64, `crop` (y0, x0) int64 in stored-frame coordinates,
    `flip` bool, `video_id` str.

    `compact=True` (what training and evaluation use) sends 4x fewer bytes through the DataLoader's shared memory, its
    costliest step (see docs/PERFORMANCE.md): `rgb` stays uint8 0-255 and `flow` the stores' 8-bit codes, each with
    its table, `rgb_table` (3, 256) and `flow_table` (2, 256) float32; `transforms.model_input(batch, device)` moves
    them and looks the values up there, giving exactly the float32 tensors described above.

    Args:
        items: `(store_path, label)` or `(store_path, label, video_id)`; without a video_id the store's file name
            without `.h5` is used. `index.resolve_stores` builds them.
        flow_bound: the stores' bound (`InputSpec.flow_bound`, from the store attributes via `spec.stores_extraction`).
        min_frames: the shortest whole-video eval clip (`num_frames=0`): the training clip length.
        eval_start: "centre" (clips centred in equal segments) or "first" (one clip from frame 0).
    """

    def __init__(
        self,
        items: Sequence[tuple],
        *,
        num_frames: int = 64,
        crop_size: int = 224,
        train: bool = True,
        seed: int = 0,
        streams: Sequence[str] = STREAMS,
        flip: bool = False,
        num_clips: int = 1,
        normalization: str = "i3d",
        compact: bool = False,
        flow_bound: float = DEFAULT_BOUND,
        min_frames: int = 1,
        eval_start: str = "centre",
    ):
        streams = tuple(streams)
        if not streams or any(s not in STREAMS for s in streams) or len(set(streams)) != len(streams):
            raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got {streams}")
        if normalization not in T.NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose one of {T.NORMALIZATIONS}")
        if num_frames < 0 or crop_size < 1 or num_clips < 1:
            raise ValueError(
                f"need num_frames >= 0, crop_size >= 1, num_clips >= 1: {num_frames=}, {crop_size=}, {num_clips=}"
            )
        if train and (num_frames == 0 or num_clips != 1):
            raise ValueError(
                "training samples one clip of num_frames > 0; num_frames=0 and num_clips > 1 are eval-only"
            )
        if num_frames == 0 and num_clips != 1:
            raise ValueError("num_frames=0 (the whole video) is one clip; set num_clips=1")
        self.items = [_item(entry) for entry in items]
        self.num_frames, self.crop_size, self.train, self.seed = num_frames, crop_size, train, seed
        self.streams, self.flip, self.num_clips, self.normalization = streams, flip, num_clips, normalization
        self.compact, self.flow_bound, self.min_frames = compact, float(flow_bound), min_frames
        if eval_start not in T.EVAL_STARTS or (eval_start == "first" and num_clips != 1):
            raise ValueError(f"eval_start={eval_start!r} must be one of {T.EVAL_STARTS} ('first' with one clip)")
        self.eval_start = eval_start
        self._rgb_table = np.ascontiguousarray(T.rgb_table(normalization).T)  # (3, 256)
        # In shared memory so DataLoader workers see set_epoch even with persistent_workers=True (a plain int
        # would stay frozen at the value each worker was started with).
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's draw; call it before iterating the epoch's DataLoader (as DistributedSampler's)."""
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.items)

    def plan(self, index: int, num_video_frames: int, height: int, width: int) -> ClipPlan:
        """The indices, crop and flip of sample `index` for a video of that size (pure; no file is read)."""
        size = self.crop_size
        if not self.train:
            indices = T.eval_clip_indices(num_video_frames, self.num_frames, self.num_clips, self.min_frames,
                                          self.eval_start)
            return ClipPlan(indices, *T.center_crop_origin(height, width, size), flip=False)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        start = T.random_start(num_video_frames, self.num_frames, rng)
        y0, x0 = T.random_crop_origin(height, width, size, rng)
        flip = bool(self.flip and rng.random() < 0.5)
        return ClipPlan(T.clip_indices(num_video_frames, self.num_frames, start)[None], y0, x0, flip)

    def __getitem__(self, index: int) -> dict:
        path, label, video_id = self.items[index]
        try:
            with VideoStore(path) as store:
                T.check_crop(store.height, store.width, self.crop_size, where=str(path))
                plan = self.plan(index, store.num_frames, store.height, store.width)
                sample = {key: x for name in self.streams for key, x in self._read(store, name, plan).items()}
        except (OSError, KeyError) as e:  # h5py's own errors do not always name the file
            raise FlowStoreError(f"{path}: unreadable store ({type(e).__name__}: {e}); re-extract {video_id}") from e
        indices = plan.indices if self.num_clips > 1 else plan.indices[0]
        sample.update(
            label=label,
            indices=torch.from_numpy(indices),
            crop=torch.tensor([plan.y0, plan.x0], dtype=torch.int64),
            flip=plan.flip,
            video_id=video_id,
        )
        return sample if self.compact else T.expand_compact(sample)

    def _read(self, store: VideoStore, stream: str, plan: ClipPlan) -> dict[str, torch.Tensor]:
        """One stream at `plan`: {stream: (K, C, T, S, S) uint8, or (C, T, S, S) when K = 1; stream_table: (C, 256)}.

        Only the crop is decoded (RGB) or copied out of the decoded chunks (flow codes)."""
        flat, size, clips = plan.indices.reshape(-1), self.crop_size, len(plan.indices)
        box = (plan.y0, plan.x0, size, size)
        if stream == "rgb":
            x = T.rgb_clip(store.read_rgb(flat, box), clips=clips, flip=plan.flip)
            table = self._rgb_table
        else:
            x = T.flow_code_clip(store.read_flow_codes(flat, box), clips=clips, flip=plan.flip)
            table = T.flow_code_tables(store.flow_bound, self.flow_bound, flip=plan.flip)
        x = torch.from_numpy(x)
        return {stream: x if self.num_clips > 1 else x[0], f"{stream}_table": torch.from_numpy(table)}


def worker_init_fn(worker_id: int) -> None:
    """Set up a DataLoader worker for clip loading (pass it as `DataLoader(..., worker_init_fn=worker_init_fn)`).

    glibc malloc keeps freed large blocks for reuse (mmap and trim thresholds at 1 GiB) instead of mapping and
    unmapping every ~40 MB clip array; each fresh mapping costs ~10k page faults, most of a clip's system time
    (docs/PERFORMANCE.md, "Data loading"). A worker then holds its peak heap (a few hundred MB). Nothing happens
    off glibc. (OpenCV's thread count is deliberately not touched here: `cv2.setNumThreads` in a forked child whose
    parent had started OpenCV's pool hangs; call `cv2.setNumThreads(1)` in the parent before creating the loader.)
    """
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "mallopt"):
            m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
            libc.mallopt(m_mmap_threshold, 1 << 30)
            libc.mallopt(m_trim_threshold, 1 << 30)


def _item(entry: Sequence) -> tuple[Path, int, str]:
    if len(entry) not in (2, 3):
        raise ValueError(f"a dataset item is (store_path, label[, video_id]), got {entry!r}")
    path = Path(entry[0])
    video_id = str(entry[2]) if len(entry) == 3 else path.name.removesuffix(".h5")
    return path, int(entry[1]), video_id
