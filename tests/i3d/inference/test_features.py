"""i3d.inference.features: snippet arithmetic, features equal to the net's Mixed_5c pooled by hand, both sources."""

import json
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flow.extract import ExtractOptions, extract_store
from flow.tvl1 import TVL1Params
from flow.video import read_video, write_video
from i3d.data import transforms as T
from i3d.data.spec import InputSpec
from i3d.inference.feature_run import load_frames, video_features
from i3d.inference.features import FeatureExtractor, FeatureOptions, ShortVideoError, snippet_indices
from i3d.inference.predict import video_flow
from i3d.models import InceptionI3d
from tests.helpers import call_tool

SPEC = InputSpec(short_side=40, crop_size=32)
# the streaming tests: a smaller crop and a few TV-L1 iterations (what they check does not depend on either)
FAST = InputSpec(short_side=20, crop_size=16, tvl1=TVL1Params(nscales=2, warps=2, outer_iterations=2,
                                                              inner_iterations=5))
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("n", "last", "starts", "ends"), [
    (15, "drop", [], []), (15, "pad", [0], [15]),
    (16, "drop", [0], [16]), (16, "pad", [0], [16]),
    (17, "drop", [0], [16]), (17, "pad", [0, 16], [16, 17]),
    (100, "drop", [0, 16, 32, 48, 64, 80], [16, 32, 48, 64, 80, 96]),
    (100, "pad", [0, 16, 32, 48, 64, 80, 96], [16, 32, 48, 64, 80, 96, 100]),
])
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


def test_gapped_snippets_pad_only_a_tail_that_starts_inside_the_video():
    # stride 16 > snippet 8: frames 72-78 of 79 lie in a gap, and the next start (80) is past the end
    index, end = snippet_indices(79, 8, 16, "pad")
    assert index[:, 0].tolist() == [0, 16, 32, 48, 64] and end.tolist() == [8, 24, 40, 56, 72]
    index, end = snippet_indices(85, 8, 16, "pad")  # the start 80 is inside: a padded snippet 80-84
    assert index[-1].tolist() == [80, 81, 82, 83, 84, 84, 84, 84] and end[-1] == 85


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {"rgb": InceptionI3d(num_classes=5, in_channels=3).eval(), "flow": InceptionI3d(5, in_channels=2).eval()}


def test_a_snippet_feature_is_mixed_5c_of_exactly_its_frames_pooled(nets):
    rng = np.random.default_rng(0)
    frames = {"rgb": rng.integers(0, 256, (37, 40, 48, 3), dtype=np.uint8),
              "flow": rng.normal(0, 5, (37, 40, 48, 2)).astype(np.float32)}
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


def whole(chunks, num_frames, fps) -> tuple[dict, float]:
    """`load_frames`' chunks joined (and their count checked when it was known)."""
    chunks = list(chunks)
    frames = {s: np.concatenate([c[s] for c in chunks]) for s in chunks[0]}
    assert num_frames in (None, len(next(iter(frames.values()))))
    return frames, fps


def test_flow_from_the_store_and_from_the_video_are_the_same(nets, translating_video, tmp_path):
    """The video's flow goes through the stores' 8-bit codes (`InputSpec.stored_frames`): the same features."""
    video, _ = translating_video(num_frames=18, height=48, width=64, dx=2.0, dy=-1.0)
    store = tmp_path / "clip.h5"
    assert extract_store("clip", video, store, ExtractOptions(short_side=40))["status"] == "done"
    extractor = FeatureExtractor({"flow": nets["flow"]}, SPEC, FeatureOptions(snippet=8, stride=8))
    from_store, fps_store = whole(*load_frames(extractor, None, store))
    from_video, fps_video = whole(*load_frames(extractor, video, None))
    assert fps_store == fps_video == 25.0  # the rate the frames have, for start_frame / fps
    np.testing.assert_array_equal(from_store["flow"], from_video["flow"])
    assert np.abs(from_video["flow"]).mean() > 0.5  # (1.2, 0.6) px per frame at 40 px: not a zero field
    a, b = extractor.extract(from_store).features["flow"], extractor.extract(from_video).features["flow"]
    assert a.shape == b.shape == (2, 1024)
    np.testing.assert_array_equal(a, b)


