"""Classify raw video files end to end with a trained checkpoint or DeepMind's Kinetics RGB I3D.

Each video goes through the steps its training stores went through, as the checkpoint's `InputSpec` records them:

    VideoReader(spec.fps, spec.short_side)              flow.video: the stores' decoder and bilinear resize
      -> TV-L1 flow of consecutive frames                 flow.stream: spec.flow_engine, spec.tvl1, convention
      -> the eval clips (spec.eval_num_frames x eval_num_clips, centred; short videos loop as in eval)
      -> the clips' frames as the store holds them        spec.stored_frames: JPEG at spec.jpeg_quality, flow to
                                                          8-bit codes at spec.flow_bound and back (flow.store_writer)
      -> centre crop, normalise                           i3d.data.transforms.stream_input (flow / spec.flow_bound)
      -> TwoStreamI3D -> per-stream logits averaged over clips -> fused -> softmax (sigmoid for a one-logit head)

So `predict_video` on a raw video feeds the model, bit for bit, what `tools/eval.py --center-crop` feeds it from the
store extracted from that video (same extraction settings). It streams the video, holding only its test clips'
frames (or, for whole-video specs, one window of I3D: `i3d.inference.windows`) whatever the video's length;
`predict_frames` classifies decoded frames already in memory, and `clip_inputs` makes input of frames read from a
store.

    predictor = from_checkpoint("runs/demo/best.pt")
    result = predict_video(predictor, "clip.mp4")
    result.top(5)   # [("ZoomIn", 0.93), ...]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flow.stream import stream_flow
from flow.video import VideoError, read_video
from i3d.checkpoint import model_from_checkpoint
from i3d.data import transforms as T
from i3d.data.spec import InputSpec
from i3d.inference.features import FeatureExtractor, FeatureOptions
from i3d.inference.frames import count_frames, gather_frames, video_chunks, video_reader
from i3d.models import InceptionI3d, TwoStreamI3D
from i3d.models.pretrained import i3d_from_file
from i3d.models.tf_checkpoint import checkpoint_prefix
from i3d.models.zoo import contract_for

# DeepMind's kinetics-i3d label_map.txt and label_map_600.txt: the Kinetics classes in the order of the released
# weights' outputs, picked by the model's class count
KINETICS400_LABELS = Path(__file__).with_name("kinetics400_labels.txt")
KINETICS_LABELS = {400: KINETICS400_LABELS, 600: Path(__file__).with_name("kinetics600_labels.txt")}


class PredictError(ValueError):
    """A label file or weights that cannot be used; the message names it and the fix."""


@dataclass
class Predictor:
    """A model in eval mode and the spec of its input.

    Attributes:
        model: a TwoStreamI3D; its streams decide whether flow is computed.
        classes: one name per class (two for a one-logit head).
        spec: how the video becomes input (decoding, flow, clips, crop, normalisation).
        binary: True for a one-logit head (P(second class) = sigmoid).
    """

    model: TwoStreamI3D
    classes: list[str]
    spec: InputSpec
    binary: bool = False

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
    logits: dict[str, np.ndarray]  # stream or "fused" -> (K,) float32, the mean over clips
    num_frames: int  # decoded frames
    clip_frames: int  # frames per clip fed to the model

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most probable (class name, probability), most probable first."""
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(self.classes[i], float(self.probs[i])) for i in order]


# ---------------------------------------------------------------- loading


