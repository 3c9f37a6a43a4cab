"""i3d.inference.foreign: the DFDC authors' two-class files by type -> one-logit members with their P(FAKE)."""

import dataclasses
import re

import numpy as np
import pytest
import torch

from i3d.inference import ensemble as en
from i3d.inference.foreign import binary_head, foreign_spec, load_two_class
from i3d.inference.predict import video_inputs
from i3d.models import InceptionI3d
from i3d.models.weight_formats import state_dict_to_piergiaj
from i3d.models.weights_io import WeightsError
from i3d.models.zoo import build_model

TYPES = ("i3d", "res34", "mc3_112", "mc3_224", "r2p1_112")
SMALL = dict(short_side=40, crop_size=32, num_frames=8, eval_num_frames=8)  # the conversion does not depend on size

# torchvision / our video-ResNet names -> kenshohara's (the inverse of weight_formats.kenshohara_to_torchvision)
_TO_KENSHOHARA = ((r"^stem\.0\.weight$", "conv1.weight"), (r"^stem\.1\.(.+)$", r"bn1.\1"),
                  (r"^(layer\d\.\d+)\.conv([12])\.0\.weight$", r"\1.conv\2.weight"),
                  (r"^(layer\d\.\d+)\.conv([12])\.1\.(.+)$", r"\1.bn\2.\3"))


def their_file(model_type: str, tmp_path, seed: int = 0):
    """A two-class net of `model_type` with non-trivial BN statistics, saved under its authors' key names."""
    torch.manual_seed(seed)
    net = InceptionI3d(2, 3) if model_type == "i3d" else build_model(model_type, 2)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    state = net.eval().state_dict()
    if model_type == "i3d":  # their J3D is piergiaj's InceptionI3d with replace_logits(2)
        state = state_dict_to_piergiaj(state)
    elif model_type == "res34":  # Hara et al.'s 3D-ResNets-PyTorch names
        renamed = {}
        for k, v in state.items():
            for pattern, repl in _TO_KENSHOHARA:
                if re.match(pattern, k):
                    k = re.sub(pattern, repl, k)
                    break
            renamed[k] = v
        state = {k: v for k, v in renamed.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / f"{model_type}.model"
    torch.save(state, path)
    return net, path


@pytest.mark.parametrize("model_type", TYPES)
@pytest.mark.parametrize("order", [("REAL", "FAKE"), ("FAKE", "REAL")])
def test_p_fake_equals_the_softmax_of_their_two_logits(model_type, order, tmp_path):
    net, path = their_file(model_type, tmp_path)
    spec = dataclasses.replace(foreign_spec(model_type), **SMALL)
    member = en.load_foreign_member(model_type, path, class_order=order)
    assert member.classes == ["REAL", "FAKE"] and member.binary
    member = dataclasses.replace(member, spec=spec)
    frames = np.random.default_rng(1).integers(0, 256, (3, 8, 40, 48, 3), dtype=np.uint8)  # three videos
    margins = []
    for video in frames:
        inputs = video_inputs(video, spec, ("rgb",))
        with torch.no_grad():
            two = net(inputs["rgb"])[0].double()
            one = member.model(**inputs)["rgb"][0, 0].double()
        fake, real = two[order.index("FAKE")], two[order.index("REAL")]
        margins.append((fake - real).item())
        assert one.item() == pytest.approx(margins[-1], rel=1e-4, abs=1e-4)  # the logit is z_FAKE - z_REAL
        got = en.predict_decoded([member], {en.decode_key(spec): video})[0, 1]
        assert got == pytest.approx(torch.softmax(two, 0)[order.index("FAKE")].item(), abs=1e-6)
    assert max(margins) - min(margins) > 1e-3  # the videos get different scores: a real comparison


def test_their_input_is_every_frame_and_the_first_clip():
    spec = foreign_spec("mc3_112")
    assert (spec.fps, spec.short_side, spec.crop_size, spec.normalization) == (0.0, 128, 112, "imagenet")
    assert (spec.eval_num_frames, spec.eval_start) == (32, "first")
    assert foreign_spec("i3d").eval_num_frames == 64 and foreign_spec("res34").normalization == "none"
    assert foreign_spec("mc3_112", "centre", 3).eval_num_clips == 3
    frames = np.zeros((100, 128, 128, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(100)[:, None, None]  # frame number in the red channel
    x = video_inputs(frames, dataclasses.replace(spec, normalization="none"), ("rgb",))["rgb"]
    assert x[0, 0, :, 0, 0].tolist() == list(range(32))  # frames 0-31, not the centre 34-65


def test_heads_of_other_sizes_and_unknown_types_are_refused(tmp_path):
    torch.save(build_model("mc3_112", 5).state_dict(), tmp_path / "five.model")
    with pytest.raises(WeightsError, match="5 outputs"):
        load_two_class("mc3_112", tmp_path / "five.model")
    with pytest.raises(WeightsError, match="unknown model type 'x3d'"):
        load_two_class("x3d", tmp_path / "five.model")
    with pytest.raises(ValueError, match="REAL and FAKE"):
        binary_head(build_model("mc3_112", 2), ("REAL", "REAL"))
    with pytest.raises(en.EnsembleError, match="mc3_112:.*five.model"):
        en.load_foreign_member("mc3_112", tmp_path / "five.model")


def test_model_specs_name_a_type_or_a_checkpoint():
    assert en.parse_model_spec("mc3_112:their.model:2") == ("mc3_112", en.Path("their.model"), 2.0)
    assert en.parse_model_spec("i3d:j3d.model") == ("i3d", en.Path("j3d.model"), 1.0)
    assert en.parse_model_spec("runs/a/best.pt:0.5") == (None, en.Path("runs/a/best.pt"), 0.5)


def test_their_j3d_for_112_px_is_recognised_by_its_stem(tmp_path):
    """The 7x3x3-stem J3D (checked once against their cnn3d/training/i3d.py, input_res=112: logits equal to 0.0)."""
    torch.manual_seed(0)
    net = InceptionI3d(2, 3, input_size=112).eval()
    torch.save(state_dict_to_piergiaj(net.state_dict()), tmp_path / "j3d_112.model")
    member = en.load_foreign_member("i3d", tmp_path / "j3d_112.model")
    assert member.model.rgb.input_size == 112 and (member.spec.crop_size, member.spec.short_side) == (112, 128)
    x = torch.randn(1, 3, 16, 112, 112)
    with torch.no_grad():
        two, one = net(x)[0], member.model.rgb(x)[0, 0]
        assert net.forward_features(x).shape[-2:] == (7, 7)  # as at 224 px with the standard stem
    assert one.item() == pytest.approx((two[1] - two[0]).item(), rel=1e-5)
    with pytest.raises(WeightsError, match=r"7x3x3.*input_size=112"):
        from i3d.models.pretrained import load_i3d

        load_i3d(InceptionI3d(2, 3), tmp_path / "j3d_112.model")

    with pytest.raises(en.EnsembleError, match="unknown model type 'x3d'"):
        en.parse_model_spec("x3d:their.model")
