"""faces.extract on real-face videos with known boxes: tracks, clips, DFDC labels and box reuse, no face, a bad
video, resume. One extraction (module fixture) serves most tests; each video is 60 frames at 180x320."""

import json
import shutil

import numpy as np
import pytest

import faces.extract as fx
from faces.crop import cut
from faces.extract import extract_faces
from faces.options import FaceOptions
from faces.track import Track, frame_boxes, iou
from flow.video import read_video, write_video
from i3d.data.dfdc import dfdc_records
from i3d.synthetic.faces import astronaut_video, fake_of, no_face_video, two_people_video

pytest.importorskip("skimage", reason="scikit-image ships the photographs with faces: pip install -e '.[dev]'")
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # MTCNN in one thread (tests/conftest.py)

OPTS = FaceOptions(stride=5, split_frames=30, min_frames=16, size=48)  # 60 frames: two 30-frame clips per person


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    videos, out = root / "videos", root / "out"
    two, two_boxes = two_people_video()
    real, real_boxes = astronaut_video()
    write_video(videos / "people" / "two.avi", two, 25)
    write_video(videos / "people" / "none.avi", no_face_video(), 25)
    (videos / "people" / "bad.mp4").write_bytes(b"not a video")
    write_video(videos / "dfdc" / "real.avi", real, 25)
    write_video(videos / "dfdc" / "fake.avi", fake_of(real, real_boxes), 25)
    meta = {"real.avi": {"label": "REAL", "split": "train", "original": None},
            "fake.avi": {"label": "FAKE", "split": "train", "original": "real.avi"}}
    (videos / "dfdc" / "metadata.json").write_text(json.dumps(meta))
    records, summary = extract_faces([str(videos)], out, OPTS, progress=False)
    return {"videos": videos, "out": out, "records": {r["video_id"]: r for r in records}, "summary": summary,
            "truth": {"people/two": two_boxes, "dfdc/real": real_boxes}}


def sidecar(run, video_id):
    return json.loads((run["out"] / f"{video_id}.faces.json").read_text())


def test_outcomes_are_reported_for_every_video(run):
    status = {video_id: r["status"] for video_id, r in run["records"].items()}
    assert status == {"people/two": "done", "people/none": "no_face", "people/bad": "failed", "dfdc/real": "done",
                      "dfdc/fake": "done"}
    assert "bad.mp4" in run["records"]["people/bad"]["error"]
    report = json.loads((run["out"] / "report.json").read_text())
    assert [v["video_id"] for v in report["videos"]] == sorted(status)
    assert report["summary"]["failed"] == 1 and report["summary"]["crops"] == 8  # 2 people + 1 + 1, two halves


@pytest.mark.parametrize("video_id", ["people/two", "dfdc/real"])
def test_tracks_hold_the_known_face_in_every_frame_and_never_jump(run, video_id):
    truth = run["truth"][video_id]  # (T, faces, 4)
    tracks = [Track.from_json(t) for t in sidecar(run, video_id)["tracks"]]
    assert len(tracks) == truth.shape[1]
    people = set()
    for track in tracks:
        start, boxes = frame_boxes(track, len(truth), OPTS.stride)
        assert (start, len(boxes)) == (0, 60)
        overlap = np.stack([iou(boxes[t : t + 1], truth[t])[0] for t in range(60)])  # (frames, faces)
        person = int(np.argmax(overlap[0]))
        assert (overlap.argmax(axis=1) == person).all(), "a track jumped to the other person"
        sampled = overlap[:: OPTS.stride, person]  # detections; between them interpolated, after the last held
        assert sampled.min() > 0.6 and overlap[:, person].min() > 0.4, f"face {person}: IoU {overlap[:, person]}"
        people.add(person)
    assert people == set(range(truth.shape[1]))


def test_every_clip_holds_its_face_whole_and_is_the_requested_size(run):
    truth = run["truth"]["people/two"]
    crops = run["records"]["people/two"]["crops"]
    assert [(c["segment"], c["start"], c["end"]) for c in crops] == [(0, 0, 30), (0, 0, 30), (1, 30, 60), (1, 30, 60)]
    source, _ = read_video(run["videos"] / "people" / "two.avi", fps=0, short_side=0)
    for crop in crops:
        x0, y0, x1, y1 = crop["box"]
        assert x1 - x0 == y1 - y0  # square
        face = truth[crop["start"] : crop["end"], :, :]
        inside = (
            (face[..., 0] >= x0 - 1) & (face[..., 1] >= y0 - 1) & (face[..., 2] <= x1 + 1) & (face[..., 3] <= y1 + 1)
        )
        assert inside.all(axis=0).sum() == 1, "the clip box must hold one person's face in every frame"
        frames, _ = read_video(run["out"] / crop["file"], fps=0, short_side=0)
        assert frames.shape == (30, 48, 48, 3)
        expected = np.stack([cut(f, tuple(crop["box"]), 48) for f in source[crop["start"] : crop["end"]]])
        assert np.array_equal(frames, expected)  # FFV1 is lossless: the clip is exactly the cut


