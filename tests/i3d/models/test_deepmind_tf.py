"""deepmind/kinetics-i3d's TensorFlow checkpoints: their real .index files, Sonnet names -> InceptionI3d, loading."""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from tf_bundle_writer import write_bundle

from i3d.build import build_backbone
from i3d.config import StreamConfig
from i3d.inference import predict
from i3d.models import InceptionI3d
from i3d.models.deepmind_tf import index_shapes, name_map, our_name, read_deepmind_tf
from i3d.models.pretrained import load_i3d, read_state_dict
from i3d.models.tf_checkpoint import Bundle, read_index
from i3d.models.weights_io import WeightsError
from tests.helpers import load_script

FIXTURES = Path(__file__).parent / "fixtures"
DEEPMIND = FIXTURES / "kinetics_i3d"  # the five .index files of deepmind/kinetics-i3d's data/checkpoints
REPO = Path(__file__).resolve().parents[3]
# checkpoint -> (classes, input channels, scope, optimiser slots saved with it)
CHECKPOINTS = {
    "rgb_imagenet": (400, 3, "RGB/inception_i3d/", 0),
    "rgb_scratch": (400, 3, "RGB/inception_i3d/", 0),
    "flow_imagenet": (400, 2, "Flow/inception_i3d/", 0),
    "flow_scratch": (400, 2, "Flow/inception_i3d/", 0),
    "rgb_scratch_kin600": (600, 3, "", 116),  # Momentum of every trainable variable
}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_every_variable_maps_onto_inception_i3d(name):
    classes, channels, scope, slots = CHECKPOINTS[name]
    bundle = read_index(DEEPMIND / name / "model.ckpt")
    assert {e.dtype for e in bundle.entries.values()} == {"f4"}
    mapping = name_map(bundle)
    assert all(tf.startswith(scope) for tf in mapping)
    left = sorted(set(bundle.entries) - set(mapping))
    assert len(left) == slots and all(n.endswith("/Momentum") and n[: -len("/Momentum")] in mapping for n in left)
    want = {k: tuple(v.shape) for k, v in InceptionI3d(classes, channels).state_dict().items()
            if not k.endswith(("num_batches_tracked", "bn.weight"))}
    assert index_shapes(DEEPMIND / name / "model.ckpt.index") == want  # every tensor, once, in our layout
    assert mapping[scope + "Mixed_5b/Branch_2/Conv3d_0a_3x3/conv_3d/w"] == "Mixed_5b.b2b.conv.weight"


def test_sonnet_names():
    assert our_name("Conv3d_1a_7x7/batch_norm/moving_variance") == "Conv3d_1a_7x7.bn.running_var"
    assert our_name("Mixed_4f/Branch_3/Conv3d_0b_1x1/conv_3d/w") == "Mixed_4f.b3b.conv.weight"
    assert our_name("Logits/Conv3d_0c_1x1/conv_3d/b") == "logits.bias"
    for other in ("Mixed_4f/Branch_3/MaxPool3d_0a_3x3/conv_3d/w", "Mixed_3b/Branch_2/Conv3d_0a_3x3/conv_3d/w",
                  "Conv3d_1a_7x7/conv_3d/w/Momentum", "Mixed_6a/Branch_0/Conv3d_0a_1x1/conv_3d/w"):
        assert our_name(other) is None, other


def _joint(extra: dict | None = None) -> Bundle:
    rgb, flow = (read_index(DEEPMIND / name / "model.ckpt") for name in ("rgb_imagenet", "flow_imagenet"))
    return dataclasses.replace(rgb, entries={**rgb.entries, **flow.entries, **(extra or {})})


def test_joint_rgb_and_flow_checkpoint_needs_a_prefix():
    with pytest.raises(WeightsError, match=r"the networks 'Flow/inception_i3d/', 'RGB/inception_i3d/'.*'flow\.'"):
        name_map(_joint())
    flow = name_map(_joint(), prefix="flow.")
    assert len(flow) == 230 and all(n.startswith("Flow/") for n in flow)
    assert all(n.startswith("RGB/") for n in name_map(_joint(), prefix="rgb."))


