"""Video CutMix: targets mixed by the exact pasted volume, one box shared by RGB and flow."""

import numpy as np
import pytest
import torch

from i3d.data.cutmix import Box, cutmix, mix_targets, sample_box

B, T, H, W = 6, 8, 16, 20


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"rgb": torch.rand(B, 3, T, H, W, generator=g), "flow": torch.rand(B, 2, T, H, W, generator=g) * 2 - 1}


def _changed(original, mixed):
    return (original != mixed).any(dim=1)  # (B, T, H, W): where anything was pasted


@pytest.mark.parametrize("mode", ["spatial", "temporal", "both", "random"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_targets_equal_the_pasted_volume_fraction_and_both_streams_share_the_box(mode, seed):
    streams = _batch(seed)
    before = {k: v.clone() for k, v in streams.items()}
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    out = cutmix(streams, labels, mode=mode, num_classes=3, rng=np.random.default_rng(seed))
    for k in streams:
        torch.testing.assert_close(streams[k], before[k])  # inputs untouched
    moved = out.perm != torch.arange(B)
    changed_rgb = _changed(streams["rgb"], out.streams["rgb"])
    changed_flow = _changed(streams["flow"], out.streams["flow"])
    assert torch.equal(changed_rgb, changed_flow)  # the same box in both streams
    for i in range(B):
        pasted = changed_rgb[i].float().mean().item()
        assert pasted == pytest.approx(out.fraction if moved[i] else 0.0)
        box = out.box.slices
        torch.testing.assert_close(out.streams["flow"][i][:, box[0], box[1], box[2]],
                                   streams["flow"][out.perm[i]][:, box[0], box[1], box[2]])
    assert out.fraction == out.box.volume / (T * H * W) and 0 < out.fraction < 1  # these seeds paste something
    expected = torch.zeros(B, 3)
    for i in range(B):
        expected[i, labels[i]] += 1 - out.fraction
        expected[i, labels[out.perm[i]]] += out.fraction
    torch.testing.assert_close(out.targets, expected)


def test_binary_targets_by_hand():
    labels = torch.tensor([1, 0, 0, 1, 0, 1])
    out = cutmix(_batch(), labels, num_classes=1, rng=np.random.default_rng(7))
    f, p = out.fraction, out.perm.tolist()
    hand = [[(1 - f) * labels[i].item() + f * labels[p[i]].item()] for i in range(B)]
    assert out.targets.shape == (B, 1)
    torch.testing.assert_close(out.targets, torch.tensor(hand))
    soft = mix_targets(torch.tensor([0.2, 0.9]), torch.tensor([1, 0]), 0.25, None)
    torch.testing.assert_close(soft, torch.tensor([0.2 * 0.75 + 0.9 * 0.25, 0.9 * 0.75 + 0.2 * 0.25]))


def test_box_shapes_per_mode():
    rng = np.random.default_rng(0)
    temporal = sample_box((8, 32, 32), 0.5, "temporal", rng)
    assert (temporal.t1 - temporal.t0, temporal.y0, temporal.y1, temporal.x0, temporal.x1) == (4, 0, 32, 0, 32)
    spatial = [sample_box((4, 32, 32), 0.25, "spatial", rng) for _ in range(50)]
    assert all((b.t0, b.t1) == (0, 4) and b.y1 - b.y0 <= 16 and b.x1 - b.x0 <= 16 for b in spatial)
    assert any(b.volume == 4 * 16 * 16 for b in spatial)  # unclipped boxes cover exactly lam of the clip
    both = [sample_box((8, 8, 8), 0.125, "both", rng) for _ in range(50)]
    assert all(b.t1 - b.t0 <= 4 and b.y1 - b.y0 <= 4 for b in both) and any(b.volume == 64 for b in both)
    assert Box(0, 2, 1, 3, 0, 4).volume == 16


def test_seeded_rng_reproduces_and_errors_are_clear():
    labels = torch.arange(B)
    a = cutmix(_batch(), labels, num_classes=B, rng=np.random.default_rng(3))
    b = cutmix(_batch(), labels, num_classes=B, rng=np.random.default_rng(3))
    assert a.box == b.box and torch.equal(a.perm, b.perm) and torch.equal(a.streams["rgb"], b.streams["rgb"])
    with pytest.raises(ValueError, match="num_classes"):
        cutmix(_batch(), labels)
    with pytest.raises(ValueError, match="sharing B, T, H, W"):
        cutmix({"rgb": torch.zeros(B, 3, T, H, W), "flow": torch.zeros(B, 2, T, H // 2, W // 2)}, labels, num_classes=B)
    with pytest.raises(ValueError, match="mode='cube'"):
        cutmix(_batch(), labels, num_classes=B, mode="cube")
