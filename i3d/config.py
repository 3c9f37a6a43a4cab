"""Run configuration: frozen dataclasses whose defaults are DeepMind's I3D recipe.

A YAML file in `configs/` holds only the differences from these defaults; dotted `--set section.key=value`
overrides go on top; the resolved config is saved as `config.yaml` in the run folder and inside every checkpoint.

    cfg = load_config("configs/ucf101_i3d_two_stream.yaml", ["optim.lr=0.01", "model.streams=rgb"])
    cfg.optim.lr            # 0.01
    config_to_dict(cfg)     # plain dict (lists, not tuples), the form stored in checkpoints
    config_from_dict(d)     # back to a Config, with the same type checks
"""

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from i3d.data.cutmix import CUTMIX_MODES
from i3d.data.dataset import STREAMS

DATASETS = ("ucf101", "hmdb51", "kinetics", "csv", "folder", "dfdc")
SAMPLERS = ("random", "rebalanced")


class ConfigError(ValueError):
    """A config file or override names an unknown key or gives a value of the wrong type."""


@dataclass(frozen=True)
class StreamConfig:
    """One stream's backbone and where its initial weights come from."""

    name: str = "i3d"  # a key of i3d.models.zoo.MODELS ('i3d' = DeepMind's InceptionI3d)
    pretrained: str = ""  # weights for the zoo entry's loader ("" = random init); another class count resets the head
    pretrained_prefix: str = ""  # e.g. "rgb." to pick one stream out of one of our two-stream checkpoints
    rgb_to_flow: bool = False  # flow stream from RGB weights: first-conv filters averaged over colour
    lr_scale: float = 1.0  # this stream learns at optim.lr x lr_scale (a pretrained and a scratch stream differ)


