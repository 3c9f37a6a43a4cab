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

Memory does not grow with the video: frames arrive as chunks (`i3d.inference.frames`: decoded with flow computed on
the fly, or read from a store) and are held only until their snippet batch has run (at most max(snippet, stride)
frames plus a chunk), and the whole-video pass runs in overlapping windows of `FeatureOptions.window` frames whose
kept Mixed_5c steps are the one pass's (`i3d.inference.windows`: about 1 GB of activations per stream at 224 px).

    extractor = FeatureExtractor({"rgb": rgb_net, "flow": flow_net}, spec, FeatureOptions(snippet=16, stride=16))
    result = extractor.extract(frames)   # {"rgb": (K, 1024), "flow": (K, 1024)}, starts, ends
    result = extractor.extract_chunks(video_chunks(reader, spec, extractor.streams))   # a video of any length
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from i3d.data import transforms as T
from i3d.data.spec import InputSpec
from i3d.inference.frames import FrameBuffer, array_chunks
from i3d.inference.windows import MIN_WINDOW, STRIDE, WINDOW, window_plan
from i3d.models.inception import InceptionI3d

MODES = ("snippets", "video")
LAST = ("drop", "pad")


@dataclass(frozen=True)
class FeatureOptions:
    """How a video is cut into the net's inputs (see the module docstring)."""

    mode: str = "snippets"
    snippet: int = 16
    stride: int = 16
    last: str = "drop"
    batch_size: int = 8  # snippets per forward pass
    logits: bool = False  # the class scores of every row too (per snippet, or per step in video mode)
    window: int = WINDOW  # frames per forward pass in video mode (i3d.inference.windows); the result is the same

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: use one of {MODES}")
        if self.last not in LAST:
            raise ValueError(f"last={self.last!r}: use 'drop' (only whole snippets) or 'pad' (repeat the last frame)")
        if self.snippet < 1 or self.stride < 1 or self.batch_size < 1:
            raise ValueError(f"snippet={self.snippet}, stride={self.stride} and batch_size={self.batch_size} must "
                             "be >= 1")
        if self.window < MIN_WINDOW or self.window % STRIDE:
            raise ValueError(f"window={self.window}: use a multiple of {STRIDE} of at least {MIN_WINDOW} frames")


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
    frames being the last frame repeated (also for a video shorter than one snippet). With a stride longer than the
    snippet the frames between snippets are skipped by design, so a tail only gets a snippet where the next start
    falls inside the video.
    """
    full = max(0, (num_frames - snippet) // stride + 1)
    starts = list(range(0, full * stride, stride))
    covered = starts[-1] + snippet if starts else 0
    if last == "pad" and covered < num_frames and full * stride < num_frames:
        starts.append(full * stride)
    index = np.asarray(starts, np.int64)[:, None] + np.arange(snippet, dtype=np.int64)
    return np.minimum(index, num_frames - 1).reshape(-1, snippet), np.minimum(index[:, -1] + 1, num_frames)


class ShortVideoError(ValueError):
    """A video with no snippet to extract (shorter than one snippet, last="drop"); the message says what to change."""


class FeatureExtractor:
    """I3D backbones (one per stream) in eval mode, the input spec they want, and the sampling options."""

    def __init__(self, nets: dict[str, nn.Module], spec: InputSpec, options: FeatureOptions = FeatureOptions(),
                 source=None):
        """`source`: where the nets came from (a checkpoint path, weight files), recorded with the features."""
        unknown = set(nets) - {"rgb", "flow"}
        if not nets or unknown:
            raise ValueError(f"nets must map 'rgb' and/or 'flow' to a backbone, got {sorted(nets)}")
        self.nets = {s: net.eval() for s, net in nets.items()}
        self.spec, self.options, self.source = spec, options, source
        self.peak_frames = 0  # the most frames the last extraction held at once (its memory bound)

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(s for s in ("rgb", "flow") if s in self.nets)

    @property
    def device(self) -> torch.device:
        return next(next(iter(self.nets.values())).parameters()).device

    def extract(self, frames: dict[str, np.ndarray], on_batch: Callable[[int], None] | None = None) -> Features:
        """Features of one video from its frames in memory: {"rgb": (N, H, W, 3) uint8, "flow": (N, H, W, 2) px}, as
        a store gives them (a raw video's through `spec.stored_frames` first, as `frames.video_chunks` does).

        Args:
            on_batch: called with the number of clips after each forward pass (progress within long videos).
        """
        return self.extract_chunks(array_chunks(frames), len(next(iter(frames.values()))), on_batch)

    def extract_chunks(self, chunks: Iterable[dict[str, np.ndarray]], num_frames: int | None = None,
                       on_batch: Callable[[int], None] | None = None) -> Features:
        """Features of one video whose frames arrive as consecutive {stream: (n, H, W, C)} chunks
        (`i3d.inference.frames`), held only as long as a snippet batch or a window needs them.

        Args:
            num_frames: the video's length; required in mode="video" (its windows depend on it:
                `i3d.inference.windows`), checked against the stream when given.
            on_batch: called with the number of clips (windows in mode="video") after each forward pass.

        Raises:
            ShortVideoError: no snippet fits and last="drop".
        """
        if self.options.mode == "video" and num_frames is None:
            raise ValueError("mode='video' needs num_frames before the frames arrive (count them with "
                             "i3d.inference.frames.count_frames)")
        buffer = FrameBuffer(chunks)
        if not buffer.fill(1):
            raise ValueError("no frames to extract features from")
        h, w = buffer.shape()
        self.spec.check_frames(h, w)
        origin = T.center_crop_origin(h, w, self.spec.crop_size)
        if self.options.mode == "snippets":
            result = self._snippets(buffer, origin, on_batch)
        else:
            result = self._video(buffer, num_frames, origin, on_batch)
        self.peak_frames = buffer.peak
        if num_frames is not None and buffer.fill(num_frames + 1) != num_frames:
            raise ValueError(f"expected {num_frames} frames, the stream had {buffer.end}")
        return result

    def _snippets(self, buffer: FrameBuffer, origin: tuple[int, int], on_batch) -> Features:
        """Snippets in order, each taken out of the buffer as soon as its last frame is in, run batch_size at a
        time; the buffer holds at most max(snippet, stride) frames plus one chunk."""
        o, pending, rows = self.options, [], []
        k = 0
        while buffer.fill(k * o.stride + o.snippet) >= k * o.stride + o.snippet:
            pending.append(self._inputs(buffer.take(k * o.stride + np.arange(o.snippet)), origin))
            k += 1
            buffer.drop(k * o.stride)
            if len(pending) == o.batch_size:
                rows.append(self._forward(pending, "snippets", on_batch))
                pending = []
        n = buffer.end  # the stream ended: the length is known, and with it the padded last snippet
        indices, ends = snippet_indices(n, o.snippet, o.stride, o.last)
        if not len(indices):
            raise ShortVideoError(f"{n} frames, shorter than one {o.snippet}-frame snippet; use --last pad or a "
                                  "shorter --snippet")
        for index in indices[k:]:  # at most the padded one
            pending.append(self._inputs(buffer.take(index), origin))
        if pending:
            rows.append(self._forward(pending, "snippets", on_batch))
        return self._features(rows, indices[:, 0], ends)

    def _video(self, buffer: FrameBuffer, n: int, origin: tuple[int, int], on_batch) -> Features:
        """The whole video's Mixed_5c map pooled (2, 7, 7) at stride 1, computed window by window
        (`i3d.inference.windows`; other backbones than I3D in one pass); each window's first kept step is pooled
        with the previous window's last."""
        windowed = all(isinstance(net, InceptionI3d) for net in self.nets.values())
        plan = window_plan(n, self.options.window) if windowed else [(0, n, 0, None)]
        rows, last = [], {}
        for start, end, first, stop in plan:
            buffer.drop(start)
            if buffer.fill(end) < end:
                raise ValueError(f"expected {n} frames, the stream ended after {buffer.end}")
            x = self._inputs(buffer.take(np.arange(start, end)), origin)
            steps = slice(first - start // STRIDE, stop - start // STRIDE) if len(plan) > 1 else slice(None)
            rows.append(self._forward([x], "video", on_batch, steps, last))
        starts = np.arange(sum(len(f[self.streams[0]]) for f, _ in rows), dtype=np.int64) * STRIDE
        return self._features(rows, starts, np.minimum(starts + 2 * STRIDE, n))

    def _inputs(self, frames: dict[str, np.ndarray], origin: tuple[int, int]) -> dict[str, np.ndarray]:
        """{stream: (1, C, T, S, S)} model input of one clip's frames: centre crop, normalise."""
        spec = self.spec
        return {s: T.stream_input(s, frames[s], *origin, spec.crop_size, normalization=spec.normalization,
                                  flow_bound=spec.flow_bound) for s in self.streams}

    @torch.no_grad()
    def _forward(self, inputs: list[dict[str, np.ndarray]], mode: str, on_batch, steps: slice = slice(None),
                 last: dict | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Features and logits {stream: (K, ...)} of a batch of clips; in mode="video" of one window's Mixed_5c
        `steps`, after the previous window's last step (kept in `last`, updated)."""
        feats, logits = {}, {}
        for s, net in self.nets.items():
            x = torch.from_numpy(np.concatenate([i[s] for i in inputs])).to(self.device)
            fmap = net.forward_features(x)[:, :, steps]  # (B, 1024, T', H', W')
            if mode == "video":  # row t pools steps t and t + 1: the previous window's last step comes first
                previous, last[s] = last.get(s), fmap[:, :, -1:]
                fmap = fmap if previous is None else torch.cat([previous, fmap], dim=2)
            f, lg = pool(net, fmap, mode)
            feats[s], logits[s] = f.float().cpu().numpy(), lg.float().cpu().numpy()
        if on_batch is not None:
            on_batch(len(inputs))
        return feats, logits

    def _features(self, rows: list, starts: np.ndarray, ends: np.ndarray) -> Features:
        feats = {s: np.concatenate([f[s] for f, _ in rows]) for s in self.streams}
        logits = {s: np.concatenate([lg[s] for _, lg in rows]) for s in self.streams} if self.options.logits else {}
        return Features(feats, starts, np.asarray(ends, np.int64), logits)


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
