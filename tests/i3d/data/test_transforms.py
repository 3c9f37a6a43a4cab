"""Exact expectations for the pure clip transforms."""

import numpy as np
import pytest
import torch

from i3d.data import transforms as T


def test_clip_indices_consecutive_and_looping():
    assert T.clip_indices(10, 4, 3).tolist() == [3, 4, 5, 6]
    assert T.clip_indices(5, 8, 0).tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert T.clip_indices(10, 4, 8).tolist() == [8, 9, 0, 1]
    assert T.clip_indices(10, 4, 0).dtype == np.int64
    with pytest.raises(ValueError, match="0 frames"):
        T.clip_indices(0, 4, 0)


def test_random_start_fits_and_covers_every_start():
    rng = np.random.default_rng(0)
    starts = {T.random_start(10, 4, rng) for _ in range(300)}
    assert starts == set(range(7))
    assert {T.random_start(3, 8, rng) for _ in range(20)} == {0}  # short video: start at 0 and loop


def test_even_starts():
    assert T.even_starts(100, 10, 1).tolist() == [45]  # the centre clip: frames 45..54 of 0..99
    assert T.even_starts(100, 10, 3).tolist() == [15, 45, 75]
    assert T.even_starts(5, 8, 2).tolist() == [0, 0]
    assert T.even_starts(10, 10, 1).tolist() == [0]
    with pytest.raises(ValueError, match="num_clips"):
        T.even_starts(10, 4, 0)


def test_crop_origins():
    assert T.center_crop_origin(256, 340, 224) == (16, 58)
    assert T.center_crop_origin(9, 8, 4) == (2, 2)
    rng = np.random.default_rng(1)
    corners = {T.random_crop_origin(6, 7, 4, rng) for _ in range(400)}
    assert corners == {(y, x) for y in range(3) for x in range(4)}
    with pytest.raises(ValueError, match=r"clipA\.h5: stored frames are 100x120, smaller than crop_size=112"):
        T.check_crop(100, 120, 112, where="clipA.h5")


def test_crop_is_the_window():
    frames = np.arange(2 * 5 * 6 * 3).reshape(2, 5, 6, 3)
    out = T.crop(frames, 1, 2, 3)
    assert out.shape == (2, 3, 3, 3)
    np.testing.assert_array_equal(out, frames[:, 1:4, 2:5])


def test_flip_mirrors_rgb_and_negates_flow_x():
    rgb = np.arange(1 * 2 * 3 * 3).reshape(1, 2, 3, 3)
    np.testing.assert_array_equal(T.hflip_rgb(rgb)[0, :, 0], rgb[0, :, 2])
    flow = np.zeros((1, 2, 3, 2), np.float32)
    flow[0, 1, 0] = (2.5, -1.0)  # moving right and up at the left edge
    flipped = T.hflip_flow(flow)
    np.testing.assert_array_equal(flipped[0, 1, 2], [-2.5, -1.0])  # now at the right edge, moving left, still up
    assert flow[0, 1, 0, 0] == 2.5  # the input is untouched