def test_unknown_variables_are_listed():
    bundle = read_index(DEEPMIND / "rgb_imagenet" / "model.ckpt")
    stray = dataclasses.replace(bundle.entries["RGB/inception_i3d/Logits/Conv3d_0c_1x1/conv_3d/b"],
                                name="RGB/inception_i3d/Mixed_6a/Branch_0/Conv3d_0a_1x1/conv_3d/b")
    extra = {stray.name: stray, "global_step": stray, "RGB/inception_i3d/Conv3d_1a_7x7/conv_3d/w/Adam": stray}
    bundle = dataclasses.replace(bundle, entries={**bundle.entries, **extra})
    with pytest.raises(WeightsError, match=r"no I3D counterpart .*: RGB/inception_i3d/Mixed_6a/Branch_0/\S+$"):
        name_map(bundle)  # global_step and an Adam slot of a mapped variable are bookkeeping, not errors
    with pytest.raises(WeightsError, match=r"small.ckpt: no I3D .*\(no variable named \*/Conv3d_1a_7x7/conv_3d/w\)"):
        read_deepmind_tf(FIXTURES / "tf" / "small.ckpt")


# ------------------------------------------------------------------------ a full checkpoint in DeepMind's layout
@pytest.fixture(scope="module")
def kin600(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """rgb_scratch_kin600's tensors (names, shapes) with random values, as model.ckpt (the Momentum slots left out)."""
    rng = np.random.default_rng(0)
    entries = read_index(DEEPMIND / "rgb_scratch_kin600" / "model.ckpt").entries
    arrays = {n: rng.standard_normal(e.shape, dtype=np.float32) for n, e in entries.items() if "Momentum" not in n}
    for name in [n for n in arrays if n.endswith("moving_variance")]:
        arrays[name] = np.abs(arrays[name]) + 0.5
    return write_bundle(tmp_path_factory.mktemp("rgb_scratch_kin600") / "model.ckpt", arrays), arrays


def test_layouts_dhwio_to_oidhw_and_vectors(kin600):
    prefix, arrays = kin600
    state, fmt = read_state_dict(prefix.with_name("model.ckpt.index"))
    assert fmt == "tensorflow" and len(state) == 287  # 57 units x (w, beta, gamma=1, mean, var) + logits w, b
    w = arrays["Conv3d_1a_7x7/conv_3d/w"]  # (T, H, W, Cin, Cout) = (7, 7, 7, 3, 64)
    assert state["Conv3d_1a_7x7.conv.weight"][5, 2, 1, 3, 6] == w[1, 3, 6, 2, 5]
    beta = arrays["Mixed_5b/Branch_2/Conv3d_0a_3x3/batch_norm/beta"]  # (1, 1, 1, 1, 128)
    assert np.array_equal(state["Mixed_5b.b2b.bn.bias"].numpy(), beta.reshape(128))
    assert torch.equal(state["Mixed_5b.b2b.bn.weight"], torch.ones(128))  # Sonnet's scale=False
    assert np.array_equal(state["logits.bias"].numpy(), arrays["Logits/Conv3d_0c_1x1/conv_3d/b"])


def test_convert_weights(kin600, tmp_path, capsys):
    prefix, arrays = kin600
    tool = load_script(REPO / "tools" / "convert_weights.py")
    assert tool.main(tool.parse_args([str(prefix), str(tmp_path / "kin600.pt")])) == 0
    assert "(tensorflow)" in capsys.readouterr().out
    converted = torch.load(tmp_path / "kin600.pt", weights_only=True)
    assert converted["logits.weight"].shape == (600, 1024, 1, 1, 1)
    kernel = torch.from_numpy(arrays["Mixed_4c/Branch_1/Conv3d_0b_3x3/conv_3d/w"]).permute(4, 3, 0, 1, 2)
    assert torch.equal(converted["Mixed_4c.b1b.conv.weight"], kernel)


def test_predict_names_kinetics600_classes(kin600):
    predictor = predict.from_kinetics_rgb(kin600[0])  # the class count picks the label map
    labels = (REPO / "i3d" / "inference" / "kinetics600_labels.txt").read_text().splitlines()
    assert predictor.classes == labels and len(set(labels)) == 600 and labels[-1] == "zumba"
    assert predict.KINETICS_LABELS[600].name == "kinetics600_labels.txt"


def test_training_starts_from_it_and_checks_channels(kin600, caplog):
    with caplog.at_level(logging.WARNING):  # model.rgb.pretrained=.../model.ckpt: another class count, same backbone
        net = build_backbone("rgb", StreamConfig(pretrained=str(kin600[0])), num_classes=101, dropout=0.5)
    assert "600 classes" in caplog.text and net.logits.weight.shape[0] == 101
    with pytest.raises(WeightsError, match=r"model.ckpt \(tensorflow\) does not fit .*Conv3d_1a_7x7.conv.weight"):
        load_i3d(InceptionI3d(400, in_channels=2), kin600[0])
