"""i3d.data.pictures: model input back to pictures, with the sample's own crop and flip in both streams."""

import numpy as np
import pytest
import torch

from common.pictures import GAP, LINE, resize_height
from flow.quantize import dequantize_flow, quantize_flow
from flow.store import VideoStore
from flow.store_writer import write_store
from flow.viz import flow_to_colour
from i3d.data import TwoStreamClipDataset
from i3d.data import transforms as T
from i3d.data.pictures import batch_picture, clip_picture, flow_frames, rgb_frames


@pytest.mark.parametrize("kind", T.NORMALIZATIONS)
def test_denormalize_rgb_inverts_every_normalisation(kind):
    values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1).reshape(16, 16, 3)
    np.testing.assert_array_equal(T.denormalize_rgb(T.normalize_rgb(values, kind), kind), values)
    channels_first = T.normalize_rgb(np.moveaxis(values, -1, 0), kind, channel_axis=0)
    np.testing.assert_array_equal(T.denormalize_rgb(channels_first, kind, channel_axis=0), np.moveaxis(values, -1, 0))


@pytest.fixture
def right_moving_store(tmp_path):
    """12 frames of 24x32 whose flow is 3 px to the right everywhere (bound 6)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 24, 32, 3), dtype=np.uint8)
    flow = np.zeros((12, 24, 32, 2), np.float32)
    flow[..., 0] = 3.0
    return write_store(tmp_path / "v.h5", rgb, flow, {}, bound=6.0)


def samples_with_and_without_flip(path) -> dict:
    ds = TwoStreamClipDataset([(path, 0)], num_frames=4, crop_size=16, flip=True, flow_bound=6.0)
    found = {}
    for epoch in range(20):
        ds.set_epoch(epoch)
        sample = ds[0]
        found.setdefault(bool(sample["flip"]), sample)
    assert set(found) == {False, True}
    return found


def test_crop_and_flip_show_in_both_streams(right_moving_store):
    with VideoStore(right_moving_store) as store:
        for flipped, sample in samples_with_and_without_flip(right_moving_store).items():
            y0, x0 = sample["crop"].tolist()
            frames = store.read_rgb(sample["indices"].numpy(), (y0, x0, 16, 16))
            expected = frames[:, :, ::-1] if flipped else frames
            np.testing.assert_array_equal(rgb_frames(sample["rgb"]), expected)  # the crop, mirrored when flipped
            colours = flow_frames(sample["flow"])
            speed = dequantize_flow(quantize_flow(np.float32(3.0), 6.0), 6.0) / 6.0  # 3 px stored, of the bound 6
            motion = np.float32([[[-speed if flipped else speed, 0.0]]])  # to the left when mirrored
            assert (colours == flow_to_colour(motion, 1.0)[0, 0]).all()
    right, left = flow_to_colour(np.float32([[[0.5, 0.0]], [[-0.5, 0.0]]]), 1.0)[:, 0]
    assert right[0] == 255 and left[0] < 255 and left[2] == 255  # right: red; left: cyan-blue


def test_clip_and_batch_picture_layout(right_moving_store):
    samples = samples_with_and_without_flip(right_moving_store)
    x = {"rgb": samples[False]["rgb"], "flow": samples[False]["flow"]}
    picture = clip_picture(x, frames=3, height=32, title="v")  # frames 0, 2 (of 0-3 spread: 0, 2, 3), 3
    top = 2 * LINE + 2  # two caption lines: the title, then the streams and frames shown
    assert picture.shape[0] == top + 32 + GAP + 32 and picture.shape[1] >= 3 * 32 + 2 * GAP  # RGB over flow
    for column, t in enumerate((0, 2, 3)):
        x0 = column * (32 + GAP)
        rgb = resize_height(rgb_frames(x["rgb"])[t], 32)
        np.testing.assert_array_equal(picture[top : top + 32, x0 : x0 + 32], rgb)
        flow = resize_height(flow_frames(x["flow"])[t], 32)
        np.testing.assert_array_equal(picture[top + 32 + GAP : top + 64 + GAP, x0 : x0 + 32], flow)
    batch = {s: torch.stack([samples[False][s], samples[True][s]]) for s in ("rgb", "flow", "crop")}
    batch.update(flip=torch.tensor([False, True]), video_id=["v", "v"])
    both = batch_picture(batch, frames=8)  # 4 frames: all of them, at the crop's 16 px
    assert both.shape[0] == 2 * (top + 16 + GAP + 16) + 8
    assert batch_picture({"rgb": batch["rgb"]}, clips=1).shape[0] == top + 16  # one clip, RGB alone
