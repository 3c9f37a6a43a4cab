"""The input specification: everything that decides what a network sees, from the raw video to the input tensor.

One frozen `InputSpec` travels with every model. Training reads its extraction half from the stores (every store
of a run must agree: `stores_extraction`), takes the rest from the run's `data:` section (`spec_for_run`) and saves
the whole spec in every checkpoint ("input_spec"); eval, predict, the ensemble and distillation read it from there.

    extraction (flow.extract.ExtractOptions, recorded in each store's attributes)
        fps              decoding frame rate (0 = the video's own)          attrs "fps"
        short_side       bilinear resize of the short side (0 = native)     attrs "short_side"
        flow_engine      TV-L1 implementation                               attrs "engine"
        tvl1             TV-L1 parameters                                   attrs "tvl1_*"
        flow_bound       flow clipped to +-bound px before 8-bit storage    attrs "flow_bound"
        flow_convention  "backward": flow[t] = t-1 -> t, flow[0] = 0        attrs "flow_convention"
        jpeg_quality     the RGB frames' JPEG quality                       attrs "jpeg_quality"
        stored           raw videos go through the stores' JPEG and 8-bit flow (True for every store)
    input (the run's data: section)
        crop_size, num_frames (training clip), eval_num_frames (0 = whole video), eval_num_clips, eval_start,
        normalization

Flow scaling, decided once: the network sees clip(flow_px, -flow_bound, flow_bound) / flow_bound in [-1, 1], with
the bound the stores were written with. A store at bound 8 and a model trained on it therefore see the same numbers
in training and at inference, and 8-bit codes map onto the whole input range.

Storage, decided once: a model trained on stores saw JPEG frames and 8-bit flow, so inference on a raw video sends
its decoded frames and TV-L1 flow through the same storage round trip (`InputSpec.stored_frames`, i.e.
`flow.store_writer.as_stored` at `jpeg_quality` and `flow_bound`): its input equals, bit for bit, the evaluation's on
the store extracted from that video. Weights trained elsewhere (DeepMind's, foreign files) have stored=False and get
the decoded frames as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flow.quantize import DEFAULT_BOUND
from flow.store import read_attrs
from flow.store_writer import JPEG_QUALITY, as_stored
from flow.tvl1 import CONVENTIONS, TVL1Params
from i3d.data.transforms import EVAL_STARTS, NORMALIZATIONS

EXTRACTION_FIELDS = ("fps", "short_side", "flow_engine", "tvl1", "flow_bound", "flow_convention", "jpeg_quality",
                     "stored")
# the store attributes they are read from (`extraction_of_attrs`)
STORE_ATTRS = ("fps", "short_side", "height", "width", "engine", "flow_bound", "flow_convention", "jpeg_quality",
               *(f"tvl1_{f.name}" for f in dataclasses.fields(TVL1Params)))


class InputSpecError(ValueError):
    """Stores or a checkpoint whose input specifications cannot be used together; the message names them."""


@dataclass(frozen=True)
class InputSpec:
    """What a model's input is made of (see the module docstring for where each field comes from).

    Attributes:
        fps: frames per second the video is decoded at; 0 keeps each video's own rate.
        short_side: the decoded frames' shorter side in pixels (bilinear, as `flow.video`); 0 keeps the native size.
        flow_engine: TV-L1 engine (`flow.engines.make_engine` name) that computed the flow.
        tvl1: its parameters.
        flow_bound: flow is clipped to +-flow_bound pixels and divided by it (input range [-1, 1]).
        flow_convention: how pair flows sit in the per-frame slots (`flow.tvl1.align_flow`).
        jpeg_quality: the JPEG quality of the stores' RGB frames (raw frames are sent through it when `stored`).
        stored: True for a model trained on stores: raw videos' frames and flow go through the stores' JPEG and
            8-bit flow before input (`stored_frames`); False for weights trained on other input (DeepMind's,
            foreign files), which get the decoded frames and float flow.
        crop_size: side of the square crop (random in training, centred at test).
        num_frames: frames per training clip; a shorter video loops from its first frame.
        eval_num_frames: frames per test clip around the temporal centre; 0 = the whole video (looped up to
            num_frames when shorter).
        eval_num_clips: evenly spaced test clips per video; their logits are averaged.
        eval_start: "centre" (clips centred in equal segments: I3D's protocol) or "first" (one clip from the first
            frame: how the DFDC authors scored their models).
        normalization: RGB normalisation (`i3d.data.transforms.normalize_rgb`).
    """

    fps: float = 25.0
    short_side: int = 256
    flow_engine: str = "opencv"
    tvl1: TVL1Params = field(default_factory=TVL1Params)
    flow_bound: float = DEFAULT_BOUND
    flow_convention: str = "backward"
    jpeg_quality: int = JPEG_QUALITY
    stored: bool = True
    crop_size: int = 224
    num_frames: int = 64
    eval_num_frames: int = 64
    eval_num_clips: int = 1
    eval_start: str = "centre"
    normalization: str = "i3d"

    def __post_init__(self) -> None:
        checks = [
            (self.fps >= 0, f"fps={self.fps} must be >= 0 (0 keeps the native rate)"),
            (self.short_side >= 0, f"short_side={self.short_side} must be >= 0 (0 keeps the native size)"),
            (self.flow_bound > 0, f"flow_bound={self.flow_bound} must be > 0"),
            (self.flow_convention in CONVENTIONS, f"flow_convention={self.flow_convention!r} not in {CONVENTIONS}"),
            (0 <= self.jpeg_quality <= 100, f"jpeg_quality={self.jpeg_quality} must be 0-100"),
            (self.crop_size > 0 and self.num_frames > 0, "crop_size and num_frames must be positive"),
            (not self.short_side or self.crop_size <= self.short_side,
             f"crop_size={self.crop_size} is larger than short_side={self.short_side}"),
            (self.eval_num_frames >= 0 and self.eval_num_clips >= 1, "need eval_num_frames >= 0, eval_num_clips >= 1"),
            (self.eval_start in EVAL_STARTS, f"eval_start={self.eval_start!r} not in {EVAL_STARTS}"),
            (self.eval_start == "centre" or self.eval_num_clips == 1, "eval_start='first' takes one clip"),
            (self.normalization in NORMALIZATIONS, f"normalization={self.normalization!r} not in {NORMALIZATIONS}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputSpecError(f"input spec: {message}")

    def to_dict(self) -> dict:
        """Plain builtins (the form saved in checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        """Inverse of `to_dict`; unknown keys are an InputSpecError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputSpecError(f"input spec: unknown field(s) {unknown}; known: {sorted(names)}")
        values = dict(data)
        if isinstance(values.get("tvl1"), dict):
            values["tvl1"] = TVL1Params(**values["tvl1"])
        return cls(**values)

    def check_frames(self, height: int, width: int, where: str = "frames") -> None:
        """A ValueError naming `where` when (height, width) frames cannot give this spec's centre crop."""
        if min(height, width) < self.crop_size:
            raise ValueError(f"{where}: {height}x{width} frames (short side {self.short_side or 'native'}) are "
                             f"smaller than the model's {self.crop_size}-px crop; a video this small cannot be fed "
                             "to it (or pass a larger short side / smaller crop where the tool has one)")

    def stored_frames(self, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A raw video's {"rgb", "flow"} frames (decoded, TV-L1 in pixels) as this model's stores would give them
        back (`flow.store_writer.as_stored`); unchanged when the model was not trained on stores."""
        return as_stored(frames, self.jpeg_quality, self.flow_bound) if self.stored else frames

    def extraction(self) -> dict:
        """The fields recorded by extraction (what raw videos must go through to look like the stores)."""
        return {k: getattr(self, k) for k in EXTRACTION_FIELDS}


# ---------------------------------------------------------------- stores


def extraction_of_attrs(attrs: dict) -> dict:
    """The extraction fields of one store's attributes.

    A field the store does not record gets the default, except the short side (its frames' own, min(H, W)).
    """
    default = InputSpec()
    native = min(int(attrs.get("height", 0)), int(attrs.get("width", 0))) or default.short_side
    return {
        "fps": float(attrs.get("fps", default.fps)),
        "short_side": int(attrs.get("short_side", native)),
        "flow_engine": str(attrs.get("engine", default.flow_engine)),
        "tvl1": TVL1Params.from_attrs(attrs),
        "flow_bound": float(attrs.get("flow_bound", default.flow_bound)),
        "flow_convention": str(attrs.get("flow_convention", default.flow_convention)),
        "jpeg_quality": int(attrs.get("jpeg_quality", default.jpeg_quality)),
        "stored": True,
    }


def read_extraction(path: str | Path) -> dict:
    """`extraction_of_attrs` of the store at `path` (only the attributes are read)."""
    try:
        return extraction_of_attrs(read_attrs(path, STORE_ATTRS))
    except OSError as e:
        raise InputSpecError(f"{path}: unreadable store ({e}); re-extract it with tools/extract_flow.py") from e


def stores_extraction(paths: Iterable[str | Path]) -> dict | None:
    """The extraction fields every store in `paths` shares; None for no stores.

    Raises:
        InputSpecError naming the first store and the first one that differs, with every differing field.
    """
    first, first_path = None, None
    for path in paths:
        fields = read_extraction(path)
        if first is None:
            first, first_path = fields, path
            continue
        diffs = [f"{k} {first[k]!r} vs {fields[k]!r}" for k in EXTRACTION_FIELDS if fields[k] != first[k]]
        if diffs:
            raise InputSpecError(f"stores were extracted with different settings: {first_path} and {path} differ in "
                                 f"{'; '.join(diffs)}; re-extract one group so that every store of a run has the "
                                 "same settings (tools/extract_flow.py --overwrite)")
    return first


def check_matches(spec: InputSpec, extraction: dict | None, where: str) -> None:
    """An InputSpecError when stores (`extraction`, from `stores_extraction`) differ from a model's training stores."""
    if extraction is None:
        return
    diffs = [f"{k} {getattr(spec, k)!r} (model) vs {extraction[k]!r} (stores)" for k in EXTRACTION_FIELDS
             if extraction[k] != getattr(spec, k)]
    if diffs:
        raise InputSpecError(f"{where}: the stores were extracted with other settings than the model was trained on: "
                             f"{'; '.join(diffs)}; extract them as the training stores were")
