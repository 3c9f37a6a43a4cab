"""The command-line tools' error convention: a known mistake is one line on stderr and exit status 2.

Every tool in `tools/` ends with

    if __name__ == "__main__":
        sys.exit(run_tool(main, parse_args))

and keeps `main(args)` raising, so tests and notebooks that call `main(parse_args([...]))` see the exception.
`run_tool` runs the tool; when it stops on a known error it prints

    error: runs/ucf101/last.pt is truncated or not a torch file (...); runs/ucf101/best.pt is whole (epoch 3): ...

on stderr and returns 2 instead of a traceback, whose last line would have said the same. `--debug` anywhere on the
command line (every tool takes it; it is removed before `parse_args` sees it) shows the traceback instead. Known:

- an error class of this project (`common.*`, `i3d.*`, `flow.*`, `faces.*`: ConfigError, CheckpointError,
  InputSpecError, WeightsError, PredictError, FlowStoreError, VideoError, DiskFullError, ...): their messages name the
  file and the fix;
- a missing, unreadable or misplaced file (FileNotFoundError, PermissionError, IsADirectoryError, ...), which
  names the path;
- a ValueError raised by the project's own code (common/, faces/, flow/, i3d/, tools/): a bad option or input, e.g.
  "data.store_root is empty; set it to tools/extract_flow.py's --out folder".

An error raised in a DataLoader worker (a damaged store read during training) reaches the tool re-raised by torch,
its type kept and the worker's traceback in its message: it is judged, and printed, by the worker's own traceback.
Ctrl-C (KeyboardInterrupt) prints one line, `interrupted: ...` (what the run had finished, for the batch runner's
jobs), and returns 130, the shell's status for SIGINT.

Anything else (a ValueError inside numpy or torch, a KeyError, a RuntimeError) is a bug or an unforeseen fault and
keeps Python's traceback and exit status 1. argparse's own mistakes keep argparse's usage line and status 2.
"""

import argparse
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "faces", "flow", "i3d")  # the project's packages: their error classes and ValueErrors are known
PROJECT_DIRS = tuple(str(ROOT / name) + os.sep for name in (*PACKAGES, "tools"))
FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
WORKER_TRACEBACK = "\nOriginal Traceback (most recent call last):\n"  # torch's ExceptionWrapper.reraise
DEBUG_HELP = "\n--debug (every tool): on an error, print the traceback instead of the one-line message"


def run_tool(main: Callable, parse_args: Callable, argv: Sequence[str] | None = None) -> int:
    """`main(parse_args(argv))` under the convention: a known error prints one line and returns 2.

    Args:
        main: the tool's `main(args) -> int | None`.
        parse_args: the tool's `parse_args(argv) -> argparse.Namespace`.
        argv: the command line without the program name (default `sys.argv[1:]`); `--debug` is taken out of it.

    Returns:
        main's exit status (None counts as 0), 2 after a known error, 130 after Ctrl-C.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return main(parse_args(argv)) or 0
    except SystemExit as e:
        if e.code == 0 and ("-h" in argv or "--help" in argv):
            print(DEBUG_HELP)
        raise
    except KeyboardInterrupt as e:
        if debug:
            raise
        print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug or not is_known_error(e):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2


def is_known_error(e: BaseException) -> bool:
    """True for the errors `run_tool` reports in one line (see the module docstring)."""
    if type(e).__module__.partition(".")[0] in PACKAGES:
        return True
    if isinstance(e, FILE_ERRORS):
        return True
    return isinstance(e, ValueError) and raised_by_project(e)


def raised_by_project(e: BaseException) -> bool:
    """Whether the innermost frame of `e`'s traceback (a DataLoader worker's, for an error re-raised from one) is in
    common/, faces/, flow/, i3d/ or tools/, not in a library."""
    worker = str(e).partition(WORKER_TRACEBACK)[2]
    if worker:
        files = re.findall(r'^  File "(.*?)", line', worker, flags=re.M)
    else:
        files = [frame.filename for frame in traceback.extract_tb(e.__traceback__)]
    return bool(files) and str(Path(files[-1]).resolve()).startswith(PROJECT_DIRS)


def one_line(e: BaseException) -> str:
    """The exception's message with its line breaks folded into spaces (its class name when it has none); for an
    error re-raised from a DataLoader worker, the worker's message alone."""
    text = str(e)
    worker = text.partition(WORKER_TRACEBACK)[2]
    heads = list(re.finditer(rf"^(?:[\w.]+\.)?{re.escape(type(e).__name__)}: ", worker, flags=re.M))
    if heads:
        text = worker[heads[-1].end() :]
    return " ".join(text.split()) or type(e).__name__


def resolve_device(text: str) -> str:
    """A tool's --device: "auto" (CUDA when there is one, else the CPU), "cpu", or "cuda[:N]" that must exist here.

    Raises:
        ValueError (one line under `run_tool`) for an unknown name or a CUDA device this machine does not have.
    """
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return text
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(text[5:]) if ":" in text else 0
        if index >= count:
            raise ValueError(f"--device {text}: this machine has {count} CUDA device(s); use --device cpu or auto")
        return text
    raise ValueError(f"--device {text}: use auto, cpu, cuda or cuda:N")


def parse_size(text: str) -> tuple[int, int]:
    """A --size argument, '128x160' -> (128, 160): frame height x width (argparse's usage line for anything else)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected HEIGHTxWIDTH, e.g. 128x160") from None
    return height, width