def test_snippets_streamed_from_a_video_file_equal_each_snippet_by_hand(nets, translating_video):
    """Decoded, flow computed and cut into snippets on the fly (batches of 3, a padded last one): each feature is
    Mixed_5c of exactly its frames of the whole decoded video and its whole-video flow."""
    video, _ = translating_video(num_frames=29, height=48, width=64, dx=1.0, dy=0.5)
    options = FeatureOptions(snippet=8, stride=6, last="pad", batch_size=3)
    extractor = FeatureExtractor(nets, FAST, options)
    out, fps = video_features(extractor, video, None)
    assert fps == 25.0 and out.start_frame.tolist() == [0, 6, 12, 18, 24] and out.end_frame.tolist()[-2:] == [26, 29]
    frames, _ = read_video(video, short_side=20)
    whole = FAST.stored_frames({"rgb": frames, "flow": video_flow(frames, FAST)})  # as the store would hold them
    index, _ = snippet_indices(29, 8, 6, "pad")
    for s in ("rgb", "flow"):
        x = T.stream_input(s, whole[s][index.reshape(-1)], 2, 5, 16, clips=len(index), flow_bound=FAST.flow_bound)
        with torch.no_grad():
            by_hand = nets[s].forward_features(torch.from_numpy(x)).mean(dim=(2, 3, 4)).numpy()
        np.testing.assert_allclose(out.features[s], by_hand, rtol=1e-5, atol=1e-5 * np.abs(by_hand).max())


def test_a_video_shorter_than_a_snippet_is_a_failed_record_not_an_empty_file(nets, translating_video, tmp_path):
    video, _ = translating_video("videos/clip.avi", num_frames=12, height=48, width=64)
    extractor = FeatureExtractor({"rgb": nets["rgb"]}, SPEC, FeatureOptions(snippet=16, stride=16))
    message = "12 frames, shorter than one 16-frame snippet; use --last pad or a shorter --snippet"
    with pytest.raises(ShortVideoError, match=message):
        video_features(extractor, video, None)
    torch.save(nets["rgb"].state_dict(), tmp_path / "rgb.pt")
    args = ["--videos", tmp_path / "videos", "--out", tmp_path / "out", "--rgb-weights", tmp_path / "rgb.pt",
            "--streams", "rgb", "--short-side", "40", "--crop", "32", "--no-progress"]
    assert call_tool("extract_features", *args) == 1
    [record] = json.loads((tmp_path / "out" / "report.json").read_text())["videos"]
    assert record["status"] == "failed" and message in record["error"], record
    assert not list((tmp_path / "out").glob("clip*"))
    padded = FeatureExtractor({"rgb": nets["rgb"]}, SPEC, FeatureOptions(snippet=16, stride=16, last="pad"))
    assert video_features(padded, video, None)[0].end_frame.tolist() == [12]


class CheapI3d(InceptionI3d):
    """I3D's interface and its Mixed_5c steps (one per 8 frames), at almost no cost: the mean of each step's frames
    stands for its features (what is measured here is what the extractor holds, not the net)."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        means = F.pad(x.mean(dim=(1, 3, 4)), (0, -x.shape[2] % 8))  # (B, T rounded up to 8)
        return means.reshape(len(x), -1, 8).mean(-1)[:, None, :, None, None].expand(-1, 1024, -1, 1, 1)


@pytest.mark.parametrize(("mode", "streams", "short", "window"), [
    ("snippets", ("rgb", "flow"), 48, 128), ("video", ("rgb",), 200, 128)])
def test_memory_does_not_grow_with_the_video(mode, streams, short, window, tmp_path):
    """A 4x longer video: the same frames held at once, and no more numpy memory (tracemalloc)."""
    torch.manual_seed(0)
    cheap = {"rgb": CheapI3d(5, 3), "flow": CheapI3d(5, 2)}
    options = FeatureOptions(mode=mode, batch_size=2, window=window)  # the short video fills a batch too
    extractor = FeatureExtractor({s: cheap[s] for s in streams}, FAST, options)
    held, peaks = [], []
    texture = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    for n in (short, 4 * short):
        video = tmp_path / f"v{n}.avi"
        write_video(video, (np.roll(texture, t, axis=1) for t in range(n)), fps=25.0)  # never all in memory
        tracemalloc.start()
        out, _ = video_features(extractor, video, None)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        held.append(extractor.peak_frames)
        assert len(out.start_frame) == (n // 16 if mode == "snippets" else -(-n // 8) - 1)
    assert held[0] == held[1] <= (16 if mode == "snippets" else window + 7) + 17, held
    # holding the extra frames would add 3 * short of them (decoded at short side 20); the features, which are the
    # output, grow by 2 kB (snippets) or 300 kB (video mode: a row per 8 frames)
    extra = 3 * short * 20 * 24 * (3 + 8 * (len(streams) - 1))
    assert peaks[1] - peaks[0] < extra / 4, (peaks, extra)
