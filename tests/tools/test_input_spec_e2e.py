"""One input spec from store to checkpoint to predict: stores extracted with non-default settings (numba TV-L1,
bound 8 px, 15 fps, short side 40), a two-stream I3D trained on them by tools/train_two_stream.py, then the raw
videos classified by tools/predict.py's library must agree with tools/eval.py --center-crop on the stores.

What differs between the two paths is only the storage: JPEG (quality 95) for RGB and 8-bit codes for flow
(+-8 / 127 = 0.063 px per step at bound 8). Everything else (frame rate, resize, engine, TV-L1 parameters, flow
convention, clip, crop, normalisation, flow scaling by the stores' bound) comes from the checkpoint's spec.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from flow.store import VideoStore
from flow.video import write_video
from i3d.checkpoint import read_checkpoint
from i3d.data.spec import InputSpecError
from i3d.evaluate import load_predictions, video_level
from i3d.inference import predict
from tests.helpers import call_tool, textured_frames

REPO = Path(__file__).resolve().parents[2]
EXTRACT = ["--engine", "numba", "--bound", "8", "--fps", "15", "--short-side", "40", "--workers", "1",
           "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, numba_tvl1):  # numba_tvl1: the tools load the compiled engine
    """Textures moving left or right (2-3 px per frame at 30 fps, 48x64), 4 training and 3 validation videos each."""
    root = tmp_path_factory.mktemp("spec_e2e")
    rows = ["video_id,label,split"]
    for label, name in enumerate(("left", "right")):
        for k in range(7):
            split = "train" if k < 4 else "val"
            speed = (2.0 + k % 3 * 0.5) * (1 if label else -1)
            frames = textured_frames(21, 48, 64, speed, 0.5, seed=k)
            frames = (0.7 * frames.mean(-1, keepdims=True) + 0.3 * frames).astype(np.uint8)  # natural-video chroma
            write_video(root / "videos" / name / f"{split}{k}.avi", frames, 30.0)
            rows.append(f"{name}/{split}{k},{name},{split}")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    torch.manual_seed(0)
    assert call_tool("extract_flow", "--videos", root / "videos", "--out", root / "h5", *EXTRACT) == 0
    assert call_tool("train_two_stream", "--config", REPO / "configs" / "test_tiny.yaml", "--out", root / "run",
                "--set", f"data.index={root / 'index.csv'}", "--set", f"data.store_root={root / 'h5'}",
                "--set", "train.epochs=3", "--set", "optim.lr=0.01", "--set", "model.bn_momentum=0.1",
                "--set", "train.device=cpu") == 0
    return root


def test_the_checkpoint_carries_the_stores_settings(run):
    spec = read_checkpoint(run / "run" / "best.pt")["input_spec"]
    assert (spec["fps"], spec["short_side"], spec["flow_engine"], spec["flow_bound"]) == (15.0, 40, "numba", 8.0)
    assert (spec["crop_size"], spec["num_frames"], spec["eval_num_frames"]) == (32, 8, 8)


def test_predict_on_raw_videos_agrees_with_eval_on_the_stores(run):
    assert call_tool("eval", "--checkpoint", run / "run" / "best.pt", "--out", run / "eval" / "results.json") == 0
    stored, _classes = load_predictions(run / "eval" / "results_predictions.npz")
    stored = video_level(stored)
    predictor = predict.from_checkpoint(run / "run" / "best.pt")
    spread = {s: np.ptp(stored.logits[s]) for s in ("rgb", "flow")}  # the range of logits over videos and classes
    for v, video_id in enumerate(stored.video_ids):
        # the stored frames through predict's path give eval's logits: the same clip, crop and normalisation
        with VideoStore(run / "h5" / f"{video_id}.h5") as store:
            everything = np.arange(store.num_frames)
            frames = {"rgb": store.read_rgb(everything), "flow": store.read_flow(everything)}
        inputs = predict.clip_inputs(frames, predict.eval_indices(len(everything), predictor.spec), predictor.spec,
                                     predictor.streams)
        with torch.no_grad():
            same = predictor.model(**inputs)
        for s in ("rgb", "flow"):
            np.testing.assert_allclose(same[s][0].numpy(), stored.logits[s][v], rtol=1e-4, atol=1e-4 * spread[s])
        # the raw video: decoded, TV-L1'd, then the stores' JPEG and 8-bit flow: the same input, the same logits
        raw = predict.predict_video(predictor, run / "videos" / f"{video_id}.avi")
        assert raw.num_frames == 11 and raw.clip_frames == 8  # 21 frames at 30 fps -> 11 at 15 fps; an 8-frame clip
        for s in ("rgb", "flow"):
            np.testing.assert_allclose(raw.logits[s], stored.logits[s][v], rtol=1e-4, atol=1e-4 * spread[s])
    # and the tolerance tells a wrong input apart: the flow divided by 20 (the old fixed bound) instead of the
    # stores' 8 moves the flow logits by 45 % of their range (measured)
    wrong = dataclasses.replace(predictor, spec=dataclasses.replace(predictor.spec, flow_bound=20.0))
    video_id = stored.video_ids[0]
    moved = np.abs(predict.predict_video(wrong, run / "videos" / f"{video_id}.avi").logits["flow"]
                   - stored.logits["flow"][0]).max() / spread["flow"]
    assert moved > 0.05


def test_stores_of_other_settings_are_refused(run, tmp_path):
    """The same videos at the default bound: eval of the bound-8 model on them is refused, naming the field."""
    argv = ["--videos", run / "videos", "--out", tmp_path / "h5", *EXTRACT[:2], "--bound", "20", *EXTRACT[4:]]
    assert call_tool("extract_flow", *argv) == 0
    with pytest.raises(InputSpecError, match=r"flow_bound 8.0 \(model\) vs 20.0 \(stores\)"):
        call_tool("eval", "--checkpoint", run / "run" / "best.pt", "--out", tmp_path / "r.json", "--store-root",
             tmp_path / "h5")


def test_training_on_mixed_stores_fails_at_start(run, tmp_path):
    import shutil

    shutil.copytree(run / "h5", tmp_path / "h5")
    video = run / "videos" / "right" / "val4.avi"
    assert call_tool("extract_flow", "--videos", video, "--out", tmp_path / "h5" / "right", "--overwrite",
                    *EXTRACT[:4], "--fps", "25", *EXTRACT[6:]) == 0
    with pytest.raises(InputSpecError, match=r"differ in fps 15.0 vs 25.0"):
        call_tool("train_two_stream", "--config", REPO / "configs" / "test_tiny.yaml", "--out", tmp_path / "run",
             "--set", f"data.index={run / 'index.csv'}", "--set", f"data.store_root={tmp_path / 'h5'}")
    assert not (tmp_path / "run" / "last.pt").exists()
