"""i3d.inference.windows: whole-video I3D in overlapping windows gives the one pass's Mixed_5c steps, exactly those."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from i3d.data import transforms as T
from i3d.data.spec import InputSpec
from i3d.inference.features import FeatureExtractor, FeatureOptions
from i3d.inference.windows import STRIDE, step_reach, window_plan
from i3d.models import InceptionI3d

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("window", [128, 256])
def test_plan_tiles_the_video_s_steps_with_aligned_windows(window):
    for n in [*range(1, 300), 1001, 1002, 1003, 1004, 45_000]:
        plan = window_plan(n, window)
        assert plan[0][0] == 0 and plan[-1][1] == n
        assert [p[2] for p in plan] == [0] + [p[3] for p in plan[:-1]] and plan[-1][3] == math.ceil(n / STRIDE)
        for start, end, first, stop in plan:
            assert start % STRIDE == 0 and (end - start) % STRIDE == n % STRIDE and end - start < window + STRIDE
            assert first < stop  # every window keeps a step
            lo, hi = step_reach(end - start)
            # a kept step sees only its window's frames, or the padding where the window ends with the video
            assert start + STRIDE * (first - start // STRIDE) + lo >= 0 or start == 0
            assert start + STRIDE * (stop - 1 - start // STRIDE) + hi < end or end == n


def test_a_long_video_needs_few_windows():
    plan = window_plan(45_000, 256)
    assert len(plan) == math.ceil((45_000 - 96) / 160) and sum(e - s for s, e, *_ in plan) / 45_000 < 1.61


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="window=100: use a multiple of 8 of at least 128"):
        window_plan(500, 100)
    with pytest.raises(ValueError, match="window=130"):
        FeatureOptions(mode="video", window=130)


@pytest.fixture(scope="module")
def one_pass():
    """A random I3D, an odd-length video of 8x8 frames (time is what matters here) and its Mixed_5c in one pass."""
    torch.manual_seed(0)
    net = InceptionI3d(num_classes=5, in_channels=3).eval()
    frames = np.random.default_rng(0).integers(0, 256, (203, 8, 8, 3), dtype=np.uint8)
    with torch.no_grad():
        fmap = net.forward_features(torch.from_numpy(T.stream_input("rgb", frames, 0, 0, 8)))  # (1, 1024, 26, 1, 1)
    return net, frames, fmap


def test_kept_steps_are_the_one_pass_s_and_their_neighbours_are_not(one_pass):
    net, frames, fmap = one_pass
    plan = window_plan(len(frames), 128)
    assert len(plan) == 4  # 203 % 8 = 3: windows of 131 frames, so Conv3d_1a pads 3 in front as for 203
    scale = fmap.abs().max()
    for k, (start, end, first, stop) in enumerate(plan):
        with torch.no_grad():
            part = net.forward_features(torch.from_numpy(T.stream_input("rgb", frames[start:end], 0, 0, 8)))
        local = start // STRIDE
        torch.testing.assert_close(part[:, :, first - local : stop - local], fmap[:, :, first:stop], rtol=1e-5,
                                   atol=1e-5 * scale)
        # kept steps agree to < 1e-6 of the map's largest value; the next step out differs by > 4e-5 (measured)
        if k > 0:  # one step more in front would have seen the window's zero padding instead of frames
            assert (part[:, :, first - local - 1] - fmap[:, :, first - 1]).abs().max() > 1e-5 * scale
        if k < len(plan) - 1:  # and so would one more step at the back
            assert (part[:, :, stop - local] - fmap[:, :, stop]).abs().max() > 1e-5 * scale


def test_video_mode_in_windows_equals_the_one_pass(one_pass):
    net, frames, fmap = one_pass
    spec = InputSpec(short_side=8, crop_size=8)
    options = FeatureOptions(mode="video", logits=True, window=128)
    out = FeatureExtractor({"rgb": net}, spec, options).extract({"rgb": frames})
    with torch.no_grad():
        pooled = F.avg_pool3d(fmap, (2, 1, 1), stride=1)  # (1, 1024, 25, 1, 1)
        logits = net.logits(pooled)[0, :, :, 0, 0].T.numpy()
    expected = pooled[0, :, :, 0, 0].T.numpy()
    assert out.features["rgb"].shape == (25, 1024)
    np.testing.assert_allclose(out.features["rgb"], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_allclose(out.logits["rgb"], logits, rtol=1e-5, atol=1e-5 * np.abs(logits).max())
    assert out.start_frame.tolist() == list(range(0, 200, 8)) and out.end_frame[-1] == 203
