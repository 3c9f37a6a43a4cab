"""i3d.inference.features: snippet arithmetic, features equal to the net's Mixed_5c pooled by hand, both sources."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flow.extract import ExtractOptions, extract_store
from flow.quantize import max_error
from i3d.data import transforms as T
from i3d.data.spec import InputSpec
from i3d.inference.feature_run import load_frames
from i3d.inference.features import FeatureExtractor, FeatureOptions, snippet_indices
from i3d.models import InceptionI3d

SPEC = InputSpec(short_side=40, crop_size=32)


@pytest.mark.parametrize(("n", "last", "starts", "ends"), [
    (15, "drop", [], []), (15, "pad", [0], [15]),
    (16, "drop", [0], [16]), (16, "pad", [0], [16]),
    (17, "drop", [0], [16]), (17, "pad", [0, 16], [16, 17]),
    (100, "drop", [0, 16, 32, 48, 64, 80], [16, 32, 48, 64, 80, 96]),
    (100, "pad", [0, 16, 32, 48, 64, 80, 96], [16, 32, 48, 64, 80, 96, 100]),
])  # fmt: skip
def test_snippet_count_and_frames(n, last, starts, ends):
    index, end = snippet_indices(n, 16, 16, last)
    assert index.shape == (len(starts), 16) and index[:, 0].tolist() == starts and end.tolist() == ends
    for row, e in zip(index, end, strict=True):  # real frames in order, then the last frame repeated
        real = np.arange(row[0], e)
        np.testing.assert_array_equal(row[: len(real)], real)
        assert (row[len(real) :] == n - 1).all()


def test_overlapping_snippets_cover_the_end_once():
    index, end = snippet_indices(20, 16, 8, "pad")  # 0-15 fits; 8-19 is partial and covers the rest
    assert index[:, 0].tolist() == [0, 8] and end.tolist() == [16, 20]
    assert snippet_indices(24, 16, 8, "pad")[0][:, 0].tolist() == [0, 8]  # 8-23 fits: nothing left to pad


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {"rgb": InceptionI3d(num_classes=5, in_channels=3).eval(), "flow": InceptionI3d(5, in_channels=2).eval()}


def test_a_snippet_feature_is_mixed_5c_of_exactly_its_frames_pooled(nets):
    rng = np.random.default_rng(0)
    frames = {"rgb": rng.integers(0, 256, (37, 40, 48, 3), dtype=np.uint8),
              "flow": rng.normal(0, 5, (37, 40, 48, 2)).astype(np.float32)}  # fmt: skip
    out = FeatureExtractor(nets, SPEC, FeatureOptions(snippet=16, stride=10, batch_size=2)).extract(frames)
    assert out.start_frame.tolist() == [0, 10, 20] and out.end_frame.tolist() == [16, 26, 36]
    for s in ("rgb", "flow"):
        assert out.features[s].shape == (3, 1024) and out.features[s].dtype == np.float32
        x = T.stream_input(s, frames[s][10:26], 4, 8, 32, normalization="i3d", flow_bound=SPEC.flow_bound)
        with torch.no_grad():
            by_hand = nets[s].forward_features(torch.from_numpy(x)).mean(dim=(2, 3, 4))[0].numpy()
        np.testing.assert_allclose(out.features[s][1], by_hand, rtol=1e-4, atol=1e-5 * np.abs(by_hand).max())


def test_video_mode_is_piergiaj_s_pooling_over_the_whole_clip(nets):
    """At 224 px Mixed_5c is (T', 7, 7): the (2, 7, 7) stride-1 pool gives T' - 1 rows; logits per row."""
    spec = InputSpec(short_side=224, crop_size=224)
    frames = {"rgb": np.random.default_rng(1).integers(0, 256, (24, 224, 232, 3), dtype=np.uint8)}
    opts = FeatureOptions(mode="video", logits=True)
    out = FeatureExtractor({"rgb": nets["rgb"]}, spec, opts).extract(frames)
    x = torch.from_numpy(T.stream_input("rgb", frames["rgb"], 0, 4, 224))
    with torch.no_grad():
        fmap = nets["rgb"].forward_features(x)  # (1, 1024, 3, 7, 7)
        pooled = F.avg_pool3d(fmap, (2, 7, 7), stride=1)  # (1, 1024, 2, 1, 1)
        logits = nets["rgb"].logits(pooled)[0, :, :, 0, 0].T.numpy()
    assert fmap.shape[2:] == (3, 7, 7) and out.features["rgb"].shape == (2, 1024)
    np.testing.assert_allclose(out.features["rgb"], pooled[0, :, :, 0, 0].T.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.logits["rgb"], logits, rtol=1e-4, atol=1e-5)
    assert out.start_frame.tolist() == [0, 8] and out.end_frame.tolist() == [16, 24]


def test_flow_from_the_store_and_from_the_video_agree_within_the_storage_error(nets, translating_video, tmp_path):
    video, _ = translating_video(num_frames=18, height=48, width=64, dx=2.0, dy=-1.0)
    store = tmp_path / "clip.h5"
    assert extract_store("clip", video, store, ExtractOptions(short_side=40))["status"] == "done"
    extractor = FeatureExtractor({"flow": nets["flow"]}, SPEC, FeatureOptions(snippet=8, stride=8))
    from_store, fps_store = load_frames(extractor, None, store)
    from_video, fps_video = load_frames(extractor, video, None)
    assert fps_store == fps_video == 25.0  # the rate the frames have, for start_frame / fps
    assert np.abs(from_store["flow"] - np.clip(from_video["flow"], -20, 20)).max() <= max_error() + 1e-6
    a, b = extractor.extract(from_store).features["flow"], extractor.extract(from_video).features["flow"]
    assert a.shape == b.shape == (2, 1024)
    distance = lambda x: (np.linalg.norm(x - b, axis=1) / np.linalg.norm(b, axis=1)).max()  # noqa: E731
    # measured 0.050: a random-weight I3D magnifies the 0.08 px storage steps; the opposite motion is far away
    reverse = extractor.extract({"flow": -from_video["flow"]}).features["flow"]
    assert distance(a) < 0.1 and distance(reverse) > 5 * distance(a), (distance(a), distance(reverse))
