"""Input contracts: each zoo model's published sizes and value ranges, produced by `transforms.stream_input`."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from i3d.config import load_config
from i3d.data.spec import InputSpec, InputSpecError
from i3d.data.transforms import stream_input
from i3d.models.contracts import CONTRACTS, contract_for

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
    contract = contract_for(name)
    frames = np.zeros((2, 40, 50, 3), np.uint8)
    frames[1] = 255
    x = stream_input("rgb", frames, 0, 0, 32, normalization=contract.normalization)[0]
    assert x.shape == (3, 2, 32, 32) and x.dtype == np.float32
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


def test_contracts_are_input_specs_and_specs_are_validated():
    assert all(isinstance(c, InputSpec) for c in CONTRACTS.values())
    with pytest.raises(InputSpecError, match="normalization"):
        InputSpec(normalization="zscore")
    with pytest.raises(InputSpecError, match="larger than short_side"):
        InputSpec(crop_size=256, short_side=128)
    with pytest.raises(ValueError, match="no input contract"):
        contract_for("resnet50")


DFDC_CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs").glob("dfdc_*.yaml"))


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
    assert data["num_frames"] == data["eval_num_frames"] == contract.num_frames
    assert data["store_root"].endswith(f"h5_{contract.short_side}")
    cfg = load_config(path)  # the trainer's DFDC hooks (dfdc index, sampler, CutMix) exist: the recipe loads
    assert (cfg.data.crop_size, cfg.data.normalization) == (contract.crop_size, contract.normalization)
