"""i3d.inference.predict: a video file -> the same inputs as the stores and the centre-crop eval -> probabilities.

The checkpoints are built here in the trainer's format (a TwoStreamI3D from a tiny config, head biases set so that
the ranking of the classes is known), and the pipeline is checked against a by-hand reference and against the
stores that flow.extract writes for the same video.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from flow.engines import make_engine
from flow.extract import ExtractOptions, extract_store
from flow.store import VideoStore
from flow.tvl1 import TVL1Params
from flow.video import VideoError, read_video, write_video
from i3d.build import build_model_from_config
from i3d.checkpoint import CheckpointError
from i3d.config import config_to_dict, load_config
from i3d.data.dataset import TwoStreamClipDataset
from i3d.data.spec import InputSpec
from i3d.inference import frames as frames_module
from i3d.inference import predict
from i3d.inference.windows import WINDOW, window_plan
from i3d.models import InceptionI3d, TwoStreamI3D

CLASSES = ["Clap", "Jump", "Wave"]
TINY = ["model.num_classes=3", "model.dropout=0", "data.crop_size=32", "data.num_frames=8"]
# what the trainer would save for stores at short side 37, judged on whole videos
SPEC = InputSpec(short_side=37, crop_size=32, num_frames=8, eval_num_frames=0)


def tiny_checkpoint(path: Path, streams: str = "rgb,flow", bias=(0.0, 1.0, 2.0), spec: InputSpec | None = SPEC
                    ) -> Path:
    """A checkpoint in tools/train_two_stream.py's format whose head biases rank Wave > Jump > Clap.

    The head weights are scaled down so that the input moves the logits by much less than the bias steps.
    """
    cfg = load_config(None, [*TINY, f"model.streams={streams}"])
    torch.manual_seed(0)
    model = build_model_from_config(cfg)
    with torch.no_grad():
        for s in model.streams:
            getattr(model, s).logits.weight.mul_(0.02)
            getattr(model, s).logits.bias.copy_(torch.tensor(bias))
    ckpt = {"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 1, "step": 1,
            "rng": {}, "config": config_to_dict(cfg), "classes": CLASSES}
    if spec is not None:
        ckpt["input_spec"] = spec.to_dict()
    torch.save(ckpt, path)
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tensors this small gain nothing from a second thread


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.fixture(scope="module")
def predictor(checkpoint) -> predict.Predictor:
    return predict.from_checkpoint(checkpoint)


def reference_inputs(video: Path, crop: int = 32, short_side: int = 37, min_frames: int = 8) -> dict:
    """The model inputs built by hand: resize, TV-L1 t-1 -> t with zero first flow, the stores' JPEG (quality 95) and
    8-bit flow (bound 20), loop, centre crop, scale."""
    frames, _ = read_video(video, short_side=short_side)
    n, h, w = frames.shape[:3]
    gray = frames @ np.float32([0.299, 0.587, 0.114])
    gray = np.rint(gray).astype(np.uint8)
    flow = np.zeros((n, h, w, 2), np.float32)
    flow[1:] = make_engine("opencv").calc_pairs(gray[:-1], gray[1:])
    flow = np.rint(np.clip(flow, -20, 20) * (127 / 20)) * np.float32(20 / 127)
    jpeg = lambda f: cv2.imdecode(cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1], 1)  # noqa: E731
    frames = np.stack([jpeg(f)[..., ::-1] for f in frames])
    idx = np.arange(max(n, min_frames)) % n
    y0, x0 = (h - crop) // 2, (w - crop) // 2
    rgb = frames[idx, y0 : y0 + crop, x0 : x0 + crop].astype(np.float32) / 255 * 2 - 1
    flow = np.clip(flow[idx, y0 : y0 + crop, x0 : x0 + crop], -20, 20) / 20
    to_tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(3, 0, 1, 2)))[None]  # noqa: E731
    return {"rgb": to_tensor(rgb), "flow": to_tensor(flow)}


def test_predict_video_matches_a_direct_model_call(predictor, translating_video):
    video, _ = translating_video(num_frames=12, height=64, width=80, dx=2.0, dy=1.0)
    assert predictor.streams == ("rgb", "flow") and predictor.classes == CLASSES
    assert predictor.spec == SPEC
    result = predict.predict_video(predictor, video)
    assert (result.num_frames, result.clip_frames) == (12, 12)
    assert result.probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert [name for name, _ in result.top(3)] == ["Wave", "Jump", "Clap"]
    assert len(result.top(2)) == 2

    ref = reference_inputs(video)
    inputs = predict.video_inputs(read_video(video, short_side=37)[0], SPEC, predictor.streams)
    assert inputs["rgb"].shape == (1, 3, 12, 32, 32) and inputs["flow"].shape == (1, 2, 12, 32, 32)
    torch.testing.assert_close(inputs["rgb"], ref["rgb"])
    # grayscale rounding may differ by one level on a few pixels; TV-L1 then moves a little (a few 8-bit steps)
    assert (inputs["flow"] - ref["flow"]).abs().mean() < 2e-3
    assert inputs["flow"][0, 0, 1:].mean() == pytest.approx(2.0 * 37 / 64 / 20, rel=0.1)  # dx = 2 px at 64 -> 37 px
    with torch.no_grad():
        direct = predictor.model(**inputs)
    assert np.allclose(result.logits["fused"], direct["fused"][0].numpy(), atol=1e-5)
    assert np.allclose(result.probs, torch.softmax(direct["fused"][0].double(), 0).numpy(), atol=1e-6)
    for s in ("rgb", "flow"):
        assert np.allclose(result.logits[s], direct[s][0].numpy(), atol=1e-5)


def test_inputs_equal_what_the_stores_and_the_eval_dataset_give(predictor, translating_video, tmp_path):
    video, _ = translating_video(num_frames=10, height=64, width=80, dx=-1.5, dy=2.0)
    store_path = tmp_path / "clip.h5"
    record = extract_store("clip", video, store_path, ExtractOptions(short_side=37))
    assert record["status"] == "done", record["error"]
    sample = TwoStreamClipDataset([(store_path, 0)], num_frames=0, crop_size=32, train=False, min_frames=8,
                                  flow_bound=20)[0]
    # the stored frames give the same inputs as the full-length centre-crop evaluation: indices, crop, scaling
    with VideoStore(store_path) as store:
        everything = np.arange(store.num_frames)
        frames = {"rgb": store.read_rgb(everything), "flow": store.read_flow(everything)}
    from_store = predict.clip_inputs(frames, predict.eval_indices(len(everything), SPEC), SPEC, predictor.streams)
    # and so does the video file: decoded, TV-L1 (same convention), then the stores' JPEG and 8-bit flow
    inputs = predict.video_inputs(predict.decode(video, SPEC), SPEC, predictor.streams)
    for s in ("rgb", "flow"):
        assert torch.equal(from_store[s][0], sample[s]) and torch.equal(inputs[s][0], sample[s]), s
    assert inputs["flow"][0].abs().mean() > 0.03  # (0.87, 1.16) px per frame at 37 px: not a zero field


def test_short_video_loops_up_to_the_clip_length(predictor, translating_video):
    video, _ = translating_video(num_frames=5, height=48, width=48)
    frames = predict.decode(video, SPEC)
    inputs = predict.video_inputs(frames, SPEC, predictor.streams)
    assert inputs["rgb"].shape[2] == 8 and inputs["flow"].shape[2] == 8
    torch.testing.assert_close(inputs["rgb"][:, :, 5:], inputs["rgb"][:, :, :3])
    torch.testing.assert_close(inputs["flow"][:, :, 5:], inputs["flow"][:, :, :3])
    assert inputs["flow"][:, :, 5].abs().max() == 0  # frame 0 again: no flow into it
    assert predict.predict_frames(predictor, frames).clip_frames == 8


def test_rgb_only_checkpoint_computes_no_flow(tmp_path, translating_video, monkeypatch):
    predictor = predict.from_checkpoint(tiny_checkpoint(tmp_path / "rgb.pt", "rgb", bias=(2.0, 0.0, 0.0)))
    monkeypatch.setattr("i3d.inference.frames.stream_flow", lambda *a, **k: pytest.fail("flow for an RGB-only model"))
    video, _ = translating_video(num_frames=6)
    result = predict.predict_video(predictor, video)
    assert set(result.logits) == {"rgb", "fused"} and result.top(1)[0][0] == "Clap"


def test_labels_file_replaces_the_checkpoint_names(checkpoint, tmp_path):
    (tmp_path / "labels.txt").write_text("a\nb\n\nc\n")
    assert predict.from_checkpoint(checkpoint, labels=tmp_path / "labels.txt").classes == ["a", "b", "c"]
    (tmp_path / "two.txt").write_text("a\nb\n")
    with pytest.raises(predict.PredictError, match=r"two.txt has 2 class names but the model has 3 outputs"):
        predict.from_checkpoint(checkpoint, labels=tmp_path / "two.txt")


def test_bad_files_name_the_file(tmp_path, predictor):
    with pytest.raises(CheckpointError, match=r"nope.pt not found"):
        predict.from_checkpoint(tmp_path / "nope.pt")
    torch.save({"state": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"foreign.pt lacks \['config', 'model'\]"):
        predict.from_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "foreign.pt").read_bytes()[:50])
    with pytest.raises(CheckpointError, match=r"cut.pt is truncated or not a torch file .*copy it again"):
        predict.from_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(predict.PredictError, match=r"weights.ckpt not found"):
        predict.from_kinetics_rgb(tmp_path / "weights.ckpt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(predict.PredictError, match=r"empty.txt is empty"):
        predict.read_label_map(tmp_path / "empty.txt")
    (tmp_path / "broken.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(VideoError, match=r"broken.mp4"):
        predict.predict_video(predictor, tmp_path / "broken.mp4")


def test_video_flow_follows_the_store_conventions():
    frames = np.stack([np.roll(np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1)), 2 * t, axis=1)
                       for t in range(3)])[..., None].repeat(3, axis=-1)
    backward = predict.video_flow(frames, SPEC)
    forward = predict.video_flow(frames, InputSpec(flow_convention="forward"))
    assert backward.shape == (3, 24, 32, 2) and backward.dtype == np.float32
    assert not backward[0].any() and not forward[-1].any()
    np.testing.assert_array_equal(backward[1:], forward[:-1])
    assert np.median(backward[1:, :, 8:24, 0]) == pytest.approx(2.0, abs=0.3)  # the ramp moves 2 px right
    assert predict.video_flow(frames[:1], SPEC).shape == (1, 24, 32, 2)  # one frame: one zero field


def test_checkpoint_written_by_the_trainer(tmp_path, translating_video):
    """fit() on two tiny stores -> last.pt -> a predictor with the trainer's classes and the stores' short side."""
    from flow.store_writer import write_store
    from i3d.train import fit

    rows = ["video_id,label,split"]
    for label, name in enumerate(("left", "right")):
        for k, split in enumerate(("train", "train", "val")):
            rng = np.random.default_rng((label, k))
            flow = rng.normal(0, 1, (8, 40, 48, 2)).astype(np.float32) + np.float32([4 - 8 * label, 0])
            write_store(tmp_path / "h5" / f"{name}{k}.h5", rng.integers(0, 255, (8, 40, 48, 3), dtype=np.uint8),
                        flow, {})
            rows.append(f"{name}{k},{name},{split}")
    (tmp_path / "index.csv").write_text("\n".join(rows) + "\n")
    cfg = load_config(Path(__file__).resolve().parents[3] / "configs" / "test_tiny.yaml",
                      [f"data.index={tmp_path / 'index.csv'}", f"data.store_root={tmp_path / 'h5'}", "train.epochs=1",
                       "train.device=cpu"])
    fit(cfg, tmp_path / "run")
    predictor = predict.from_checkpoint(tmp_path / "run" / "last.pt")
    assert predictor.classes == ["left", "right"] and predictor.streams == ("rgb", "flow")
    assert (predictor.spec.crop_size, predictor.spec.num_frames, predictor.spec.eval_num_frames) == (32, 8, 8)
    assert predictor.spec.short_side == 40  # write_store records no short side: the stores' own min(H, W)
    video, _ = translating_video(num_frames=6, height=40, width=48)
    result = predict.predict_video(predictor, video)
    assert result.probs.sum() == pytest.approx(1.0) and result.clip_frames == 8


def test_opencv_decodes_the_cricket_gif_exactly_as_pil(cricket_gif):
    """predict needs no GIF fallback: OpenCV's frames are PIL's, at the GIF's 40 ms per frame (25 fps)."""
    from PIL import Image, ImageSequence

    frames, info = read_video(cricket_gif, fps=25.0, short_side=0)
    with Image.open(cricket_gif) as gif:
        reference = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)])
    assert info["native_fps"] == 25.0 and frames.shape == reference.shape == (79, 224, 224, 3)
    np.testing.assert_array_equal(frames, reference)


