"""Loading torchvision, kenshohara and our checkpoints into the video ResNets (fake files built here; nothing
downloads)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import video as tv

from i3d.models.pretrained import load_video_resnet
from i3d.models.video_resnet import mc3_18, r2plus1d_18, r3d_18, resnet3d_34
from i3d.models.weight_formats import kenshohara_to_torchvision
from i3d.models.weights_io import WeightsError


@pytest.mark.parametrize(("ours", "theirs"), [(r3d_18, tv.r3d_18), (mc3_18, tv.mc3_18), (r2plus1d_18, tv.r2plus1d_18)])
def test_torchvision_state_dict_loads_and_reproduces_logits(tmp_path, ours, theirs):
    torch.manual_seed(0)
    reference = theirs(weights=None).eval()
    path = tmp_path / "kinetics.pth"
    torch.save(reference.state_dict(), path)
    model = ours(num_classes=400)
    assert load_video_resnet(model, path) == []
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(x))


def test_new_head_and_flow_stem(tmp_path):
    torch.manual_seed(0)
    reference = tv.r3d_18(weights=None)
    path = tmp_path / "kinetics.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in reference.state_dict().items()}}, path)  # DataParallel
    model = r3d_18(num_classes=1, in_channels=2)
    with pytest.raises(WeightsError, match="rgb_to_flow=True"):  # RGB weights never land in a flow net unasked
        load_video_resnet(model, path)
    fresh_fc = model.fc.weight.clone()
    assert load_video_resnet(model, path, rgb_to_flow=True) == ["fc.weight", "fc.bias"]
    torch.testing.assert_close(model.fc.weight, fresh_fc)  # the 1-logit head stays as initialised
    torch.testing.assert_close(model.layer3[1].conv2[0].weight, reference.layer3[1].conv2[0].weight)
    # TSN cross-modality init: the RGB kernel averaged over its 3 channels, once per flow channel
    mean = reference.stem[0].weight.mean(dim=1)
    torch.testing.assert_close(model.stem[0].weight[:, 0], mean)
    torch.testing.assert_close(model.stem[0].weight[:, 1], mean)


def test_wrong_architecture_and_bad_files_are_reported(tmp_path):
    path = tmp_path / "r3d.pth"
    torch.save(tv.r3d_18(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match=r"layer1\.0\.conv1\.0\.0\.weight|has shape"):
        load_video_resnet(r2plus1d_18(), path)
    with pytest.raises(WeightsError, match="not found"):
        load_video_resnet(r3d_18(), tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth is truncated or not a torch file"):
        load_video_resnet(r3d_18(), tmp_path / "junk.pth")


class HaraBlock(nn.Module):
    """Reference basic block written from Hara et al.'s description: conv-bn-relu-conv-bn + shortcut A."""

    def __init__(self, c_in: int, c: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(c)
        self.conv2 = nn.Conv3d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(c)
        self.stride, self.c = stride, c

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        shortcut = torch.cat([shortcut, shortcut.new_zeros(shortcut.shape[0], self.c - shortcut.shape[1],
                                                           *shortcut.shape[2:])], dim=1)
        return F.relu(out + shortcut)


class HaraResNet34(nn.Module):
    """An independent ResNet3D-34 with kenshohara's parameter names (conv1, bn1, layerN.M.conv1, ..., fc)."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, 7, (1, 2, 2), 3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        widths, c_in = [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 64
        for i, (c, n, stride) in enumerate(widths, start=1):
            setattr(self, f"layer{i}", nn.Sequential(*[HaraBlock(c_in if j == 0 else c, c, stride if j == 0 else 1)
                                                       for j in range(n)]))
            c_in = c
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = F.max_pool3d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3, 4)))


def _randomise_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)


def test_kenshohara_checkpoint_maps_onto_resnet3d_34(tmp_path):
    torch.manual_seed(0)
    reference = HaraResNet34().eval()
    _randomise_bn(reference)
    state = {"module." + k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet-34-kinetics.pth"
    torch.save({"epoch": 200, "arch": "resnet-34", "state_dict": state}, path)  # like the 2017 release (no counters)
    model = resnet3d_34(num_classes=400)
    assert load_video_resnet(model, path) == []  # BatchNorm fills in the missing counters itself
    x = torch.randn(1, 3, 8, 48, 48) * 60 + 110  # this model eats raw 0-255 pixel values
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(x), rtol=1e-4, atol=1e-4)


def test_kenshohara_shortcut_b_checkpoint_needs_shortcut_b_model(tmp_path):
    theirs = resnet3d_34(num_classes=700, shortcut="B").state_dict()  # r3d34_K_200ep.pth: 1x1x1 shortcuts, K700
    renamed = {"conv1.weight": theirs["stem.0.weight"]}
    for k, v in theirs.items():
        k = k.replace("stem.1.", "bn1.").replace(".conv1.0.", ".conv1.").replace(".conv1.1.", ".bn1.")
        renamed[k.replace(".conv2.0.", ".conv2.").replace(".conv2.1.", ".bn2.")] = v
    del renamed["stem.0.weight"]
    path = tmp_path / "r3d34_K_200ep.pth"
    torch.save({"arch": "resnet", "state_dict": renamed}, path)
    with pytest.raises(WeightsError, match="shortcut='B'"):
        load_video_resnet(resnet3d_34(num_classes=1), path)
    model = resnet3d_34(num_classes=1, shortcut="B")
    assert load_video_resnet(model, path) == ["fc.weight", "fc.bias"]
    torch.testing.assert_close(model.layer2[0].downsample[0].weight, theirs["layer2.0.downsample.0.weight"])


def test_kenshohara_rejects_foreign_keys():
    with pytest.raises(WeightsError, match="cardinality"):
        kenshohara_to_torchvision({"layer1.0.cardinality.weight": torch.zeros(1)})


def test_auto_loader_tells_formats_apart_and_picks_a_stream(tmp_path):
    torch.manual_seed(0)
    source = mc3_18(num_classes=1)
    path = tmp_path / "two_stream.pt"
    # one of our checkpoints: {"model": TwoStreamI3D.state_dict()} with rgb.* keys (here a flow stream too)
    state = {f"rgb.{k}": v for k, v in source.state_dict().items()}
    state["flow.fc.bias"] = torch.zeros(1)
    torch.save({"model": state, "epoch": 3}, path)
    model = mc3_18(num_classes=1)
    assert load_video_resnet(model, path, prefix="rgb.") == []
    torch.testing.assert_close(model.layer4[1].conv2[0].weight, source.layer4[1].conv2[0].weight)
    with pytest.raises(WeightsError, match="no keys under prefix 'depth.'"):
        load_video_resnet(model, path, prefix="depth.")
    hara = tmp_path / "hara.pth"
    torch.save({"state_dict": HaraResNet34().state_dict()}, hara)
    assert load_video_resnet(resnet3d_34(num_classes=400), hara) == []


def test_a_dropped_head_is_said(tmp_path, caplog):
    """A DFDC two-class file loaded into a one-logit model keeps only the backbone, and a warning says so."""
    from i3d.models.zoo import build_model

    torch.save(build_model("mc3_112", 2).state_dict(), tmp_path / "two.model")
    assert load_video_resnet(build_model("mc3_112", 1), tmp_path / "two.model") == ["fc.weight", "fc.bias"]
    assert "classifier has 2 classes, the model 1" in caplog.text
