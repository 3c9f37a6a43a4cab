r"""Predict P(FAKE) (or class probabilities) for raw videos with a weighted ensemble of trained checkpoints.

    python tools/predict_ensemble.py --model runs/dfdc_mc3_112/best.pt:1 --model runs/dfdc_i3d/best.pt:2 \
        --videos data/dfdc/test_videos --out runs/dfdc/submission.csv
    python tools/predict_ensemble.py --model i3d:j3d_e12.model --model r2p1_112:r2p1_18_8.model:2 \
        --class-order FAKE,REAL --videos face_crops/ --out submission.csv

A model is one of our checkpoints, or TYPE:FILE for a weight file of another codebase (the DFDC authors' J3D,
ResNet3D-34, MC3, R(2+1)D: a two-class head becomes the exact one-logit head z_FAKE - z_REAL, --class-order says
which output is which; the input is the type's own, every frame, the first clip: i3d/inference/foreign.py).
Each model is fed input made by its own input spec (frame rate, short side, flow
settings, clips, crop, normalisation; i3d/inference/ensemble.py); its probabilities (sigmoid for a 1-logit head,
softmax otherwise) are averaged with the weights. Each video is decoded once per distinct frame rate and short
side. With --faces (raw DFDC videos) each video's faces are first cut into clips as tools/extract_faces.py cuts the
training clips, every clip is scored and the video gets the clips' maximum (--aggregate). A video that fails to
decode, or shows no face, gets --prior and is listed once on stderr (FAILED PATH: reason, NO FACE PATH: reason) and in
the report; the run goes on. The exit status is 1 if any video failed (one without a face has not), with every output
written.

Writes OUT (filename,label), OUT_per_model.csv (every model's probabilities, status) and OUT_report.json. --preview N
first draws what the models get from the first N videos into OUT_preview.png (each model's first test clip; with
--faces the face clips and their boxes on a raw frame).
"""

import argparse
import logging
import sys
from pathlib import Path

from common.cli import resolve_device, run_tool
from common.videos import find_videos
from faces.options import FaceOptions, recorded_options
from i3d.inference import ensemble, preview


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", dest="models", action="append", required=True, metavar="[TYPE:]PATH[:WEIGHT]",
                   help="a checkpoint of tools/train_two_stream.py, or TYPE:FILE for another codebase's weights "
                        "(TYPE: i3d, res34, mc3_112, mc3_224, r2p1_112, ...), optionally with its weight; repeat")
    p.add_argument("--class-order", default="REAL,FAKE", help="the classes of a TYPE file's two outputs, in order "
                   "(the DFDC authors' folder listing: FAKE,REAL)")
    p.add_argument("--sampling", choices=("first", "centre"), default="first",
                   help="clips of TYPE files: the first frames (their inference) or centred (I3D's protocol)")
    p.add_argument("--clips", type=int, default=1, help="with --sampling centre: clips per video, logits averaged")
    p.add_argument("--faces", action="store_true", help="raw videos: cut face clips first (tools/extract_faces.py's "
                   "recipe), score every clip, give the video their --aggregate; no face: the prior")
    p.add_argument("--faces-like", type=Path, metavar="DIR", help="with --faces: cut them with the options of this "
                   "tools/extract_faces.py output (the training clips') instead of the defaults")
    p.add_argument("--face-dir", type=Path, help="where the face clips go (default: OUT's folder/faces)")
    p.add_argument("--aggregate", choices=("max", "mean"), default="max", help="over a video's face clips")
    p.add_argument("--videos", nargs="+", required=True, help="video files, folders, globs or .txt lists")
    p.add_argument("--out", type=Path, required=True, help="submission CSV; the per-model CSV and report go beside it")
    p.add_argument("--prior", type=float, help="P(FAKE) for videos that fail to decode or show no face (default 0.5)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--preview", type=int, default=0, metavar="N", help="first write OUT_preview.png, what the models "
                   "get from the first N videos (with --faces: the face clips, their boxes on a raw frame)")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    device = resolve_device(args.device)
    order = tuple(c.strip().upper() for c in args.class_order.split(","))
    members = []
    for i, spec in enumerate(args.models):
        model_type, path, weight = ensemble.parse_model_spec(spec)
        if model_type is None:
            members.append(ensemble.load_member(path, weight, f"m{i}", device))
        else:
            members.append(ensemble.load_foreign_member(model_type, path, weight, f"m{i}", class_order=order,
                                                        sampling=args.sampling, clips=args.clips, device=device))
    like = recorded_options(args.faces_like, device=device, reuse=False) if args.faces_like else None
    faces = (like or FaceOptions(device=device)) if args.faces or like else None  # --faces-like implies --faces
    videos = find_videos(args.videos)
    face_dir = args.face_dir or args.out.parent / "faces"
    if args.preview > 0:
        png = args.out.with_name(f"{args.out.stem}_preview.png")
        png = preview.ensemble_preview(members, videos[: args.preview], png, faces=faces, face_dir=face_dir)
        print(f"preview: {png}")
    result = ensemble.predict_videos(members, videos, prior=args.prior, faces=faces, face_dir=face_dir,
                                     aggregate=args.aggregate)
    paths = ensemble.write_outputs(result, args.out)
    sources = {Path(path).name: path for _, path in videos}  # the outputs name a video by its file name
    for name, error in result.errors.items():
        print(f"FAILED {sources[name]}: {error}", file=sys.stderr)
    for name, reason in result.no_face.items():
        print(f"NO FACE {sources[name]}: {reason}", file=sys.stderr)
    print(f"{len(result.filenames)} videos, {len(result.errors)} failed and {len(result.no_face)} without a face "
          f"(given the prior); wrote {paths['submission']}, {paths['per_model']}, {paths['report']}")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
