"""Input contracts: each model's documented sizes and value ranges, produced by `prepare`."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from i3d.config import load_config
from i3d.models.contracts import CONTRACTS, InputContract, contract_for, loop_frames, prepare

# published statistics, written out here so a wrong constant in the code cannot agree with itself
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
KINETICS = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
DOCUMENTED_RANGE = {"i3d": (-1.0, 1.0), "none": (0.0, 255.0), "imagenet": (-2.118, 2.640), "kinetics": (-1.895, 2.873)}


def test_the_dfdc_models_use_their_authors_normalisations():
    assert contract_for("i3d").normalization == "i3d"
    assert contract_for("res34").normalization == "none"
    assert {contract_for(n).normalization for n in ("mc3_112", "mc3_224", "r2p1_112")} == {"imagenet"}
    assert [contract_for(n).crop_size for n in ("mc3_112", "mc3_224", "r2p1_112", "res34")] == [112, 224, 112, 224]


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_black_and_white_frames_hit_the_documented_extremes(name):
    contract = dataclasses.replace(contract_for(name), min_frames=2)
    frames = np.zeros((2, 40, 50, 3), np.uint8)
    frames[1] = 255
    x = prepare(frames, contract).numpy()
    assert x.shape == (3, 2, contract.crop_size, contract.crop_size) and x.dtype == np.float32
    black, white = x[:, 0, 0, 0], x[:, 1, 0, 0]  # per channel
    if contract.normalization == "i3d":
        expected_black, expected_white = np.full(3, -1.0), np.full(3, 1.0)
    elif contract.normalization == "none":
        expected_black, expected_white = np.zeros(3), np.full(3, 255.0)
    else:
        mean, std = np.array(IMAGENET if contract.normalization == "imagenet" else KINETICS)
        expected_black, expected_white = -mean / std, (1 - mean) / std
    np.testing.assert_allclose(black, expected_black, rtol=1e-5)
    np.testing.assert_allclose(white, expected_white, rtol=1e-5)
    low, high = DOCUMENTED_RANGE[contract.normalization]
    assert x.min() == pytest.approx(low, abs=1e-3) and x.max() == pytest.approx(high, abs=1e-3)


def test_resize_and_centre_crop_are_exact():
    contract = InputContract(crop_size=112, short_side=128, normalization="none", min_frames=1)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 128, 160, 3), dtype=np.uint8)  # short side already 128: no resampling
    x = prepare(frames, contract).numpy()
    np.testing.assert_array_equal(x, frames[:, 8:120, 24:136].transpose(3, 0, 1, 2).astype(np.float32))
    # a landscape 64 x 96 frame is upscaled to 128 x 192, then cropped centrally
    small = np.zeros((1, 64, 96, 3), np.uint8)
    small[:, :, 48:] = 200  # right half bright
    y = prepare(small, contract).numpy()
    assert y.shape == (3, 1, 112, 112)
    assert (y[:, :, :, :40] == 0).all() and (y[:, :, :, 60:] == 200).all()  # the edge sits at column 96 - 40 = 56


def test_short_clips_are_looped_never_trimmed():
    frames = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 8, 8, 3), np.uint8)
    assert loop_frames(frames, 12)[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert len(loop_frames(frames, 3)) == 5
    contract = InputContract(crop_size=8, short_side=8, normalization="none", min_frames=7)
    assert prepare(frames, contract)[0, :, 0, 0].tolist() == [0, 1, 2, 3, 4, 0, 1]


def test_contracts_are_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        contract_for("i3d").crop_size = 112
    with pytest.raises(ValueError, match="normalization='imagenet_bgr'"):
        InputContract(crop_size=112, short_side=128, normalization="imagenet_bgr")
    with pytest.raises(ValueError, match="crop_size=256"):
        InputContract(crop_size=256, short_side=128, normalization="i3d")
    with pytest.raises(ValueError, match="no input contract for model 'c3d'"):
        contract_for("c3d")


def test_prepare_rejects_wrong_inputs():
    contract = contract_for("mc3_112")
    with pytest.raises(TypeError, match="uint8"):
        prepare(np.zeros((4, 32, 32, 3), np.float32), contract)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        prepare(np.zeros((4, 32, 32), np.uint8), contract)
    with pytest.raises(ValueError, match="2 channels"):
        prepare(np.zeros((4, 32, 32, 3), np.uint8), dataclasses.replace(contract, in_channels=2))
    with pytest.raises(ValueError, match="empty clip"):
        prepare(np.zeros((0, 32, 32, 3), np.uint8), contract)


DFDC_CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("dfdc_*.yaml"))


def test_there_are_seven_dfdc_recipes_two_with_cutmix():
    assert len(DFDC_CONFIGS) == 7
    assert sum("cutmix_alpha" in yaml.safe_load(p.read_text())["train"] for p in DFDC_CONFIGS) == 2


@pytest.mark.parametrize("path", DFDC_CONFIGS, ids=lambda p: p.stem)
def test_dfdc_recipes_follow_their_models_contracts(path):
    recipe = yaml.safe_load(path.read_text())
    name = recipe["model"]["rgb"]["name"]
    contract = contract_for(name)
    data = recipe["data"]
    assert recipe["model"]["num_classes"] == 1 and recipe["model"]["streams"] == ["rgb"]
    assert (data["crop_size"], data["normalization"]) == (contract.crop_size, contract.normalization)
    assert data["num_frames"] == data["eval_num_frames"] == contract.min_frames
    assert data["store_root"].endswith(f"h5_{contract.short_side}")
    cfg = load_config(path)  # the trainer's DFDC hooks (dfdc index, sampler, CutMix) exist: the recipe loads
    assert (cfg.data.crop_size, cfg.data.normalization) == (contract.crop_size, contract.normalization)
