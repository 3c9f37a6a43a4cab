import json

import numpy as np
import pytest
import torch
from torch import nn

from i3d import evaluate as ev
from i3d.models import TwoStreamI3D


def _preds() -> ev.Predictions:
    """3 videos of 2 clips, 3 classes; rgb right on videos a, b; flow right on b, c; clip-level differs from video."""
    rgb = np.array([[5, 0, 0], [1, 0, 2], [0, 4, 0], [0, 3, 0], [0, 1, 0], [0, 2, 0]], np.float32)
    flow = np.array([[0, 2, 0], [0, 2, 0], [0, 3, 0], [1, 2, 0], [0, 0, 2], [0, 0, 2]], np.float32)
    ids = ["a", "a", "b", "b", "c", "c"]
    return ev.Predictions(ids, np.array([0, 1] * 3), np.array([0, 0, 1, 1, 2, 2]), {"rgb": rgb, "flow": flow})


def test_video_level_averages_clips():
    videos = ev.video_level(_preds())
    assert videos.video_ids == ["a", "b", "c"] and videos.labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(videos.logits["rgb"], [[3, 0, 1], [0, 3.5, 0], [0, 1.5, 0]])


def test_metrics_exact():
    logits = np.array([[3, 2, 1, 0, -1, -2], [0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [0, 0, 9, 0, 0, 0]], np.float32)
    labels = np.array([0, 0, 4, 2])
    m = ev.classification_metrics(logits, labels, num_classes=6)
    assert m["top1"] == 0.5 and m["top5"] == 0.75 and m["num"] == 4  # label 0 is row 1's 6th guess, 4 row 2's 5th
    assert m["mean_class_acc"] == pytest.approx(np.mean([0.5, 0.0, 1.0]))  # classes 0, 4, 2 present
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels)).item()
    assert m["loss"] == pytest.approx(expected)


def test_metrics_with_fewer_than_five_classes_and_a_lone_class():
    logits = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.9, 0.0, 0.0]])
    labels = np.array([1, 1, 2, 2, 0])  # predicted 1, 0, 2, 0, 0
    m = ev.classification_metrics(logits, labels, num_classes=3)
    assert m["top1"] == pytest.approx(3 / 5) and m["top5"] == 1.0  # top-5 of 3 classes is every class
    # class 1: 1 of 2 right, class 2: 1 of 2 right, the lone class 0 row right -> (0.5 + 0.5 + 1) / 3
    assert m["mean_class_acc"] == pytest.approx(2 / 3)
    assert ev.classification_metrics(logits[:2], labels[:2], num_classes=3)["mean_class_acc"] == 0.5  # class 1 only
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got 0..3"):
        ev.classification_metrics(logits[:2], np.array([0, 3]), num_classes=3)


def test_compute_results_streams_fused_clip_and_video():
    r = ev.compute_results(_preds(), {"rgb": 1.0, "flow": 1.0}, num_classes=3)
    assert set(r) == {"rgb", "flow", "fused"}
    assert r["rgb"]["top1"] == pytest.approx(2 / 3) and r["rgb"]["clip"]["top1"] == 0.5
    assert r["flow"]["top1"] == pytest.approx(2 / 3) and r["flow"]["clip"]["top1"] == pytest.approx(4 / 6)
    assert r["fused"]["top1"] == 1.0 and r["fused"]["num"] == 3 and r["fused"]["clip"]["num"] == 6
    flow_only = ev.compute_results(_preds(), {"rgb": 0.0, "flow": 1.0}, num_classes=3)
    assert flow_only["fused"]["top1"] == flow_only["flow"]["top1"]


def test_fuse_and_confusion():
    fused = ev.fuse({"rgb": np.array([[2.0, 0.0]]), "flow": np.array([[0.0, 4.0]])}, {"rgb": 1, "flow": 3})
    np.testing.assert_allclose(fused, [[0.5, 3.0]])
    np.testing.assert_allclose(ev.fuse({"flow": np.ones((1, 2))}, {"rgb": 1, "flow": 1}), np.ones((1, 2)))
    with pytest.raises(ValueError, match="positive total weight"):
        ev.fuse({"rgb": np.ones((1, 2))}, {"rgb": 0, "flow": 1})
    cm = ev.confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 2]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_write_report_files_and_offline_refusion(tmp_path):
    out = tmp_path / "eval" / "results.json"
    results = ev.write_report(out, _preds(), {"rgb": 1.0, "flow": 1.0}, ["x", "y", "z"], extra={"split": "test"})
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert on_disk["fused"]["top1"] == 1.0 and on_disk["rgb"]["top1"] == pytest.approx(2 / 3)
    assert on_disk["split"] == "test" and on_disk["num_videos"] == 3 and on_disk["num_clips"] == 6
    png = tmp_path / "eval" / on_disk["confusion_png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    preds, classes = ev.load_predictions(tmp_path / "eval" / on_disk["predictions"])
    assert classes == ["x", "y", "z"] and preds.video_ids == _preds().video_ids
    np.testing.assert_array_equal(preds.logits["flow"], _preds().logits["flow"])
    assert ev.compute_results(preds, {"rgb": 1, "flow": 1}, 3) == ev.compute_results(_preds(), {"rgb": 1, "flow": 1}, 3)


class _Mean(nn.Module):
    """Logits = (mean of the clip, -mean): a fixed 'backbone' so predictions are known exactly."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3, 4))
        return torch.stack([m, -m], dim=1)


def test_predict_flattens_clips_and_concatenate_sorts():
    model = TwoStreamI3D(_Mean(), None)
    rgb = torch.arange(2 * 3, dtype=torch.float32).reshape(2, 3, 1, 1, 1, 1).expand(2, 3, 3, 2, 4, 4)
    loader = [{"rgb": rgb, "label": torch.tensor([1, 0]), "video_id": ["v2", "v1"]}]  # 2 videos x 3 clips
    preds = ev.predict_clips(model, loader)
    assert preds.video_ids == ["v2"] * 3 + ["v1"] * 3 and preds.clips.tolist() == [0, 1, 2] * 2
    assert preds.labels.tolist() == [1, 1, 1, 0, 0, 0] and set(preds.logits) == {"rgb"}
    np.testing.assert_allclose(preds.logits["rgb"][:, 0], [0, 1, 2, 3, 4, 5])
    joined = ev.Predictions.concatenate([preds, ev.Predictions([], np.zeros(0), np.zeros(0), {})])
    assert joined.video_ids == ["v1"] * 3 + ["v2"] * 3
    np.testing.assert_allclose(joined.logits["rgb"][:, 0], [3, 4, 5, 0, 1, 2])