def read_label_map(path: str | Path) -> list[str]:
    """Class names, one per non-empty line (e.g. kinetics400_label_map.txt)."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"label file {path} not found; pass --labels with one class name per line")
    labels = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not labels:
        raise PredictError(f"label file {path} is empty; it needs one class name per line")
    return labels


def _check_labels(labels: list[str], num_outputs: int, source: str) -> list[str]:
    if len(labels) != num_outputs:
        raise PredictError(f"{source} has {len(labels)} class names but the model has {num_outputs} outputs; "
                           "pass the label file the model was trained with")
    return labels


def from_checkpoint(path: str | Path, *, labels: str | Path | None = None,
                    device: str | torch.device = "cpu") -> Predictor:
    """A checkpoint of tools/train_two_stream.py (or tools/distill.py) with the input spec it saved.

    Args:
        labels: a label file to use instead of the checkpoint's class names.
    """
    loaded = model_from_checkpoint(path, device)
    binary = loaded.config.model.num_classes == 1
    classes = loaded.classes
    if labels is not None:
        classes = _check_labels(read_label_map(labels), len(classes), str(labels))
    return Predictor(loaded.model, classes, loaded.spec, binary)


def kinetics_spec() -> InputSpec:
    """DeepMind's protocol: 25 fps, short side 256, centre crop 224, [-1, 1] RGB, the whole video (>= 64 frames); the
    decoded frames as they are (not trained on our stores: stored=False)."""
    return dataclasses.replace(contract_for("i3d"), eval_num_frames=0, stored=False)


def from_kinetics_rgb(weights: str | Path, *, labels: str | Path | None = None,
                      device: str | torch.device = "cpu") -> Predictor:
    """DeepMind's Kinetics-400 or Kinetics-600 RGB I3D (any file `i3d.models.pretrained.i3d_from_file` reads, their
    TensorFlow model.ckpt included), fed as DeepMind's (`kinetics_spec`); its class names are `KINETICS_LABELS` of
    its class count unless `labels` names another file."""
    weights = Path(weights)
    if not weights.is_file() and checkpoint_prefix(weights) is None:
        raise PredictError(f"Kinetics weights {weights} not found (e.g. ../shared/weights/i3d-kinetics-400.ckpt)")
    net, _fmt = i3d_from_file(weights)
    if net.in_channels != 3:
        raise PredictError(f"{weights} is a {net.in_channels}-channel (flow) I3D; --kinetics-rgb takes an RGB one")
    labels = labels or KINETICS_LABELS.get(net.num_classes)
    if labels is None:
        raise PredictError(f"{weights} has {net.num_classes} classes (Kinetics: 400 or 600); pass --labels")
    classes = _check_labels(read_label_map(labels), net.num_classes, str(labels))
    return Predictor(TwoStreamI3D(net, None).to(device).eval(), classes, kinetics_spec())


# ---------------------------------------------------------------- inputs


def decode(path: str | Path, spec: InputSpec, max_frames: int | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB of a video decoded as the stores were (`spec.fps`, `spec.short_side`, bilinear)."""
    frames, _info = read_video(path, fps=spec.fps, short_side=spec.short_side, max_frames=max_frames)
    return frames


def video_flow(frames: np.ndarray, spec: InputSpec, batch: int = 16) -> np.ndarray:
    """(N, H, W, 2) float32 TV-L1 flow in pixels of (N, H, W, 3) uint8 RGB frames in memory, one slot per frame:
    `flow.stream.stream_flow` collected (as `flow.extract` makes the stores: `spec.flow_engine`, `spec.tvl1`,
    `batch` pairs at a time, `spec.flow_convention`)."""
    chunks = [f for _, f in stream_flow(frames, spec.flow_engine, spec.tvl1, spec.flow_convention, batch)]
    return np.concatenate(chunks)


def eval_indices(num_frames: int, spec: InputSpec) -> np.ndarray:
    """(K, T) frame indices of the spec's test clips of a `num_frames` video (`transforms.eval_clip_indices`)."""
    return T.eval_clip_indices(num_frames, spec.eval_num_frames, spec.eval_num_clips, spec.num_frames,
                               spec.eval_start)


def video_inputs(frames: np.ndarray, spec: InputSpec, streams, flow: np.ndarray | None = None
                 ) -> dict[str, torch.Tensor]:
    """Model inputs {stream: (K, C, T, S, S) float32} of a decoded video: the eval dataset's clips and centre crop of
    the frames as its store would hold them (`spec.stored_frames`, applied to the clips' frames only).

    Args:
        frames: (N, H, W, 3) uint8 RGB from `decode` (frames read from a store go to `clip_inputs` instead: they
            have been through the storage already).
        streams: which inputs to make ("rgb", "flow").
        flow: (N, H, W, 2) pixels from `video_flow`; computed here when "flow" is wanted and it is None.
    """
    spec.check_frames(*frames.shape[1:3])
    if "flow" in streams and flow is None:
        flow = video_flow(frames, spec)
    indices = eval_indices(len(frames), spec)
    wanted = np.unique(indices)
    raw = {s: x[wanted] for s, x in (("rgb", frames), ("flow", flow)) if s in streams}
    return clip_inputs(spec.stored_frames(raw), np.searchsorted(wanted, indices), spec, streams)


def clip_inputs(frames: dict[str, np.ndarray], indices: np.ndarray, spec: InputSpec, streams
                ) -> dict[str, torch.Tensor]:
    """{stream: (K, C, T, S, S) float32} of the clips `indices` (K, T) into `frames` {"rgb", "flow"} as a store gives
    them (`VideoStore.read_rgb` / `read_flow`, or `spec.stored_frames` of a raw video's): centre crop, normalise
    (`transforms.stream_input`)."""
    h, w = frames["rgb" if "rgb" in streams else "flow"].shape[1:3]
    y0, x0 = T.center_crop_origin(h, w, spec.crop_size)
    inputs = {}
    for stream in streams:
        x = T.stream_input(stream, frames[stream][indices.reshape(-1)], y0, x0, spec.crop_size, clips=len(indices),
                           normalization=spec.normalization, flow_bound=spec.flow_bound)
        inputs[stream] = torch.from_numpy(x)
    return inputs


