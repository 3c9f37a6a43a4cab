"""The README's command lines stay runnable as written: the environment's Python, existing tools and options.

Each command of a ```bash block that runs `tools/NAME.py` must start with `.venv/bin/` (the system Python has no
torch), and every `--option` it passes must be one that the tool's `--help` lists (a renamed or removed option, such
as the `--skip-missing` an error message once recommended, fails here). The weight conversion runs as written, on the
real checkpoint in ../shared (I3D_SHARED_DIR when it lives elsewhere), or names one of deepmind/kinetics-i3d's five
TensorFlow checkpoints, whose .index files are test fixtures (tests/i3d/models/test_deepmind_tf.py converts their
layout; their data files are not here).
"""

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from tests.helpers import SHARED, load_script

REPO = Path(__file__).resolve().parents[2]
DEEPMIND = REPO / "tests" / "i3d" / "models" / "fixtures" / "kinetics_i3d"


def readme_commands() -> list[tuple[str, list[str]]]:
    """(tool name, the words after tools/NAME.py) of every README command that runs a tool."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S):
        text = re.sub(r"#[^\n]*", "", block.replace("\\\n", " "))  # join continued lines, drop comments
        for part in re.split(r"[;\n]|&&", text):
            words = shlex.split(part.strip().removeprefix("do ").strip())
            scripts = [i for i, w in enumerate(words) if re.fullmatch(r"tools/\w+\.py", w)]
            if scripts:
                assert words[0].startswith(".venv/bin/"), f"README: {part.strip()!r} does not use .venv"
                commands.append((Path(words[scripts[0]]).stem, words[scripts[0] + 1 :]))
    return commands


def tool_help(name: str) -> str:
    module = load_script(f"tools/{name}.py")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.parse_args(["--help"])
    return out.getvalue()


def test_readme_runs_the_tools_with_options_they_have():
    commands = readme_commands()
    assert {"extract_flow", "train_two_stream", "eval", "predict", "distill"} <= {name for name, _ in commands}
    helps = {}
    for name, words in commands:
        helps.setdefault(name, tool_help(name))
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", helps[name]), f"README: {name}.py {option}"


def test_readme_converts_the_shared_weights_as_written(tmp_path, capsys):
    """Every README `convert_weights.py` example reads a file that is in ../shared, and converts it."""
    commands = [words for name, words in readme_commands() if name == "convert_weights"]
    assert commands, "README: no tools/convert_weights.py example"
    tool = load_script("tools/convert_weights.py")
    for src, out, *options in commands:
        if src.startswith("kinetics-i3d/data/checkpoints/"):  # a clone of deepmind/kinetics-i3d
            assert (DEEPMIND / src.removeprefix("kinetics-i3d/data/checkpoints/")).with_suffix(".ckpt.index").is_file()
            continue
        assert src.startswith("../shared/"), f"README: {src} is not in ../shared, beside the checkout"
        path = SHARED / src.removeprefix("../shared/")
        if not path.is_file():
            pytest.skip(f"{path} not found: set I3D_SHARED_DIR to the folder holding {src.removeprefix('../shared/')}")
        assert tool.main(tool.parse_args([str(path), str(tmp_path / out), *options])) == 0
        assert (tmp_path / out).is_file() and "num_classes=400, in_channels=3" in capsys.readouterr().out