def test_a_checkpoint_without_a_spec_is_refused_in_one_line(tmp_path):
    """A checkpoint of the layout before input specs is not guessed at: one error naming it and what to do."""
    old = tiny_checkpoint(tmp_path / "old.pt", spec=None)
    with pytest.raises(CheckpointError, match=r"old.pt has no input_spec \(a checkpoint of an older layout, which is "
                                              r"no longer read\); train the model again"):
        predict.from_checkpoint(old)


def test_a_video_smaller_than_the_crop_is_a_video_error_naming_it(predictor, translating_video):
    """At the native size (short side 0, as the demo's stores) a small video cannot give the crop: a VideoError
    naming the file, so tools/predict.py reports it and goes on with the others."""
    import dataclasses

    native = dataclasses.replace(predictor, spec=dataclasses.replace(SPEC, short_side=0))
    video, _ = translating_video("small.avi", num_frames=6, height=24, width=30)
    with pytest.raises(VideoError, match=r"small.avi: 24x30 frames \(short side native\) are smaller than the "
                                         r"model's 32-px crop"):
        predict.predict_video(native, video)


@pytest.fixture(scope="module")
def tiny_two_stream() -> TwoStreamI3D:
    torch.manual_seed(0)
    return TwoStreamI3D(InceptionI3d(3, in_channels=3), InceptionI3d(3, in_channels=2), weights=(1.0, 2.0)).eval()


