"""Paired two-stream data: index builders (`index`), pure clip transforms (`transforms`) and the clip dataset."""

from i3d.data.dataset import TwoStreamClipDataset, worker_init_fn
from i3d.data.index import (
    csv_index,
    folder_index,
    hmdb51_index,
    kinetics_index,
    resolve_stores,
    store_path,
    ucf101_index,
)
from i3d.data.transforms import normalize_flow, normalize_rgb

__all__ = [
    "TwoStreamClipDataset",
    "csv_index",
    "folder_index",
    "hmdb51_index",
    "kinetics_index",
    "normalize_flow",
    "normalize_rgb",
    "resolve_stores",
    "store_path",
    "ucf101_index",
    "worker_init_fn",
]