def to_probabilities(logits: torch.Tensor, binary: bool) -> np.ndarray:
    """(K,) class probabilities from one row of logits: [1 - p, p] with p = sigmoid for a binary head, else softmax."""
    logits = logits.double()
    if binary:
        p = torch.sigmoid(logits.reshape(-1)[0]).item()
        return np.asarray([1.0 - p, p])
    return torch.softmax(logits.reshape(-1), 0).numpy()


# ---------------------------------------------------------------- prediction


@torch.no_grad()
def predict_frames(predictor: Predictor, frames: np.ndarray, path: str = "") -> Prediction:
    """Classify decoded frames in memory (from `decode`; `video_inputs` sends them through the storage): clip logits
    averaged per stream, then fused as the model fuses."""
    inputs = video_inputs(frames, predictor.spec, predictor.streams)
    return _classify(predictor, inputs, len(frames), str(path))


def predict_video(predictor: Predictor, path: str | Path, max_frames: int | None = None) -> Prediction:
    """Decode `path` (any format OpenCV reads, GIF included) and classify it in memory that does not grow with the
    video; a bad or too small file raises VideoError naming it.

    A first decode pass counts the frames, since the test clips depend on the count. Then clip specs
    (eval_num_frames > 0) decode again keeping only the clips' frames, with flow computed for those alone; whole-
    video specs (eval_num_frames = 0) stream the video through I3D in windows (`i3d.inference.windows`: the same
    logits as one pass). A video shorter than the training clip loops in memory, as in eval; whole videos of other
    backbones than I3D are held in memory.
    """
    spec, streams = predictor.spec, predictor.streams
    n, (h, w) = count_frames(path, spec, max_frames)
    try:
        spec.check_frames(h, w, where=str(path))
    except ValueError as e:
        raise VideoError(str(e)) from None
    reader = video_reader(path, spec, max_frames)
    nets = {s: getattr(predictor.model, s) for s in streams}
    if spec.eval_num_frames == 0 and n >= spec.num_frames and all(isinstance(x, InceptionI3d) for x in nets.values()):
        return _prediction(predictor, whole_video_logits(predictor, video_chunks(reader, spec, streams), n), str(path),
                           n, n)
    indices = eval_indices(n, spec)
    wanted = np.unique(indices)
    frames = gather_frames(reader, spec, streams, wanted)
    inputs = clip_inputs(frames, np.searchsorted(wanted, indices), spec, streams)
    return _classify(predictor, inputs, n, str(path))


@torch.no_grad()
def whole_video_logits(predictor: Predictor, chunks, num_frames: int) -> dict[str, torch.Tensor]:
    """{stream or "fused": (classes,)} logits of one pass of a whole video, whose `num_frames` frames arrive as
    chunks (`i3d.inference.frames`), computed in windows: the mean of `FeatureExtractor`'s per-step class scores
    (mode="video"), which is what I3D's head averages over the Mixed_5c steps."""
    nets = {s: getattr(predictor.model, s) for s in predictor.streams}
    extractor = FeatureExtractor(nets, predictor.spec, FeatureOptions(mode="video", logits=True))
    rows = extractor.extract_chunks(chunks, num_frames).logits  # {stream: (T' - 1, classes)}
    logits = {s: torch.from_numpy(x).mean(0) for s, x in rows.items()}
    logits["fused"] = predictor.model.fuse(logits)
    return logits


@torch.no_grad()
def _classify(predictor: Predictor, inputs: dict[str, torch.Tensor], num_frames: int, path: str) -> Prediction:
    out = predictor.model(**{s: x.to(predictor.device) for s, x in inputs.items()})  # {name: (K, classes)}
    clip_frames = next(iter(inputs.values())).shape[2]
    return _prediction(predictor, {s: x.float().mean(0) for s, x in out.items()}, path, num_frames, clip_frames)


def _prediction(predictor: Predictor, logits: dict[str, torch.Tensor], path: str, num_frames: int,
                clip_frames: int) -> Prediction:
    logits = {s: x.float().cpu().numpy() for s, x in logits.items()}
    probs = to_probabilities(torch.from_numpy(logits["fused"]), predictor.binary)
    return Prediction(path, predictor.classes, probs, logits, num_frames, clip_frames)
