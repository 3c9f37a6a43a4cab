"""Each zoo model's own input, as its authors trained it: the defaults a run of that model should use.

The DFDC ensemble mixes networks trained with different input conventions, and feeding one model another's
normalisation fails silently (the logits are merely worse). So a run's `data:` section is checked against
`contract_for(name)` (`i3d.build.check_input_contract`), and every checkpoint saves the `InputSpec` it was trained
with: tools read that, never this table (a model fine-tuned at 32 px is fed 32 px).

    name          crop  short side  normalization  value range of the prepared input     clip frames
    i3d           224   256         i3d            [-1, 1]                                64
    res34         224   256         none           [0, 255]                               32
    mc3_112       112   128         imagenet       [-2.118, 2.640] (ImageNet mean/std)    32
    mc3_224       224   256         imagenet       [-2.118, 2.640]                        32
    r2p1_112      112   128         imagenet       [-2.118, 2.640]                        32
    r3d_18        112   128         kinetics       [-1.895, 2.873] (torchvision video)    16
    mc3_18        112   128         kinetics       [-1.895, 2.873]                        16
    r2plus1d_18   112   128         kinetics       [-1.895, 2.873]                        16

The normalisation arithmetic itself lives in `i3d.data.transforms.normalize_rgb`, shared with the dataset.
"""

from __future__ import annotations

from i3d.data.spec import InputSpec


def _spec(crop: int, short_side: int, normalization: str, frames: int) -> InputSpec:
    return InputSpec(short_side=short_side, crop_size=crop, num_frames=frames, eval_num_frames=frames,
                     normalization=normalization)  # fmt: skip


CONTRACTS: dict[str, InputSpec] = {
    "i3d": _spec(224, 256, "i3d", 64),
    # Hara et al.'s ResNet3D-34 fine-tuned on raw pixel values (the DFDC author found it trained only that way)
    "res34": _spec(224, 256, "none", 32),
    "mc3_112": _spec(112, 128, "imagenet", 32),
    "mc3_224": _spec(224, 256, "imagenet", 32),
    "r2p1_112": _spec(112, 128, "imagenet", 32),
    # torchvision's own Kinetics recipe: resize to 128 x 171, centre crop 112, 16-frame clips
    "r3d_18": _spec(112, 128, "kinetics", 16),
    "mc3_18": _spec(112, 128, "kinetics", 16),
    "r2plus1d_18": _spec(112, 128, "kinetics", 16),
}


def contract_for(name: str) -> InputSpec:
    """The input zoo model `name` was published with."""
    if name not in CONTRACTS:
        raise ValueError(f"no input contract for model {name!r}; known models: {sorted(CONTRACTS)}")
    return CONTRACTS[name]