def test_normalize_rgb_kinds():
    x = np.array([[0, 51, 255]], np.uint8)  # one pixel, channels R, G, B
    np.testing.assert_allclose(T.normalize_rgb(x, "i3d"), [[-1.0, 51 / 255 * 2 - 1, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(T.normalize_rgb(x, "none"), [[0.0, 51.0, 255.0]])
    mean, std = np.array(T.IMAGENET_MEAN), np.array(T.IMAGENET_STD)
    np.testing.assert_allclose(T.normalize_rgb(x, "imagenet"), [(x[0] / 255 - mean) / std], rtol=1e-5)
    mean, std = np.array(T.KINETICS_MEAN), np.array(T.KINETICS_STD)
    np.testing.assert_allclose(T.normalize_rgb(x, "kinetics"), [(x[0] / 255 - mean) / std], rtol=1e-5)
    assert T.normalize_rgb(x, "i3d").dtype == np.float32
    with pytest.raises(ValueError, match="'caffe'"):
        T.normalize_rgb(x, "caffe")


def test_normalize_rgb_channel_axis():
    x = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)  # (T, H, W, 3)
    first = T.normalize_rgb(T.channels_first(x), "kinetics", channel_axis=-4)  # (3, T, H, W)
    assert first.shape == (3, 2, 4, 5) and first.flags.c_contiguous
    np.testing.assert_allclose(first, T.channels_first(T.normalize_rgb(x, "kinetics")), rtol=1e-6)


def test_normalize_flow_clips_and_scales():
    flow = np.array([-30.0, -20.0, -5.0, 0.0, 10.0, 25.0], np.float32)
    np.testing.assert_array_equal(T.normalize_flow(flow, 20), [-1.0, -1.0, -0.25, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(T.normalize_flow(flow, bound=10), [-1.0, -1.0, -0.5, 0.0, 1.0, 1.0])


def test_channels_first_then_normalize_is_contiguous():
    x = np.arange(2 * 3 * 4 * 5 * 2, dtype=np.float32).reshape(2, 3, 4, 5, 2) - 60  # (K, T, H, W, C)
    y = T.channels_first(x)
    assert y.shape == (2, 2, 3, 4, 5) and y[1, 1, 0, 3, 4] == x[1, 0, 3, 4, 1]
    z = T.normalize_flow(y, 20)
    assert z.flags.c_contiguous and z[1, 1, 0, 3, 4] == np.clip(x[1, 0, 3, 4, 1], -20, 20) / 20


def test_expand_compact_looks_each_value_up_in_its_samples_table():
    rgb = torch.tensor([0, 255, 7], dtype=torch.uint8).repeat(2, 3, 1).view(2, 3, 3, 1, 1)  # (B, 3, T, H, W)
    tables = torch.arange(2 * 3 * 256, dtype=torch.float32).view(2, 3, 256)  # each (sample, channel, value) its own
    batch = {"rgb": rgb, "rgb_table": tables, "label": torch.tensor([4, 5])}
    out = T.expand_compact(batch)
    assert set(out) == {"rgb", "label"} and out["rgb"].dtype == torch.float32 and out["label"] is batch["label"]
    for b in range(2):
        for c in range(3):
            assert out["rgb"][b, c].flatten().tolist() == [(b * 3 + c) * 256 + v for v in (0, 255, 7)]
    assert batch["rgb"].dtype == torch.uint8 and "rgb_table" in batch  # the input dict is untouched
    assert T.expand_compact({"flow": out["rgb"]})["flow"] is out["rgb"]  # float input (no table) passes through


def test_expand_compact_takes_samples_and_batches_of_several_clips():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (2, 3, 2, 4, 5, 6), dtype=np.uint8))  # (B, K, C, T, H, W)
    tables = torch.from_numpy(rng.normal(size=(2, 2, 256)).astype(np.float32))  # (B, C, 256)
    batch = T.expand_compact({"flow": x, "flow_table": tables})["flow"]
    one = T.expand_compact({"flow": x[1], "flow_table": tables[1]})["flow"]  # one sample, its K clips
    by_hand = torch.stack([tables[b, c][x[b, :, c].long()] for b in range(2) for c in range(2)]).view(2, 2, 3, 4, 5, 6)
    assert torch.equal(batch, by_hand.transpose(1, 2)) and torch.equal(one, batch[1])
    with pytest.raises(ValueError, match="uint8"):
        T.lookup_tensor(x.float(), tables)
    with pytest.raises(ValueError, match="same samples"):
        T.lookup_tensor(x[:1], tables)
    with pytest.raises(ValueError, match="same samples"):
        T.lookup_tensor(x, tables[:, :1])  # one table for two channels


def test_model_input_moves_only_the_streams_and_expands_them():
    batch = {"rgb": torch.zeros(1, 3, 2, 2, 2, dtype=torch.uint8), "rgb_table": torch.ones(1, 3, 256),
             "video_id": ["v"], "label": torch.tensor([1])}
    out = T.model_input(batch, "cpu")
    assert out["rgb"].dtype == torch.float32 and out["rgb"].eq(1).all() and out["video_id"] == ["v"]
    assert "rgb_table" not in out


def test_stream_input_crops_flips_and_normalises_like_the_parts():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 10, 12, 3), dtype=np.uint8)  # two clips of 3 frames
    flow = rng.normal(0, 6, (6, 10, 12, 2)).astype(np.float32)
    x = T.stream_input("rgb", rgb, 1, 2, 8, clips=2, flip=True, normalization="i3d")
    by_hand = rgb[:, 1:9, 2:10][:, :, ::-1].reshape(2, 3, 8, 8, 3).transpose(0, 4, 1, 2, 3) / 255 * 2 - 1
    assert x.shape == (2, 3, 3, 8, 8) and x.flags.c_contiguous
    np.testing.assert_allclose(x, by_hand, atol=1e-6)
    f = T.stream_input("flow", flow, 1, 2, 8, clips=2, flip=True, flow_bound=8)
    mirrored = flow[:, 1:9, 2:10][:, :, ::-1] * np.float32([-1, 1])
    np.testing.assert_allclose(f, np.clip(mirrored, -8, 8).reshape(2, 3, 8, 8, 2).transpose(0, 4, 1, 2, 3) / 8,
                               atol=1e-6)
    with pytest.raises(ValueError, match="flow_bound"):
        T.stream_input("flow", flow, 0, 0, 8)  # no bound: the stores' one must be passed


