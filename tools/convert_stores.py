"""Rewrite flow stores of an older format (version 1: gzip flow) as the current one (version 2: Blosc2 LZ4HC flow).

    python tools/convert_stores.py runs/ucf101_flow                 # every *.h5 under the folder
    python tools/convert_stores.py runs/ucf101_flow/v_X.h5 --codec gzip

The flow codes and JPEGs are kept as they are (no TV-L1 is redone); only the flow's compression changes, which makes a
training clip cheaper to load (docs/PERFORMANCE.md, "Flow codecs on real stores"). Each store is read back in full first
(a corrupt one is listed, not converted) and replaced atomically: a killed run leaves every store whole, old or new,
and a rerun skips the converted ones. The exit status is 1 if any store failed.
"""

import argparse
import sys
from pathlib import Path

from common.cli import run_tool
from flow.convert import convert_stores, find_stores
from flow.store_writer import FLOW_CODEC, FLOW_CODECS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="+", type=Path, help="store files or folders of them (searched recursively)")
    p.add_argument("--codec", choices=FLOW_CODECS, default=FLOW_CODEC, help=f"flow codec (default {FLOW_CODEC})")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    paths = []
    for given in args.stores:
        if not given.exists():
            raise FileNotFoundError(f"{given}: no such store or folder")
        paths += find_stores(given) if given.is_dir() else [given]
    if not paths:
        raise FileNotFoundError(f"no *.h5 stores under {' '.join(map(str, args.stores))}")
    result = convert_stores(paths, args.codec)
    for line in result["failed"]:
        print(f"FAILED {line}", file=sys.stderr)
    print(f"converted {len(result['converted'])}, already current {len(result['current'])}, "
          f"failed {len(result['failed'])} of {len(paths)} stores (flow codec {args.codec})")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(run_tool(main, parse_args))
