"""The layout (docs/layout.md): rooms that import only downwards, and the flat paths kept."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import saliency_callback as sc

PACKAGE = Path(sc.__file__).resolve().parent

# A room never imports the rooms listed for it (docs/layout.md, "Which way the imports go").
FORBIDDEN = {
    "maps": ("training", "output", "shortcuts", "commands", "remedies", "tensorboard_plugin"),
    "shortcuts": ("training", "output", "commands", "remedies", "tensorboard_plugin"),
    "output": ("training", "commands", "remedies", "tensorboard_plugin"),
    "remedies": ("training", "output", "commands", "tensorboard_plugin"),
    "data": ("training", "output", "commands", "remedies", "tensorboard_plugin"),
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name that `path` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_each_room_imports_only_the_rooms_below_it(room):
    offending = []
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "saliency_callback" and len(parts) > 1 and parts[1] in FORBIDDEN[room]:
                offending.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not offending, offending


def test_the_checker_sees_an_import_inside_a_function(tmp_path):
    # The AST walk must reach imports that are deferred into functions, not only top-level ones.
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from saliency_callback.training import callback\n")
    assert "saliency_callback.training.callback" in imported_modules(path)


@pytest.mark.parametrize("old, new", sorted(sc._MOVED.items()))
def test_every_flat_path_is_the_module_at_its_new_path(old, new):
    moved = importlib.import_module(f"saliency_callback.{old}")
    assert moved is importlib.import_module(f"saliency_callback.{new}")
    assert getattr(sc, old) is moved
    assert moved.__name__ == f"saliency_callback.{new}"


def test_a_module_inside_a_moved_package_is_not_loaded_twice():
    code = (
        "import sys\n"
        "import saliency_callback.annotate.server as old\n"
        "import saliency_callback.commands.annotate.server as new\n"
        "assert old is new, (old, new)\n"
        "by_file = {}\n"
        "for m in list(sys.modules.values()):\n"
        "    if 'saliency_callback' in (getattr(m, '__file__', None) or ''):\n"
        "        by_file.setdefault(m.__file__, set()).add(id(m))\n"
        "assert len(by_file) > 3 and all(len(ids) == 1 for ids in by_file.values()), by_file\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_name_that_never_existed_still_fails():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("saliency_callback.no_such_module")
    with pytest.raises(AttributeError, match="no_such_name"):
        sc.no_such_name  # noqa: B018
