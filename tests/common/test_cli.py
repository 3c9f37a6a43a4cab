"""common.cli.run_tool: a known error is one line and exit status 2, --debug and unknown errors keep the traceback."""

import argparse

import numpy as np
import pytest
import torch

from common.cli import is_known_error, run_tool
from flow.quantize import quantize_flow
from flow.store import FlowStoreError
from i3d.config import ConfigError


def parse_args(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--fail", choices=["config", "store", "missing", "ours", "numpy", "key"])
    return p.parse_args(argv)


def main(args) -> int:
    if args.fail == "config":
        raise ConfigError("unknown config key 'optim.momentun'\n  (did you mean optim.momentum?)")
    if args.fail == "store":
        raise FlowStoreError("h5/v_X.h5 has no 'flow' dataset; re-run extract_flow.py with --overwrite v_X")
    if args.fail == "missing":
        open("/nonexistent/index.csv")
    if args.fail == "ours":  # a ValueError of the project's own code: a bad option
        quantize_flow(np.zeros(2), bound=0)
    if args.fail == "numpy":
        np.zeros(2) + np.zeros(3)  # a bug: numpy's ValueError keeps its traceback
    if args.fail == "key":
        return {}["epoch"]
    return 0


@pytest.mark.parametrize(
    "kind, line",
    [
        ("config", "error: unknown config key 'optim.momentun' (did you mean optim.momentum?)\n"),
        ("store", "error: h5/v_X.h5 has no 'flow' dataset; re-run extract_flow.py with --overwrite v_X\n"),
        ("missing", "error: [Errno 2] No such file or directory: '/nonexistent/index.csv'\n"),
        ("ours", "error: flow bound must be > 0 pixels, got 0\n"),
    ],
)
def test_known_errors_are_one_line_and_status_2(kind, line, capsys):
    assert run_tool(main, parse_args, ["--fail", kind]) == 2
    captured = capsys.readouterr()
    assert captured.err == line and captured.out == ""


def test_debug_shows_the_traceback_and_is_taken_out_of_argv(capsys):
    with pytest.raises(ConfigError, match="optim.momentun"):
        run_tool(main, parse_args, ["--debug", "--fail", "config"])
    assert run_tool(main, parse_args, ["--debug"]) == 0  # parse_args never sees --debug
    assert capsys.readouterr().err == ""


def test_bugs_keep_their_traceback():
    with pytest.raises(ValueError, match="broadcast"):
        run_tool(main, parse_args, ["--fail", "numpy"])
    with pytest.raises(KeyError):
        run_tool(main, parse_args, ["--fail", "key"])


def test_argparse_keeps_its_usage_error_and_help_names_debug(capsys):
    with pytest.raises(SystemExit) as info:
        run_tool(main, parse_args, ["--fail", "nothing"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        run_tool(main, parse_args, ["--help"])
    assert info.value.code == 0 and "--debug (every tool)" in capsys.readouterr().out


def test_what_counts_as_known():
    assert is_known_error(PermissionError(13, "Permission denied", "runs/x"))
    assert not is_known_error(RuntimeError("CUDA out of memory"))
    assert not is_known_error(ValueError("raised nowhere"))  # no traceback: not from the project's code


class Failing(torch.utils.data.Dataset):
    """A dataset whose first item fails as `main` does for `kind`, inside a DataLoader worker process."""

    def __init__(self, kind: str):
        self.kind = kind

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i):
        if self.kind == "store":
            raise FlowStoreError("h5/v_X.h5: flow unreadable\n(checksum); re-run extract_flow.py --overwrite v_X")
        return main(argparse.Namespace(fail=self.kind))


def read_in_a_worker(args) -> int:
    next(iter(torch.utils.data.DataLoader(Failing(args.fail), num_workers=1)))
    return 0


@pytest.mark.parametrize(
    "kind, line",
    [
        ("store", "error: h5/v_X.h5: flow unreadable (checksum); re-run extract_flow.py --overwrite v_X\n"),
        ("ours", "error: flow bound must be > 0 pixels, got 0\n"),
        ("numpy", None),
    ],
)
def test_errors_of_a_dataloader_worker_are_judged_by_its_traceback(kind, line, capsys):
    if line is None:
        with pytest.raises(ValueError, match="broadcast"):
            run_tool(read_in_a_worker, parse_args, ["--fail", kind])
    else:
        assert run_tool(read_in_a_worker, parse_args, ["--fail", kind]) == 2
        assert capsys.readouterr().err == line


def test_resolve_device_refuses_what_this_machine_lacks():
    import torch

    from common.cli import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="--device gpu: use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match=r"--device cuda:99: this machine has \d+ CUDA device"):
        resolve_device("cuda:99")
