"""The run config's `data:` section turned into datasets and DataLoaders (training, validation, evaluation).

    build_loaders(cfg, rank, world) -> (train_loader, val_loader, class names, input spec)
      build_train_val_datasets: build_items (build_index by data.dataset -> resolve_stores) of both parts
        -> the stores' extraction settings (i3d.data.spec) -> build_clip_dataset of each part
           (TwoStreamClipDataset: random clips / centre crops, flow scaled by the stores' bound)
      build_train_sampler: DistributedSampler or RebalancedSampler, reshuffled by (train.seed, epoch)
      build_eval_loader: ShardSampler, each rank its own share
    build_part_dataset(cfg, train, classes, spec) -> one part's dataset, checked against a trained model's spec

The datasets send 8-bit RGB and flow codes with their tables (`TwoStreamClipDataset(compact=True)`): whoever takes a
batch turns it into float32 model input on its device with `i3d.data.transforms.model_input`.

Every loader starts `loader_workers(data.num_workers)` workers, no more than the CPUs there are, and each starts with
`i3d.data.worker_init_fn` (glibc malloc thresholds that spare every clip its page faults: docs/PERFORMANCE.md,
"Data loading"). OpenCV's thread count is never set inside a forked worker: that can hang.
"""

import logging
import os

from torch.utils.data import DataLoader, DistributedSampler, Sampler

from i3d.config import Config
from i3d.data import index as idx
from i3d.data import worker_init_fn
from i3d.data.dataset import TwoStreamClipDataset
from i3d.data.dfdc import dfdc_index
from i3d.data.sampler import RebalancedSampler
from i3d.data.spec import InputSpec, check_matches, stores_extraction

log = logging.getLogger(__name__)


def build_index(cfg: Config, train: bool, classes=None) -> tuple[list, list[str]]:
    """(video_id, label) pairs and class names of the training or validation part, by `data.dataset`."""
    d = cfg.data
    path = d.val_index if (not train and d.val_index) else d.index
    subset = (d.train_subset if train else d.val_subset) or None
    if not path:
        raise ValueError(f"data.index is empty; set it to the {d.dataset} split files (--set data.index=PATH)")
    if d.dataset == "folder" and not train and not d.val_index:
        raise ValueError("data.dataset=folder validates on another class-folder tree: set data.val_index=FOLDER")
    if d.dataset == "ucf101":
        return idx.ucf101_index(path, d.split, subset)
    if d.dataset == "hmdb51":
        return idx.hmdb51_index(path, d.split, subset)
    if d.dataset == "kinetics":
        return idx.kinetics_index(path, subset, classes=classes)
    if d.dataset == "csv":
        return idx.csv_index(path, subset, classes=classes)
    if d.dataset == "dfdc":
        return dfdc_index(path, split=subset)  # ["REAL", "FAKE"]
    return idx.folder_index(path)  # "folder": index / val_index are the class-folder roots


def build_part_dataset(cfg: Config, train: bool, classes=None,
                       spec: InputSpec | None = None) -> tuple[TwoStreamClipDataset, list[str], InputSpec]:
    """The training (random clips) or validation (centre crop, `eval_num_frames` x `eval_num_clips`) part's dataset
    alone: what evaluating a trained model reads.

    Args:
        spec: the input spec of a trained model (its checkpoint's): the stores must have been extracted as it says,
            and the dataset feeds its flow bound. None: the stores' own settings (`spec_for_run`).

    Returns:
        (dataset, class names, the input spec it follows).
    """
    items, found = build_items(cfg, train, classes)
    if spec is None:
        spec = spec_for_run(cfg, stores_extraction(unique_stores(items)))
    else:
        check_matches(spec, stores_extraction(unique_stores(items)), f"data.store_root={cfg.data.store_root}")
    return build_clip_dataset(cfg, items, train, spec), found, spec


def build_items(cfg: Config, train: bool, classes=None) -> tuple[list, list[str]]:
    """(store_path, label, video_id) items and class names of the training or validation part."""
    d = cfg.data
    if not d.store_root:
        raise ValueError("data.store_root is empty; set it to tools/extract_flow.py's --out folder")
    pairs, found = build_index(cfg, train, classes)
    if classes is not None and list(found) != list(classes):
        raise ValueError(f"{d.dataset}: validation classes differ from training classes ({len(found)} vs "
                         f"{len(classes)}); give both parts the same class list")
    if len(found) != cfg.model.num_classes and not (cfg.model.num_classes == 1 and len(found) == 2):
        raise ValueError(f"the index has {len(found)} classes but model.num_classes={cfg.model.num_classes}; "
                         f"set --set model.num_classes={len(found)} (or 1 for a binary head on two classes)")
    return idx.resolve_stores(d.store_root, pairs, d.skip_missing, with_video_id=True), list(found)