def test_eval_clip_indices_loop_only_whole_short_videos_up_to_min_frames():
    np.testing.assert_array_equal(T.eval_clip_indices(5, 0, 1, min_frames=8), [[0, 1, 2, 3, 4, 0, 1, 2]])
    np.testing.assert_array_equal(T.eval_clip_indices(10, 0, 1, min_frames=8), [np.arange(10)])
    np.testing.assert_array_equal(T.eval_clip_indices(10, 4, 2), [[1, 2, 3, 4], [4, 5, 6, 7]])


# ---------------------------------------------------------------- the 8-bit path: values and tables


@pytest.mark.parametrize(
    "clips, flip, store_bound, flow_bound",
    [(1, False, 20.0, 20.0), (1, True, 20.0, 10.0), (2, True, 8.0, 20.0), (3, False, 20.0, 20.0)],
)
def test_flow_codes_and_tables_equal_stream_input_of_the_pixels(clips, flip, store_bound, flow_bound):
    from flow.quantize import dequantize_flow

    codes = np.random.default_rng(clips).integers(1, 256, (clips * 5, 2, 30, 40), dtype=np.uint8)
    pixels = dequantize_flow(codes.transpose(0, 2, 3, 1), store_bound)  # what VideoStore.read_flow returns
    expected = T.stream_input("flow", pixels, 3, 5, 16, clips=clips, flip=flip, flow_bound=flow_bound)
    values = T.flow_code_clip(codes[:, :, 3:19, 5:21], clips=clips, flip=flip)
    assert values.shape == (clips, 2, 5, 16, 16) and values.dtype == np.uint8 and values.flags.c_contiguous
    table = torch.from_numpy(T.flow_code_tables(store_bound, flow_bound, flip))
    got = T.lookup_tensor(torch.from_numpy(values), table[None].expand(clips, 2, 256))
    assert torch.equal(got, torch.from_numpy(expected))
    if flip:  # x negated, y kept, columns mirrored
        plain = T.flow_code_clip(codes[:, :, 3:19, 5:21], clips=clips)
        np.testing.assert_array_equal(values, plain[..., ::-1])
        np.testing.assert_array_equal(table[0], -table[1])
    with pytest.raises(ValueError, match="flow_bound"):
        T.flow_code_tables(store_bound, 0.0)


@pytest.mark.parametrize("kind", T.NORMALIZATIONS)
def test_rgb_values_and_table_equal_stream_input(kind):
    frames = np.random.default_rng(0).integers(0, 256, (6, 20, 24, 3), dtype=np.uint8)
    values = T.rgb_clip(T.crop(frames, 2, 3, 16), clips=2, flip=True)
    assert values.shape == (2, 3, 3, 16, 16) and values.dtype == np.uint8 and values.flags.c_contiguous
    table = torch.from_numpy(np.ascontiguousarray(T.rgb_table(kind).T))  # (3, 256)
    got = T.expand_compact({"rgb": torch.from_numpy(values), "rgb_table": table})["rgb"]
    expected = T.stream_input("rgb", frames, 2, 3, 16, clips=2, flip=True, normalization=kind)
    assert torch.equal(got, torch.from_numpy(expected))


@pytest.mark.parametrize("kind", T.NORMALIZATIONS)
def test_rgb_tables_equal_normalize_rgb(kind):
    frames = np.random.default_rng(0).integers(0, 256, (6, 20, 24, 3), dtype=np.uint8)
    expected = T.normalize_rgb(T.channels_first(T.crop(frames, 2, 3, 16)).reshape(1, 3, 6, 16, 16), kind, -4)
    np.testing.assert_array_equal(T.stream_input("rgb", frames, 2, 3, 16, normalization=kind), expected)
