"""Per-video I3D features for temporal localisation and video-language work (what piergiaj's extract_features.py and
v-iashin/video_features are run for), from raw videos or from the stores, through the model's input spec.

Two sampling modes, with their exact frame arithmetic (N = frames of the video at `spec.fps`):

    snippets  snippet k covers frames [k*stride, k*stride + snippet); only snippets that fit are taken, so there are
              max(0, (N - snippet) // stride + 1) of them, each run through the net on exactly its own frames (never
              looped); last="pad" adds one more snippet for frames the full ones leave uncovered, filled up by
              repeating the video's last frame. Feature = the Mixed_5c map averaged over time and space: (K, 1024).
    video     the whole video in one pass (piergiaj's): Mixed_5c (1024, T', 7, 7), T' = ceil(N / 8), average-pooled
              with a (2, 7, 7) window at stride 1: (T' - 1, 1024) (one step when T' = 1); step t sees frames
              [8t, 8t + 16). With logits=True also the per-step class scores (T' - 1, num_classes), Charades-style.

Every feature row records its first and last-plus-one real frame (`start_frame`, `end_frame`) and the frame rate, so
`start_frame / fps` is its time in seconds.

    extractor = FeatureExtractor({"rgb": rgb_net, "flow": flow_net}, spec, FeatureOptions(snippet=16, stride=16))
    result = extractor.extract(frames)   # {"rgb": (K, 1024), "flow": (K, 1024)}, starts, ends
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from i3d.data import transforms as T
from i3d.data.spec import InputSpec

MODES = ("snippets", "video")
LAST = ("drop", "pad")
TEMPORAL_STRIDE = 8  # I3D's Mixed_5c step in input frames (three stride-2 stages in time)


@dataclass(frozen=True)
class FeatureOptions:
    """How a video is cut into the net's inputs (see the module docstring)."""

    mode: str = "snippets"
    snippet: int = 16
    stride: int = 16
    last: str = "drop"
    batch_size: int = 8  # snippets per forward pass
    logits: bool = False  # the class scores of every row too (per snippet, or per step in video mode)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: use one of {MODES}")
        if self.last not in LAST:
            raise ValueError(f"last={self.last!r}: use 'drop' (only whole snippets) or 'pad' (repeat the last frame)")
        if self.snippet < 1 or self.stride < 1 or self.batch_size < 1:
            raise ValueError(f"snippet={self.snippet}, stride={self.stride} and batch_size={self.batch_size} must "
                             "be >= 1")  # fmt: skip


@dataclass
class Features:
    """One video's {stream: (K, 1024) float32} features, optional {stream: (K, C)} logits, and each row's frames."""

    features: dict[str, np.ndarray]
    start_frame: np.ndarray  # (K,) int64, first real frame of each row
    end_frame: np.ndarray  # (K,) int64, one past its last real frame
    logits: dict[str, np.ndarray]


