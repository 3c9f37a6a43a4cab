"""Classify raw video files end to end with a trained two-stream checkpoint or DeepMind's Kinetics RGB I3D.

Each video goes through the same steps as the training stores and the centre-crop evaluation:

    read_video(fps, short side of the model)             flow.video: the decoder and bilinear resize of the stores
      -> TV-L1 flow of consecutive frames, "backward"    flow.engines + flow.tvl1.align_flow (only with a flow stream)
      -> the whole video as one clip, looped from frame 0 up to the model's minimum length
      -> centre crop, normalise                          i3d.data.transforms (RGB as trained, flow clip(+-20)/20)
      -> TwoStreamI3D -> fused logits -> softmax (sigmoid for a one-logit head)

    predictor = from_checkpoint("runs/demo/best.pt")
    result = predict_video(predictor, "clip.mp4")
    result.top(5)   # [("ZoomIn", 0.93), ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from flow.extract import get_engine
from flow.tvl1 import TVL1Params, align_flow
from flow.video import read_video
from i3d.config import apply_overrides, config_from_dict
from i3d.data import transforms as T
from i3d.ensemble import EnsembleError, contract_of_run, read_checkpoint, to_probabilities
from i3d.models import InceptionI3d, TwoStreamI3D
from i3d.models.contracts import CONTRACTS, InputContract
from i3d.weights import load_pretrained


class PredictError(ValueError):
    """A checkpoint, weights or label file that cannot be used; the message names it and the fix."""


@dataclass
class Predictor:
    """A model in eval mode and everything needed to turn a video file into its input.

    Attributes:
        model: a TwoStreamI3D; its streams decide whether flow is computed.
        classes: one name per output (["REAL", "FAKE"] for a one-logit head).
        contract: short side, crop, RGB normalisation and minimum clip length the model was trained with.
        binary: True for a one-logit head (P(second class) = sigmoid).
        fps: decoding frame rate (that of the training stores).
        engine: TV-L1 engine name for `flow.engines.make_engine`.
        tvl1: TV-L1 parameters (those of the stores).
        convention: flow alignment of the stores ("backward": flow[t] = t-1 -> t, flow[0] = 0).
        bound: flow clipping bound in pixels of the stores.
    """

    model: TwoStreamI3D
    classes: list[str]
    contract: InputContract
    binary: bool = False
    fps: float = 25.0
    engine: str = "opencv"
    tvl1: TVL1Params = field(default_factory=TVL1Params)
    convention: str = "backward"
    bound: float = T.FLOW_BOUND

    @property
    def streams(self) -> tuple[str, ...]:
        return self.model.streams

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@dataclass
class Prediction:
    """One video's class probabilities (from the fused logits) and each stream's logits."""

    path: str
    classes: list[str]
    probs: np.ndarray  # (K,) float64, sums to 1
    logits: dict[str, np.ndarray]  # stream or "fused" -> (K,) float32
    num_frames: int  # decoded frames
    clip_frames: int  # frames fed to the model (num_frames, or more when looped)

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most probable (class name, probability), most probable first."""
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(self.classes[i], float(self.probs[i])) for i in order]


# ---------------------------------------------------------------- loading


def read_labels(path: str | Path) -> list[str]:
    """Class names, one per non-empty line (e.g. kinetics400_label_map.txt)."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"label file {path} not found; pass --labels with one class name per line")
    labels = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not labels:
        raise PredictError(f"label file {path} is empty; it needs one class name per line")
    return labels


def _check_labels(labels: list[str], num_outputs: int, source: str) -> list[str]:
    if len(labels) != num_outputs:
        raise PredictError(f"{source} has {len(labels)} class names but the model has {num_outputs} outputs; "
                           "pass the label file the model was trained with")  # fmt: skip
    return labels


def from_checkpoint(path: str | Path, *, labels: str | Path | None = None, device: str | torch.device = "cpu",
                    **options) -> Predictor:  # fmt: skip
    """A checkpoint of tools/train_two_stream.py: model rebuilt from its "config", names from its "classes".

    Args:
        labels: a label file to use instead of the checkpoint's class names.
        options: Predictor fields to override (fps, engine, tvl1, convention, bound).
    """
    path = Path(path)
    try:
        ckpt = read_checkpoint(path)
        cfg = config_from_dict(ckpt["config"])
        contract = contract_of_run(cfg, ckpt)
    except EnsembleError as e:
        raise PredictError(str(e)) from e
    from i3d.train import build_model_from_config  # the trainer's builder: one way to turn a config into a model

    model = build_model_from_config(apply_overrides(cfg, ["model.rgb.pretrained=", "model.flow.pretrained="]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise PredictError(f"{path}: its weights do not fit the model its config describes ({e})") from e
    k = cfg.model.num_classes
    binary = k == 1
    if labels is not None:
        classes = _check_labels(read_labels(labels), 2 if binary else k, str(labels))
    elif ckpt.get("classes"):
        classes = _check_labels([str(c) for c in ckpt["classes"]], 2 if binary else k, f"{path} ('classes')")
    else:
        classes = ["negative", "positive"] if binary else [f"class {i}" for i in range(k)]
    return Predictor(model.to(device).eval(), classes, contract, binary, **options)


def from_kinetics_rgb(weights: str | Path, *, labels: str | Path | None = None, device: str | torch.device = "cpu",
                      **options) -> Predictor:  # fmt: skip
    """DeepMind's Kinetics-400 RGB I3D (any format `i3d.weights.load_pretrained` reads), fed as DeepMind's:
    short side 256, centre crop 224, [-1, 1] RGB, at least 64 frames."""
    weights = Path(weights)
    if not weights.is_file():
        raise PredictError(f"Kinetics weights {weights} not found (e.g. ../shared/weights/i3d-kinetics-400.ckpt)")
    net = InceptionI3d(num_classes=400, in_channels=3)
    load_pretrained(net, weights)
    classes = _check_labels(read_labels(labels), 400, str(labels)) if labels else [f"class {i}" for i in range(400)]
    model = TwoStreamI3D(net, None).to(device).eval()
    return Predictor(model, classes, CONTRACTS["i3d"], **options)


# ---------------------------------------------------------------- inputs


def decode(path: str | Path, predictor: Predictor, max_frames: int | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB at the predictor's fps, short side resized as the stores were."""
    frames, _info = read_video(path, fps=predictor.fps, short_side=predictor.contract.short_side,
                               max_frames=max_frames)  # fmt: skip
    return frames


