"""Models trained by other code, loaded by type: the DFDC authors' J3D, ResNet3D-34, MC3 and R(2+1)D files.

Their weight files are plain state dicts with a two-class head (`logits` / `fc` with 2 outputs, the classes in the
order their folder listing gave, often FAKE before REAL); every recipe here is one-logit (P(FAKE) = sigmoid). The
exact conversion: softmax over (z_REAL, z_FAKE) gives P(FAKE) = sigmoid(z_FAKE - z_REAL), and both logits are linear
in the same features, so the one-logit head is w_FAKE - w_REAL and b_FAKE - b_REAL.

Their J3D for 112-px crops (a 7x3x3 stem) is recognised by its stem and built as `InceptionI3d(input_size=112)`.
Each type is fed as its authors fed it (`foreign_spec`): the type's published input (`i3d.models.zoo.contract_for`),
every frame of the face-crop video at its own rate (fps 0), and the first `num_frames` frames, as their inference
did; `sampling="centre"` and `clips=K` choose I3D's protocol instead.

    member = load_foreign("mc3_112", "mc3_18_112.model", class_order=("FAKE", "REAL"))
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn

from i3d.data.spec import InputSpec
from i3d.models import InceptionI3d, TwoStreamI3D
from i3d.models.pretrained import i3d_from_file, read_zoo_state_dict
from i3d.models.weights_io import WeightsError
from i3d.models.zoo import MODELS, build_model, contract_for

log = logging.getLogger(__name__)
BINARY_CLASSES = ("REAL", "FAKE")  # ours: index 1 is the positive class, P(FAKE) = sigmoid(logit)


def foreign_spec(model_type: str, sampling: str = "first", clips: int = 1) -> InputSpec:
    """The input of a `model_type` file: its published crop, resize and normalisation, every frame (fps 0), and the
    first clip of its length (sampling="first") or `clips` clips centred in equal segments ("centre"); the decoded
    frames as they are (stored=False: the file was not trained on our stores)."""
    base = contract_for(model_type)
    return dataclasses.replace(base, fps=0.0, eval_num_frames=base.num_frames, eval_num_clips=clips,
                               eval_start=sampling, stored=False)


def load_two_class(model_type: str, path: str | Path) -> nn.Module:
    """A `model_type` backbone with the file's own head (2 outputs, or 1), every tensor checked."""
    if model_type not in MODELS:
        raise WeightsError(f"unknown model type {model_type!r} for {path}; use one of {sorted(MODELS)}")
    if model_type == "i3d":  # their J3D, for 224 or (a 7x3x3 stem) 112 px
        net, _fmt = i3d_from_file(path)
        _check_outputs(net.num_classes, path)
        return net
    outputs = _zoo_outputs(path)
    _check_outputs(outputs, path)
    net = build_model(model_type, num_classes=outputs)
    reset = MODELS[model_type].load_weights(net, path)
    if reset:  # the head was not in the file: P(FAKE) would come from random weights
        raise WeightsError(f"{path}: no classifier for a {model_type} in it ({reset} left at random)")
    return net


def _zoo_outputs(path: str | Path) -> int:
    """The head size of a video-ResNet file (torchvision and kenshohara both name it fc.weight)."""
    weight = read_zoo_state_dict(path).get("fc.weight")
    return int(weight.shape[0]) if weight is not None else 0


def _check_outputs(outputs: int, path) -> None:
    if outputs not in (1, 2):
        raise WeightsError(f"{path}: a classifier with {outputs} outputs; a DFDC model has 2 (REAL, FAKE) or 1")


def binary_head(net: nn.Module, class_order: tuple[str, str] = BINARY_CLASSES) -> nn.Module:
    """Replace a two-class head by the exact one-logit head z_FAKE - z_REAL (in place); a one-logit head is kept.

    Args:
        class_order: the file's class of output 0 and of output 1, e.g. ("FAKE", "REAL") for a folder listing that
            put FAKE first.
    """
    if sorted(class_order) != sorted(BINARY_CLASSES):
        raise ValueError(f"class order {class_order} must name REAL and FAKE once each")
    head = net.logits if isinstance(net, InceptionI3d) else net.fc
    if head.weight.shape[0] == 1:
        return net
    fake, real = class_order.index("FAKE"), class_order.index("REAL")
    weight = (head.weight[fake] - head.weight[real])[None].detach().clone()
    bias = (head.bias[fake] - head.bias[real])[None].detach().clone()
    net.reset_classifier(1)
    new = net.logits if isinstance(net, InceptionI3d) else net.fc
    with torch.no_grad():
        new.weight.copy_(weight.reshape(new.weight.shape))
        new.bias.copy_(bias)
    log.info("two-class head (outputs %s) converted to one logit z_FAKE - z_REAL", list(class_order))
    return net


def load_foreign(model_type: str, path: str | Path, *, class_order: tuple[str, str] = BINARY_CLASSES,
                 sampling: str = "first", clips: int = 1, device: str | torch.device = "cpu"
                 ) -> tuple[TwoStreamI3D, InputSpec]:
    """(an RGB-only TwoStreamI3D with a one-logit head in eval mode, its input spec) of a foreign weight file."""
    net = binary_head(load_two_class(model_type, path), class_order)
    spec = foreign_spec(model_type, sampling, clips)
    if getattr(net, "input_size", 224) == 112:  # the J3D variant: 112-px crops of a 128-px short side
        spec = dataclasses.replace(spec, crop_size=112, short_side=128)
    return TwoStreamI3D(net, None).to(device).eval(), spec