# frames of 8x10 px: what is checked here is time (which frames, which windows), so space is as small as I3D allows
FAST = TVL1Params(nscales=1, warps=2, outer_iterations=2, inner_iterations=5)


def test_a_whole_video_longer_than_a_window_streams_to_the_one_pass_logits(tiny_two_stream, tmp_path):
    spec = InputSpec(short_side=8, crop_size=8, num_frames=8, eval_num_frames=0, tvl1=FAST)
    predictor = predict.Predictor(tiny_two_stream, CLASSES, spec)
    texture = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    video = tmp_path / "long.avi"
    write_video(video, [np.roll(texture, t // 3, axis=1) for t in range(WINDOW + 45)], fps=25.0)
    assert len(window_plan(WINDOW + 45)) == 2
    streamed = predict.predict_video(predictor, video)
    in_memory = predict.predict_frames(predictor, predict.decode(video, spec))  # one pass of the whole video
    assert (streamed.num_frames, streamed.clip_frames) == (in_memory.num_frames, in_memory.clip_frames) == (301, 301)
    for name in ("rgb", "flow", "fused"):
        np.testing.assert_allclose(streamed.logits[name], in_memory.logits[name], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(streamed.probs, in_memory.probs, atol=1e-6)


def test_test_clips_decode_only_their_frames_and_their_flow(tiny_two_stream, tmp_path, monkeypatch):
    spec = InputSpec(short_side=8, crop_size=8, num_frames=8, eval_num_frames=8, eval_num_clips=2, tvl1=FAST)
    predictor = predict.Predictor(tiny_two_stream, CLASSES, spec)
    frames = np.random.default_rng(1).integers(0, 256, (60, 8, 10, 3), dtype=np.uint8)
    video = tmp_path / "clip.avi"
    write_video(video, frames, fps=25.0)
    flowed = []
    real = frames_module.stream_flow
    monkeypatch.setattr(frames_module, "stream_flow", lambda f, *a: flowed.append(len(f)) or real(f, *a))
    streamed = predict.predict_video(predictor, video)
    assert sorted(flowed) == [9, 9]  # clips 13-20 and 39-46, each with the frame before its first
    in_memory = predict.predict_frames(predictor, predict.decode(video, spec))
    for name in ("rgb", "flow", "fused"):
        np.testing.assert_allclose(streamed.logits[name], in_memory.logits[name], rtol=1e-6, atol=1e-6)