def video_flow(frames: np.ndarray, engine: str = "opencv", tvl1: TVL1Params | None = None,
               convention: str = "backward", batch: int = 16) -> np.ndarray:  # fmt: skip
    """(N, H, W, 2) float32 TV-L1 flow in pixels of (N, H, W, 3) uint8 RGB frames, one slot per frame.

    As `flow.extract` makes the stores: grayscale frames, consecutive pairs to the engine `batch` at a time, the
    N - 1 pair flows placed by `flow.tvl1.align_flow` ("backward": flow[t] = t-1 -> t, flow[0] = 0).
    """
    eng = get_engine(engine, tvl1 if tvl1 is not None else TVL1Params())
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    prev, nxt = gray[:-1], gray[1:]
    pairs = [eng.calc_pairs(prev[i : i + batch], nxt[i : i + batch]) for i in range(0, len(prev), batch)]
    pair_flow = np.concatenate(pairs) if pairs else np.zeros((0, *gray.shape[1:], 2), np.float32)
    return align_flow(pair_flow, len(frames), convention)


def clip_inputs(frames: np.ndarray, predictor: Predictor, flow: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Model inputs {stream: (1, C, T, S, S) float32} of the whole video: centre crop, looped up to min_frames.

    Args:
        frames: (N, H, W, 3) uint8 RGB from `decode`.
        flow: (N, H, W, 2) pixels from `video_flow`; computed here when the model has a flow stream and it is None.
    """
    n, h, w = frames.shape[:3]
    indices = T.clip_indices(n, max(n, predictor.contract.min_frames), 0)  # num_frames=0 (whole video), looped
    size = predictor.contract.crop_size
    y0, x0 = T.center_crop_origin(h, w, size)
    inputs = {}
    if "rgb" in predictor.streams:
        rgb = T.channels_first(T.crop(frames[indices], y0, x0, size))
        inputs["rgb"] = torch.from_numpy(T.normalize_rgb(rgb, predictor.contract.normalization, channel_axis=-4))
    if "flow" in predictor.streams:
        if flow is None:
            flow = video_flow(frames, predictor.engine, predictor.tvl1, predictor.convention)
        inputs["flow"] = torch.from_numpy(T.normalize_flow(T.channels_first(T.crop(flow[indices], y0, x0, size)),
                                                           predictor.bound))  # fmt: skip
    return {s: x[None] for s, x in inputs.items()}


# ---------------------------------------------------------------- prediction


@torch.no_grad()
def predict_frames(predictor: Predictor, frames: np.ndarray, path: str = "") -> Prediction:
    """Classify decoded frames (from `decode`)."""
    inputs = clip_inputs(frames, predictor)
    out = predictor.model(**{s: x.to(predictor.device) for s, x in inputs.items()})
    logits = {s: x[0].float().cpu().numpy() for s, x in out.items()}
    probs = to_probabilities(out["fused"][0].float().cpu(), predictor.binary)
    clip_frames = next(iter(inputs.values())).shape[2]
    return Prediction(str(path), predictor.classes, probs, logits, len(frames), clip_frames)


def predict_video(predictor: Predictor, path: str | Path, max_frames: int | None = None) -> Prediction:
    """Decode `path` (any format OpenCV reads, GIF included) and classify it; a bad file raises VideoError."""
    return predict_frames(predictor, decode(path, predictor, max_frames), str(path))
