"""A public top-level name is defined in one module only, so that it means one thing wherever it is imported from
or read: `finished` in two jobs, or `config_to_dict` for two kinds of config, send a reader to the wrong definition.

Counted: functions, classes and UPPER_CASE constants at a module's top level (also inside a top-level `if` / `try`)
in the project's packages and scripts; not methods, not local names, not names that start with "_".
"""

import ast
from collections import defaultdict
from pathlib import Path

from tests.helpers import REPO

FOLDERS = ("common", "faces", "flow", "i3d", "tools", "benchmarks")

# Roles that several modules play side by side, each definition the same role for its own module. Keep it short: a
# name that means something else in each module gets a name of its own instead.
ALLOWED = {
    # every script: STYLE's thin tool, `parse_args()` + `main(args)`
    "main",
    "parse_args",
    # a script's checkout root from its own __file__ (it is set before the project can be imported); common.cli's too
    "ROOT",
    # the same OpenCV operation in each TV-L1 engine: a numba kernel on arrays, torch ops on tensors (flow/engines)
    "resize_linear",
    "centered_gradient",
}


def _assigned(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def top_level_names(tree: ast.Module) -> set[str]:
    """Public functions, classes and constants defined at the module's top level (or in a top-level if/try)."""
    names, todo = set(), list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.If, ast.Try)):
            todo += node.body + node.orelse + getattr(node, "finalbody", [])
            todo += [stmt for handler in getattr(node, "handlers", []) for stmt in handler.body]
        else:
            names.update(name for name in _assigned(node) if name.isupper())
    return {name for name in names if not name.startswith("_")}


def definitions(root: Path, folders: tuple[str, ...] = FOLDERS) -> dict[str, list[str]]:
    """{name: the modules (paths relative to `root`) that define it} over every .py file under `folders`."""
    found = defaultdict(list)
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            for name in top_level_names(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                found[name].append(path.relative_to(root).as_posix())
    return dict(found)


def clashes(found: dict[str, list[str]], allowed=frozenset()) -> dict[str, list[str]]:
    return {name: paths for name, paths in sorted(found.items()) if len(paths) > 1 and name not in allowed}


def test_no_public_name_is_defined_in_two_modules():
    twice = clashes(definitions(REPO), ALLOWED)
    assert not twice, "defined in more than one module (rename one, or share one definition): " + "; ".join(
        f"{name}: {', '.join(paths)}" for name, paths in twice.items()
    )


def test_every_allowed_name_is_still_defined_twice():
    found = definitions(REPO)
    stale = sorted(name for name in ALLOWED if len(found.get(name, [])) < 2)
    assert not stale, f"no longer defined twice; remove from ALLOWED: {stale}"


def test_the_walk_counts_top_level_definitions_only(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text(
        "import os\nLIMIT = 3\nlimit = 4\n_PRIVATE = 5\nclass Scene:\n    def render(self): pass\n"
        "def render(): pass\ntry:\n    from x import y\nexcept ImportError:\n    def fallback(): pass\n"
    )
    (tmp_path / "pkg" / "sub" / "b.py").write_text(
        "LIMIT: int = 3\ndef render():\n    SCENE = 1\ndef _helper(): pass\nif True:\n    def fallback(): pass\n"
    )
    found = definitions(tmp_path, ("pkg",))
    assert found == {"LIMIT": ["pkg/a.py", "pkg/sub/b.py"], "Scene": ["pkg/a.py"],
                     "render": ["pkg/a.py", "pkg/sub/b.py"], "fallback": ["pkg/a.py", "pkg/sub/b.py"]}
    assert clashes(found, {"render"}) == {"LIMIT": ["pkg/a.py", "pkg/sub/b.py"],
                                          "fallback": ["pkg/a.py", "pkg/sub/b.py"]}