def snippet_indices(num_frames: int, snippet: int, stride: int, last: str = "drop") -> tuple[np.ndarray, np.ndarray]:
    """(K, snippet) frame indices of the snippets and (K,) one-past-the-last real frame of each.

    last="drop" keeps only snippets that fit; "pad" adds one snippet for uncovered frames at the end, its missing
    frames being the last frame repeated (also for a video shorter than one snippet).
    """
    full = max(0, (num_frames - snippet) // stride + 1)
    starts = list(range(0, full * stride, stride))
    covered = starts[-1] + snippet if starts else 0
    if last == "pad" and covered < num_frames:
        starts.append(full * stride)
    index = np.asarray(starts, np.int64)[:, None] + np.arange(snippet, dtype=np.int64)
    return np.minimum(index, num_frames - 1).reshape(-1, snippet), np.minimum(index[:, -1] + 1, num_frames)


class FeatureExtractor:
    """I3D backbones (one per stream) in eval mode, the input spec they want, and the sampling options."""

    def __init__(self, nets: dict[str, nn.Module], spec: InputSpec, options: FeatureOptions = FeatureOptions(),
                 source=None):  # fmt: skip
        """`source`: where the nets came from (a checkpoint path, weight files), recorded with the features."""
        unknown = set(nets) - {"rgb", "flow"}
        if not nets or unknown:
            raise ValueError(f"nets must map 'rgb' and/or 'flow' to a backbone, got {sorted(nets)}")
        self.nets = {s: net.eval() for s, net in nets.items()}
        self.spec, self.options, self.source = spec, options, source

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(s for s in ("rgb", "flow") if s in self.nets)

    @property
    def device(self) -> torch.device:
        return next(next(iter(self.nets.values())).parameters()).device

    def extract(self, frames: dict[str, np.ndarray], on_batch: Callable[[int], None] | None = None) -> Features:
        """Features of one video from its frames: {"rgb": (N, H, W, 3) uint8, "flow": (N, H, W, 2) px}.

        Args:
            on_batch: called with the number of clips after each forward pass (progress within long videos).
        """
        n, h, w = next(iter(frames.values())).shape[:3]
        self.spec.check_frames(h, w)
        y0, x0 = T.center_crop_origin(h, w, self.spec.crop_size)
        o = self.options
        if o.mode == "snippets":
            indices, ends = snippet_indices(n, o.snippet, o.stride, o.last)
        else:
            indices = np.arange(n, dtype=np.int64)[None]
        feats, logits = {}, {}
        for s in self.streams:
            feats[s], logits[s] = self._run(s, frames[s], indices, y0, x0, on_batch)
        if o.mode == "snippets":
            starts = indices[:, 0]
        else:  # row t: Mixed_5c steps t and t + 1, each TEMPORAL_STRIDE input frames
            starts = np.arange(len(next(iter(feats.values()))), dtype=np.int64) * TEMPORAL_STRIDE
            ends = np.minimum(starts + 2 * TEMPORAL_STRIDE, n)
        return Features(feats, starts, ends, logits if o.logits else {})

    @torch.no_grad()
    def _run(self, stream: str, frames: np.ndarray, indices: np.ndarray, y0: int, x0: int, on_batch=None):
        """(K, 1024) features (and logits) of `stream` for clips `indices` (K, T), batch_size clips per pass."""
        net, spec, feats, logits = self.nets[stream], self.spec, [], []
        size = self.options.batch_size if self.options.mode == "snippets" else 1
        for b in range(0, len(indices), size):
            part = indices[b : b + size]
            x = T.stream_input(stream, frames[part.reshape(-1)], y0, x0, spec.crop_size, clips=len(part),
                               normalization=spec.normalization, flow_bound=spec.flow_bound)  # fmt: skip
            fmap = net.forward_features(torch.from_numpy(x).to(self.device))  # (B, 1024, T', H', W')
            f, lg = pool(net, fmap, self.options.mode)
            feats.append(f.float().cpu().numpy())
            logits.append(lg.float().cpu().numpy())
            if on_batch is not None:
                on_batch(len(part))
        dim = getattr(net, "num_features", 0)
        if not feats:  # no snippet fits (a video shorter than one snippet, last="drop")
            return np.zeros((0, dim), np.float32), np.zeros((0, net.num_classes), np.float32)
        return np.concatenate(feats), np.concatenate(logits)


def pool(net: nn.Module, fmap: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixed_5c (B, 1024, T', H', W') -> features and logits.

    snippets: the mean over time and space, (B, 1024), and the net's logits (B, C).
    video: (2, 7, 7) average pooling at stride 1 (window clipped to the map, as the net's own head), (T'-1, 1024),
    and the 1x1x1 logits conv on it, (T'-1, C), for B = 1.
    """
    if mode == "snippets":
        return fmap.mean(dim=(2, 3, 4)), net.forward_head(fmap)
    kernel = tuple(min(k, n) for k, n in zip((2, 7, 7), fmap.shape[-3:], strict=True))
    pooled = F.avg_pool3d(fmap, kernel, stride=1)  # (1, 1024, T'-1, H'', W''): 1x1 in space at 224 px
    scores = net.logits(pooled).mean(dim=(3, 4))  # (1, C, T'-1)
    return pooled.mean(dim=(3, 4))[0].T, scores[0].T
