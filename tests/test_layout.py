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


REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 600
REASON = "Longer than 600 lines because"


def too_long(path: Path) -> bool:
    """Whether `path` has more than `MAX_LINES` lines and no stated reason in its docstring."""
    text = path.read_text(encoding="utf-8")
    if len(text.splitlines()) <= MAX_LINES:
        return False
    docstring = ast.get_docstring(ast.parse(text)) or ""
    return not any(s.strip().startswith(REASON) for s in docstring.replace("\n", " ").split(". "))


@pytest.mark.parametrize("folder", ["saliency_callback", "benchmarks"])
def test_no_file_is_longer_than_600_lines_without_a_reason(folder):
    paths = sorted((REPO / folder).rglob("*.py"))
    assert len(paths) > 5, paths  # the folder was found
    offending = [f"{p.relative_to(REPO)}: {len(p.read_text().splitlines())}" for p in paths]
    offending = [o for o, p in zip(offending, paths, strict=True) if too_long(p)]
    assert not offending, offending


def test_the_length_check_reads_the_reason_in_the_docstring(tmp_path):
    body = "x = 1\n" * (MAX_LINES + 1)
    short = tmp_path / "short.py"
    short.write_text('"""Short."""\n' + "x = 1\n" * (MAX_LINES - 1))
    long = tmp_path / "long.py"
    long.write_text('"""A module.\n\nIt has many lines."""\n' + body)
    reasoned = tmp_path / "reasoned.py"
    reasoned.write_text(f'"""A module.\n\n{REASON} its table is one list. More."""\n' + body)
    commented = tmp_path / "commented.py"
    commented.write_text(f'"""A module."""\n# {REASON} of a comment, not the docstring.\n' + body)
    assert not too_long(short)
    assert too_long(long)
    assert not too_long(reasoned)
    assert too_long(commented)
