"""The DFDC path from raw videos to submission.csv, on real faces (scikit-image's photographs, panned and zoomed):

    extract_faces (REAL detected, each FAKE reuses its original's boxes; labels carried) -> extract_flow on the
    clips -> train_two_stream (the mc3_112 recipe, shrunk) -> predict_ensemble --faces on the raw videos

Learning is not asserted (a few clips, one epoch): this checks that the stages fit, that every raw video with a
face is scored through its clips and that one without a face gets the prior and is listed.
"""

import csv
import json

import pytest

from flow.video import write_video
from i3d.synthetic.faces import astronaut_video, fake_of, no_face_video
from tests.helpers import call_tool

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
FACES = ["--stride", "5", "--split-frames", "0", "--min-frames", "16", "--size", "40", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dfdc_faces")
    meta = {}
    for part, split in (("part0", "train"), ("part1", "val")):
        real, boxes = astronaut_video(num_frames=24, size=(180, 240))
        write_video(root / "raw" / part / "real.avi", real, 25)
        write_video(root / "raw" / part / "fake.avi", fake_of(real, boxes), 25)
        meta[part] = {"real.avi": {"label": "REAL", "split": split, "original": None},
                      "fake.avi": {"label": "FAKE", "split": split, "original": "real.avi"}}
        (root / "raw" / part / "metadata.json").write_text(json.dumps(meta[part]))
    write_video(root / "test" / "noface.avi", no_face_video(num_frames=20, size=(180, 240)), 25)
    write_video(root / "test" / "face.avi", astronaut_video(num_frames=24, size=(180, 240))[0], 25)
    assert call_tool("extract_faces", "--videos", root / "raw", "--out", root / "faces", *FACES) == 0
    assert call_tool("extract_flow", "--videos", root / "faces", "--out", root / "h5", "--short-side", "0",
                    "--nscales", "1", "--warps", "1", "--no-progress") == 0
    sets = [f"data.index={root / 'faces'}", "data.val_index=", "data.train_subset=train", "data.val_subset=val",
            f"data.store_root={root / 'h5'}", "model.rgb.pretrained=", "data.crop_size=32", "data.num_frames=8",
            "data.eval_num_frames=8", "data.num_workers=0", "train.batch_size=2", "train.epochs=1",
            "train.device=cpu", "train.progress=false", "data.sampler=random"]
    argv = ["--config", REPO / "configs" / "dfdc_mc3_112.yaml", "--out", root / "run"]
    for s in sets:
        argv += ["--set", s]
    assert call_tool("train_two_stream", *argv) == 0
    return root


def test_the_clips_carry_the_labels_and_train(run):
    meta = {p.parent.name: json.loads(p.read_text()) for p in (run / "faces").rglob("metadata.json")}
    labels = sorted((part, e["label"], e["split"]) for part, m in meta.items() for e in m.values())
    assert labels == [("part0", "FAKE", "train"), ("part0", "REAL", "train"), ("part1", "FAKE", "val"),
                      ("part1", "REAL", "val")]
    assert (run / "run" / "best.pt").is_file()


def test_predict_ensemble_scores_raw_videos_by_their_faces(run, capsys):
    out = run / "sub" / "submission.csv"
    assert call_tool("predict_ensemble", "--model", run / "run" / "best.pt", "--faces", "--faces-like", run / "faces",
                    "--videos", run / "test", "--out", out, "--prior", "0.3") == 0
    rows = {r["filename"]: float(r["label"]) for r in csv.DictReader(out.open())}
    assert set(rows) == {"noface.avi", "face.avi"}
    assert rows["noface.avi"] == pytest.approx(0.3) and 0 < rows["face.avi"] < 1
    report = json.loads((run / "sub" / "submission_report.json").read_text())
    assert report["failed"] == [] and [v["filename"] for v in report["no_face"]] == ["noface.avi"]
    assert "no face" in report["no_face"][0]["reason"]
    assert list((run / "sub" / "faces").glob("*.avi"))  # the clips that were scored
