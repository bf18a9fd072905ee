"""No import cycle anywhere in the repository (the package, benchmarks, scripts, examples, tests).

The graph is read from the source with `ast` (every `import`, also inside functions, except
under `if TYPE_CHECKING:`), not by importing anything, so a cycle that only bites at run time
(a function-level import, as `benchmarks/_long_runs.py` and `bench_callback.py` had) is found.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Folders whose modules import each other by bare name (each is put on sys.path when used).
FLAT = ("benchmarks", "scripts", "examples", "tests")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in (ROOT / "saliency_callback").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for folder in FLAT:
        for path in (ROOT / folder).glob("*.py"):
            mods[f"{folder}:{path.stem}"] = path
    return mods


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Yields `(module, names)` for every import outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, tuple(a.name for a in node.names)
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        folder = name.split(":")[0] if ":" in name else None
        for module, names in _imports(ast.parse(path.read_text(), str(path))):
            targets = [module] + [f"{module}.{n}" for n in names]
            if folder is not None:
                targets += [f"{folder}:{module}"]
            for target in targets:
                if target in mods and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "benchmarks:_common" in graph["benchmarks:bench_callback"]
    assert "saliency_callback.training.options" in graph["saliency_callback.training.callback"]


def test_no_import_cycle_in_the_repository():
    assert find_cycle(import_graph()) is None