def test_no_face_video_is_reported_and_nothing_is_written(run):
    record = run["records"]["people/none"]
    assert record["crops"] == [] and record["tracks"] == [] and record["sampled"] == 6
    assert "no face" in record["warnings"][0]
    assert not list((run["out"] / "people").glob("none_*.avi"))


def test_a_fake_reuses_its_originals_boxes_and_the_labels_follow_the_clips(run):
    real, fake = run["records"]["dfdc/real"], run["records"]["dfdc/fake"]
    assert fake["boxes_from"] == "dfdc/real" and fake["sampled"] == 0 and real["sampled"] == 12
    assert fake["tracks"] == real["tracks"]
    assert [(c["track"], c["segment"], c["box"]) for c in fake["crops"]] == [
        (c["track"], c["segment"], c["box"]) for c in real["crops"]
    ]
    records = {r.video_id: r for r in dfdc_records(run["out"] / "dfdc")}  # i3d.data reads the crops as DFDC
    assert {k: (r.label, r.original) for k, r in records.items()} == {
        "real_0_0": (0, None), "real_0_1": (0, None), "fake_0_0": (1, "real_0_0"), "fake_0_1": (1, "real_0_1")
    }
    assert not (run["out"] / "people" / "metadata.json").exists()  # no labels there


def test_a_rerun_skips_finished_videos_without_detecting(run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.avi")}
    (out / "people" / "two_1_1.avi").unlink()  # a clip lost: that video is redone
    (out / "people" / ".two_0_0.tmp-4242.avi").write_bytes(b"left by a killed run")
    records, summary = extract_faces([str(run["videos"])], out, OPTS, progress=False)
    status = {r["video_id"]: r["status"] for r in records}
    assert status == {"people/two": "done", "people/none": "skipped", "people/bad": "failed",
                      "dfdc/real": "skipped", "dfdc/fake": "skipped"}
    assert not (out / "people" / ".two_0_0.tmp-4242.avi").exists() and (out / "people" / "two_1_1.avi").exists()
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if "two_" not in p.name)
    monkeypatch.setattr(fx, "get_detector", lambda opts: pytest.fail("a finished video was detected again"))
    records, _ = extract_faces([str(run["videos"])], out, OPTS, progress=False)
    assert {r["video_id"]: r["status"] for r in records if r["status"] != "skipped"} == {"people/bad": "failed"}


def test_a_fake_without_its_original_is_detected_itself(run, tmp_path):
    videos = tmp_path / "dfdc"
    videos.mkdir()
    shutil.copy(run["videos"] / "dfdc" / "fake.avi", videos)
    shutil.copy(run["videos"] / "dfdc" / "metadata.json", videos)
    (record,), _ = extract_faces([str(videos)], tmp_path / "out", OPTS, progress=False)
    assert record["status"] == "done" and record["boxes_from"] is None and record["sampled"] == 12
    assert "detected here" in record["warnings"][0]


def test_bad_options_are_one_line_value_errors():
    with pytest.raises(ValueError, match="--stride 0: must be >= 1"):
        FaceOptions(stride=0)
    with pytest.raises(ValueError, match="--margin"):
        FaceOptions(margin=-1)


def test_a_different_video_of_the_same_name_is_cut_again_and_options_come_from_the_clips(run, tmp_path):
    """A finished cut counts only for the file it was made from; --faces-like takes the clips' own options."""
    from faces.extract import finished_faces, source_stamp
    from faces.options import recorded_options

    done = json.loads((run["out"] / "people" / "two.faces.json").read_text())
    assert done["source_stamp"] == source_stamp(run["videos"] / "people" / "two.avi")
    assert finished_faces(run["out"], "people/two", run["videos"] / "people" / "two.avi") is not None
    other = tmp_path / "two.avi"
    write_video(other, no_face_video(), 25)
    assert finished_faces(run["out"], "people/two", other) is None  # same name, another file: redone
    opts = recorded_options(run["out"], device="cpu")
    assert (opts.stride, opts.split_frames, opts.min_frames, opts.size) == (5, 30, 16, 48)
    (run["out"] / "report.json").write_text(json.dumps({"options": {"margin": 0.9}}))  # a later, skipped run
    assert recorded_options(run["out"]).margin == OPTS.margin  # the clips', not the report's