def build_clip_dataset(cfg: Config, items: list, train: bool, spec: InputSpec) -> TwoStreamClipDataset:
    """The clip dataset of `items` feeding `spec` (crop, frames, normalisation, flow bound) the streams of `cfg.model`,
    in 8-bit values and tables (`compact=True`: `transforms.model_input` expands a batch on the device)."""
    common = dict(crop_size=spec.crop_size, seed=cfg.train.seed, streams=cfg.model.streams, compact=True,
                  normalization=spec.normalization, flow_bound=spec.flow_bound)
    if train:
        return TwoStreamClipDataset(items, num_frames=spec.num_frames, train=True, flip=cfg.data.flip, **common)
    return TwoStreamClipDataset(items, num_frames=spec.eval_num_frames, train=False, num_clips=spec.eval_num_clips,
                                min_frames=spec.num_frames, eval_start=spec.eval_start, **common)


def spec_for_run(cfg: Config, extraction: dict | None) -> InputSpec:
    """The input spec of a run: the stores' extraction settings plus the data: section's crop, clips, normalisation."""
    d = cfg.data
    return InputSpec(**(extraction or {}), crop_size=d.crop_size, num_frames=d.num_frames,
                     eval_num_frames=d.eval_num_frames, eval_num_clips=d.eval_num_clips, eval_start=d.eval_start,
                     normalization=d.normalization)


def unique_stores(items: list) -> list:
    """Each store path once, in order (a rebalanced or repeated index may list a store twice)."""
    return list(dict.fromkeys(path for path, *_ in items))


def build_train_val_datasets(cfg: Config
                             ) -> tuple[TwoStreamClipDataset, TwoStreamClipDataset, list[str], InputSpec]:
    """(training dataset, validation dataset, class names, input spec); validation must have the training classes.

    Every store of both parts must have been extracted with the same settings (`spec.stores_extraction`): the
    first mismatch is an InputSpecError naming two stores and the fields that differ.
    """
    train_items, classes = build_items(cfg, train=True)
    val_items, _ = build_items(cfg, train=False, classes=classes)
    spec = spec_for_run(cfg, stores_extraction(unique_stores(train_items + val_items)))
    train_set = build_clip_dataset(cfg, train_items, True, spec)
    return train_set, build_clip_dataset(cfg, val_items, False, spec), classes, spec


class ShardSampler(Sampler):
    """Every `world`-th index from `rank`: each rank evaluates its own share, nothing padded or repeated."""

    def __init__(self, length: int, rank: int = 0, world: int = 1):
        self.indices = list(range(rank, length, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_loaders(cfg: Config, rank: int = 0, world: int = 1, pin_memory: bool = False):
    """(train_loader, val_loader, class_names, input spec). The train order depends only on (seed, epoch)."""
    train_ds, val_ds, classes, spec = build_train_val_datasets(cfg)
    t, workers = cfg.train, loader_workers(cfg.data.num_workers)
    sampler = build_train_sampler(cfg, train_ds, rank, world)
    if len(sampler) < t.batch_size:
        raise ValueError(f"{len(sampler)} training clips per process and epoch (data.sampler={cfg.data.sampler}, "
                         f"{len(train_ds)} videos, {world} processes) < train.batch_size={t.batch_size}")
    extra = dict(num_workers=workers, pin_memory=pin_memory, persistent_workers=workers > 0,
                 worker_init_fn=worker_init_fn)
    train = DataLoader(train_ds, t.batch_size, sampler=sampler, drop_last=True, **extra)
    return train, build_eval_loader(cfg, val_ds, rank, world, pin_memory), classes, spec


def build_train_sampler(cfg: Config, dataset: TwoStreamClipDataset, rank: int = 0, world: int = 1) -> Sampler:
    """A shuffle of every video (data.sampler=random) or a class-rebalanced subset (rebalanced), sharded over ranks.

    Both reshuffle by (train.seed, epoch) through `set_epoch`.
    """
    if cfg.data.sampler == "rebalanced":
        labels = [label for _path, label, _video_id in dataset.items]
        return RebalancedSampler(labels, seed=cfg.train.seed, num_replicas=world, rank=rank)
    return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed,
                              drop_last=True)


def build_eval_loader(cfg: Config, dataset, rank: int = 0, world: int = 1, pin_memory: bool = False) -> DataLoader:
    """Each rank its share of `dataset`; batches of 1 for whole videos (`eval_num_frames=0`: lengths differ)."""
    batch = 1 if cfg.data.eval_num_frames == 0 else cfg.train.batch_size
    return DataLoader(dataset, batch, sampler=ShardSampler(len(dataset), rank, world), pin_memory=pin_memory,
                      num_workers=loader_workers(cfg.data.num_workers), worker_init_fn=worker_init_fn)


def loader_workers(requested: int) -> int:
    """DataLoader workers for `data.num_workers`: -1 means one per CPU this process may use, and any number is capped
    at that (more workers only queue for the same cores, and torch warns about them).

    The CPUs are the process's affinity (a job scheduler's share, not the whole machine's), divided among the
    processes torchrun started on this node (LOCAL_WORLD_SIZE).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    available = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if requested > available:
        log.info("data.num_workers=%d: %d DataLoader workers, one per CPU this process may use", requested, available)
    return available if requested < 0 else min(requested, available)