@dataclass(frozen=True)
class ModelConfig:
    streams: tuple[str, ...] = STREAMS  # which streams to build and train: ("rgb",), ("flow",) or both
    num_classes: int = 400  # 1 = a binary head: one logit, BCE, P(positive class) = sigmoid
    dropout: float = 0.5  # before the classifier of every zoo model, as in DeepMind's I3D
    # BatchNorm running-statistics momentum of every layer; 0 keeps each architecture's own (I3D 0.01, torchvision
    # 0.1). Runs of ~1000 steps want 0.1: a 100-step average lags behind weights that are still moving fast.
    bn_momentum: float = 0.0
    fusion_weights: tuple[float, ...] = (1.0, 1.0)  # (rgb, flow) weights of the fused logits
    rgb: StreamConfig = field(default_factory=StreamConfig)
    flow: StreamConfig = field(default_factory=StreamConfig)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "ucf101"  # how the index is built: ucf101 | hmdb51 | kinetics | csv | folder | dfdc
    index: str = ""  # split files (ucf101/hmdb51), CSV (kinetics/csv), class folders (folder), DFDC parts (dfdc)
    val_index: str = ""  # a separate CSV / folder for validation ("" = the same as `index`)
    split: int = 1  # official split number of ucf101/hmdb51
    train_subset: str = "train"  # which part of the index trains ...
    val_subset: str = "test"  # ... and which validates ("test" for UCF101/HMDB51, "val" for Kinetics)
    store_root: str = ""  # folder of <video_id>.h5 stores written by tools/extract_flow.py
    skip_missing: bool = False  # go on without videos that have no store instead of stopping
    num_frames: int = 64  # frames per training clip (I3D: 64)
    crop_size: int = 224
    eval_num_frames: int = 64  # frames per validation clip; 0 = the whole video (I3D's full-length testing)
    eval_num_clips: int = 1  # evenly spaced clips per video at validation
    eval_start: str = "centre"  # centre (clips centred in equal segments) | first (one clip from frame 0, DFDC's)
    flip: bool = False  # random horizontal flip at training (negates flow x)
    normalization: str = "i3d"  # RGB normalisation of i3d.data.transforms.normalize_rgb
    # DataLoader workers per process: -1 = one per CPU this process may use; a larger number is capped at that
    # (more workers only queue for the same cores, and torch warns): i3d.loaders.loader_workers
    num_workers: int = -1
    sampler: str = "random"  # random (a shuffle) | rebalanced (i3d.data.sampler.RebalancedSampler: classes equal)


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum and a step schedule (DeepMind's recipe), with optional warm-up and cosine decay."""

    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-7
    nesterov: bool = False
    schedule: str = "step"  # step | cosine | constant
    milestones: tuple[float, ...] = ()  # epochs at which a step schedule multiplies the lr by `gamma`
    gamma: float = 0.1
    warmup_epochs: float = 0.0  # linear warm-up from `warmup_factor * lr`
    warmup_factor: float = 0.01
    min_lr: float = 0.0  # the floor of the cosine schedule
    clip_grad_norm: float = 0.0  # 0 = no clipping


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 8  # clips per process per micro-batch
    accum_steps: int = 1  # micro-batches per optimiser step (effective batch = batch_size * accum_steps * world)
    amp: str = "none"  # none | bf16 | fp16 (CUDA only; fp16 uses a GradScaler)
    channels_last: bool = True  # CUDA only: weights and clips in channels_last_3d (faster there: docs/PERFORMANCE.md)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    cpu_threads: int = 0  # torch's threads on a CPU device (0: its default, one per core)
    eval_every: int = 1  # validate every N epochs (and after the last)
    log_every: int = 10  # TensorBoard scalars every N optimiser steps
    progress: bool = True  # rank 0: a bar on a terminal, a log line every log_every steps in a batch log
    cutmix_alpha: float = 0.0  # video CutMix (i3d.data.cutmix): lam ~ Beta(alpha, alpha); 0 = off
    cutmix_mode: str = "random"  # spatial | temporal | both | random (one of the three per batch)


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation (tools/distill.py; ignored by the trainer). Defaults: MARS (flow teacher, pooled x 50).

    Loss = task * task_loss + kd * kd_loss + feature * feature_loss (i3d.distill, i3d.losses).

    Attributes:
        task: weight of the ground-truth loss.
        kd: weight (alpha) of the response-based term (softmax KD; sigmoid KD for a one-logit head).
        feature: weight (beta) of the feature-based term; MARS: 50 on the pooled final features.
        temperature: T of the response-based term.
        pairs: student endpoint -> teacher endpoint for the feature term.
        task_loss: "ce" (the trainer's loss: cross-entropy, BCE for a one-logit head) or "bce" (multi-label).
        teacher_stream: what the teacher sees: "flow", "rgb", or "both" (a two-stream teacher; KD uses its fused
            logits).
        feature_stream: for a two-stream teacher, which of its streams gives the features.
        student_stream: what the student sees ("rgb": the point of distilling flow away).
    """

    task: float = 1.0
    kd: float = 0.0
    feature: float = 50.0
    temperature: float = 4.0
    pairs: dict[str, str] = field(default_factory=lambda: {"pooled": "pooled"})
    task_loss: str = "ce"
    teacher_stream: str = "flow"
    feature_stream: str = "flow"
    student_stream: str = "rgb"

    def __post_init__(self):
        checks = [
            (self.task_loss in ("ce", "bce"), f"task_loss={self.task_loss!r}: use 'ce' (single label) or 'bce'"),
            (min(self.task, self.kd, self.feature) >= 0 and self.task + self.kd + self.feature > 0,
             f"loss weights must be >= 0 and not all 0, got task={self.task}, kd={self.kd}, feature={self.feature}"),
            (self.feature == 0 or bool(self.pairs),
             "feature weight > 0 but no endpoint pairs: set pairs, e.g. {pooled: pooled}"),
            (self.temperature > 0, f"temperature={self.temperature} must be > 0"),
            (self.teacher_stream in (*STREAMS, "both"), f"teacher_stream={self.teacher_stream!r}: rgb | flow | both"),
            (self.feature_stream in STREAMS, f"feature_stream={self.feature_stream!r}: rgb | flow"),
            (self.student_stream in STREAMS, f"student_stream={self.student_stream!r}: rgb | flow"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"distill.{message}")

    @property
    def feature_pairs(self) -> dict[str, str]:
        """The endpoint pairs actually used (none when the feature weight is 0)."""
        return dict(self.pairs) if self.feature > 0 else {}


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults, then the YAML differences in `path`, then `key.sub=value` overrides; checked by `validate`."""
    data = read_yaml_sections(path, "model:, data:, optim:, train:, distill:") if path is not None else {}
    cfg = _build(Config, data, str(path) if path else "config")
    return validate(apply_overrides(cfg, overrides))


def read_yaml_sections(path: str | Path, sections: str) -> dict:
    """The mapping of sections in a YAML config file, or a ConfigError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass one of the files in configs/")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections ({sections})")
    return data


def apply_overrides(cfg: Config, overrides: typing.Sequence[str]) -> Config:
    """Apply `a.b=value` strings (value parsed as YAML: `0.01`, `true`, `[1, 2]`, `rgb,flow` for a tuple)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value, e.g. optim.lr=0.01")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        cfg = _replace_path(cfg, key.strip().split("."), value, key.strip())
    return cfg


def _replace_path(obj, keys: list[str], value, full_key: str):
    names = {f.name: f for f in dataclasses.fields(obj)}
    if keys[0] not in names:
        raise ConfigError(f"unknown config key {full_key!r}: {type(obj).__name__} has {sorted(names)}")
    hint = typing.get_type_hints(type(obj))[keys[0]]
    if len(keys) == 1:
        new = _convert(hint, value, full_key)
    elif dataclasses.is_dataclass(hint):
        new = _replace_path(getattr(obj, keys[0]), keys[1:], value, full_key)
    else:
        raise ConfigError(f"config key {full_key!r}: {keys[0]!r} is a value, not a section")
    return dataclasses.replace(obj, **{keys[0]: new})


def _build(cls, data: dict, where: str):
    """Dataclass `cls` from a (partial) dict, checking every key and value type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} in {cls.__name__}; known keys: {sorted(hints)}")
    return cls(**{k: _convert(hints[k], v, f"{where}:{k}") for k, v in data.items()})


def _convert(hint, value, where: str):
    """Check `value` against the annotation `hint` and return it in that type (int -> float, list -> tuple)."""
    if dataclasses.is_dataclass(hint):
        return _build(hint, value or {}, where)
    if typing.get_origin(hint) is dict:  # e.g. distill.pairs: {student endpoint: teacher endpoint}
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r} ({type(value).__name__})")
        return {_convert(key_type, k, where): _convert(value_type, v, where) for k, v in value.items()}
    if typing.get_origin(hint) is tuple:
        (item_type, _ellipsis) = typing.get_args(hint)
        if isinstance(value, str):  # "rgb,flow" from the command line
            value = [yaml.safe_load(v) for v in value.split(",") if v.strip()]
        if value is None:
            value = []
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_convert(item_type, v, where) for v in value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r} ({type(value).__name__})")
    return float(value) if hint is float else value


def validate(cfg: Config) -> Config:
    """Cross-field checks with a message saying which key to fix."""
    m, d, o, t = cfg.model, cfg.data, cfg.optim, cfg.train
    checks = [
        (bool(m.streams) and set(m.streams) <= set(STREAMS) and len(set(m.streams)) == len(m.streams),
         f"model.streams={list(m.streams)} must be rgb, flow or rgb,flow"),
        (len(m.fusion_weights) == 2, f"model.fusion_weights={list(m.fusion_weights)} needs two numbers (rgb, flow)"),
        (m.num_classes > 0, f"model.num_classes={m.num_classes} must be positive"),
        (0 <= m.bn_momentum <= 1, f"model.bn_momentum={m.bn_momentum} must lie in [0, 1] (0: the model's own)"),
        (d.dataset in DATASETS, f"data.dataset={d.dataset!r} must be one of {DATASETS}"),
        (d.sampler in SAMPLERS, f"data.sampler={d.sampler!r} must be one of {SAMPLERS}"),
        (d.num_frames > 0 and d.crop_size > 0, "data.num_frames and data.crop_size must be positive"),
        (d.eval_num_frames >= 0 and d.eval_num_clips >= 1, "data.eval_num_frames >= 0 and data.eval_num_clips >= 1"),
        (d.num_workers >= -1, f"data.num_workers={d.num_workers}: 0 (load in the training process), N, or -1 (a worker "
         "per CPU)"),
        (d.eval_start in ("centre", "first") and (d.eval_start == "centre" or d.eval_num_clips == 1),
         f"data.eval_start={d.eval_start!r} must be centre or first (first: data.eval_num_clips=1)"),
        (o.schedule in ("step", "cosine", "constant"), f"optim.schedule={o.schedule!r} must be step|cosine|constant"),
        (o.lr > 0, f"optim.lr={o.lr} must be positive"),
        (m.rgb.lr_scale > 0 and m.flow.lr_scale > 0,
         f"model.rgb.lr_scale={m.rgb.lr_scale} and model.flow.lr_scale={m.flow.lr_scale} must be positive"),
        (t.amp in ("none", "bf16", "fp16"), f"train.amp={t.amp!r} must be none|bf16|fp16"),
        (t.device in ("auto", "cpu", "cuda"), f"train.device={t.device!r} must be auto|cpu|cuda"),
        (t.cutmix_alpha >= 0, f"train.cutmix_alpha={t.cutmix_alpha} must be >= 0 (0 turns CutMix off)"),
        (t.cutmix_mode in CUTMIX_MODES, f"train.cutmix_mode={t.cutmix_mode!r} must be one of {CUTMIX_MODES}"),
        (t.epochs > 0 and t.batch_size > 0 and t.accum_steps > 0,
         "train.epochs, train.batch_size and train.accum_steps must be positive"),
        (t.cpu_threads >= 0, f"train.cpu_threads={t.cpu_threads} must be >= 0 (0: one per core)"),
        (t.eval_every > 0 and t.log_every > 0,
         f"train.eval_every={t.eval_every} and train.log_every={t.log_every} must be positive (the last epoch is "
         f"always validated: eval_every >= train.epochs validates only then)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return cfg


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dict of builtins (tuples become lists) for YAML files and checkpoints."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def config_from_dict(data: dict) -> Config:
    """Inverse of `config_to_dict` (a checkpoint's "config"), with the same checks as a YAML file."""
    return validate(_build(Config, data, "checkpoint config"))


def save_config(cfg: Config, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path
