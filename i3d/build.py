"""The run config turned into the model, its input contract, the optimiser and the learning-rate schedule.

    build_model_from_config(cfg) -> TwoStreamI3D: build_backbone per stream (its i3d.models.zoo entry), pretrained init
    check_input_contract(cfg): the RGB input against the model's published one (i3d.models.zoo.contract_for)
    check_batch_norm_input(cfg, model): every BatchNorm gets more than one value per channel at train.batch_size
    build_optimizer(cfg, model, steps_per_epoch) -> (SGD, LambdaLR of lr_factor)

The data side is i3d/loaders.py; both are used by i3d/train.py, i3d/distill_train.py and the tools.
"""

import copy
import logging
import math
from pathlib import Path

import torch
from torch import nn

from i3d.config import Config, ConfigError, OptimConfig, StreamConfig
from i3d.models import TwoStreamI3D
from i3d.models.tf_checkpoint import checkpoint_prefix
from i3d.models.zoo import MODELS, build_model, model_entry

log = logging.getLogger(__name__)
IN_CHANNELS = {"rgb": 3, "flow": 2}


def build_backbone(stream: str, scfg: StreamConfig, num_classes: int, dropout: float) -> nn.Module:
    """One stream's net from its zoo entry, initialised from `scfg.pretrained` when given (a different class count
    resets the head)."""
    net = build_model(scfg.name, num_classes, in_channels=IN_CHANNELS[stream], dropout=dropout)
    if scfg.pretrained:
        if not Path(scfg.pretrained).is_file() and checkpoint_prefix(scfg.pretrained) is None:  # or TF's model.ckpt
            raise FileNotFoundError(f"model.{stream}.pretrained={scfg.pretrained} not found; fix the path or set ''")
        model_entry(scfg.name).load_weights(net, scfg.pretrained, prefix=scfg.pretrained_prefix,
                                            rgb_to_flow=scfg.rgb_to_flow)
    return net


def build_model_from_config(cfg: Config) -> TwoStreamI3D:
    """TwoStreamI3D with a backbone for each of `cfg.model.streams` and None for the other."""
    m = cfg.model
    nets = {s: build_backbone(s, getattr(m, s), m.num_classes, m.dropout) if s in m.streams else None
            for s in ("rgb", "flow")}
    model = TwoStreamI3D(nets["rgb"], nets["flow"], weights=tuple(m.fusion_weights))
    if m.bn_momentum:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = m.bn_momentum
    return model


def check_input_contract(cfg: Config) -> None:
    """Refuse an RGB normalisation other than the model's contract (a silent mix-up); log another crop size."""
    name, d = cfg.model.rgb.name, cfg.data
    if "rgb" not in cfg.model.streams or name not in MODELS:
        return
    base = MODELS[name].contract
    if d.normalization != base.normalization:
        raise ConfigError(f"model.rgb.name={name} takes {base.normalization!r} input (i3d.models.zoo) but "
                          f"data.normalization={d.normalization!r}; set --set data.normalization={base.normalization}")
    if d.crop_size != base.crop_size:
        log.warning("data.crop_size=%d differs from %s's contract (%d px); tools feed the checkpoint its %d px",
                    d.crop_size, name, base.crop_size, d.crop_size)


class _OneValue(Exception):
    """Raised by a hook at the first BatchNorm whose input has one value per channel: (layer name, input shape)."""


def check_batch_norm_input(cfg: Config, model: TwoStreamI3D) -> None:
    """Refuse a batch that leaves a BatchNorm one value per channel, before any data is read.

    In training, batch norm normalises each channel over the batch and the positions of its feature map, and one
    value cannot be normalised: torch stops at the first such step with a long traceback. The last blocks of a net
    see few positions (an 8 x 32 x 32 clip leaves I3D's Mixed_5 1 x 1 x 1), so train.batch_size=1 fails there. A
    forward pass of a copy on the meta device (shapes only, no arithmetic or memory) finds the first such layer.

    Raises:
        ConfigError naming the stream, the layer, its input shape and the settings that avoid it.
    """
    d, batch = cfg.data, cfg.train.batch_size
    for stream in model.streams:
        net = copy.deepcopy(getattr(model, stream)).to("meta").train()
        for name, module in net.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.register_forward_pre_hook(lambda m, args, name=name: _check_values(name, args[0]))
        clip = torch.empty(batch, IN_CHANNELS[stream], d.num_frames, d.crop_size, d.crop_size, device="meta")
        try:
            with torch.no_grad():
                net(clip)
        except _OneValue as e:
            layer, shape = e.args
            raise ConfigError(
                f"train.batch_size={batch} with {d.num_frames}x{d.crop_size}x{d.crop_size} clips leaves the {stream} "
                f"stream's {layer} one value per channel (input {'x'.join(map(str, shape))}), and batch norm cannot "
                f"train on one value; set train.batch_size=2 or more, or give larger clips (data.num_frames, "
                "data.crop_size)"
            ) from None
        except Exception as e:  # an op without a meta kernel: the real forward will report whatever else is wrong
            log.debug("batch norm check skipped for the %s stream (%s)", stream, e)


def _check_values(name: str, x: torch.Tensor) -> None:
    if x.dim() > 1 and x.numel() // x.shape[1] <= 1:
        raise _OneValue(name, tuple(x.shape))


def param_groups(cfg: Config, model: nn.Module) -> list[dict]:
    """One group per stream of a TwoStreamI3D at optim.lr x model.<stream>.lr_scale; any other model: one group.

    The schedule (LambdaLR) scales every group's own lr by the same factor.
    """
    if not isinstance(model, TwoStreamI3D):
        return [{"params": list(model.parameters())}]
    groups = [{"params": list(getattr(model, s).parameters()), "lr": cfg.optim.lr * getattr(cfg.model, s).lr_scale}
              for s in model.streams]
    if sum(len(g["params"]) for g in groups) != len(list(model.parameters())):
        raise ValueError("TwoStreamI3D has parameters outside its streams; param_groups would not train them")
    return groups


def lr_factor(step: int, o: OptimConfig, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of `optim.lr` after `step` optimiser steps: linear warm-up, then step / cosine / constant."""
    warmup = round(o.warmup_epochs * steps_per_epoch)
    if o.schedule == "step":
        factor = o.gamma ** sum(step >= round(m * steps_per_epoch) for m in o.milestones)
    elif o.schedule == "cosine":
        progress = min(max(step - warmup, 0) / max(total_steps - warmup, 1), 1.0)
        floor = o.min_lr / o.lr
        factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    if step < warmup:
        factor *= o.warmup_factor + (1 - o.warmup_factor) * step / warmup
    return factor


def build_optimizer(cfg: Config, model: nn.Module, steps_per_epoch: int):
    """SGD with momentum (a parameter group per stream, see `param_groups`) and a LambdaLR stepped once per step."""
    o = cfg.optim
    opt = torch.optim.SGD(param_groups(cfg, model), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                          nesterov=o.nesterov)
    total = steps_per_epoch * cfg.train.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, o, steps_per_epoch, total))
    return opt, sched
