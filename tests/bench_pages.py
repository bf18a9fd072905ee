"""Helpers for the tests that run a benchmark script and read back the page it wrote."""

from __future__ import annotations

import importlib
import pathlib
import re
import sys
from types import ModuleType

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """Imports `benchmarks/<name>.py` afresh, as `python benchmarks/<name>.py` would see it
    (the benchmarks folder on `sys.path`, so it finds `_common` and `_markdown`)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def page_with_section(path: pathlib.Path, name: str) -> None:
    """A page with prose around a stale section `name`."""
    path.write_text(
        f"# Title\n\nprose before\n\n<!-- {name}: begin -->\nstale | table\n"
        f"<!-- {name}: end -->\n\nprose after\n"
    )


def section_of(page: str, name: str) -> str:
    """The text between the markers of section `name`; the section must be there once."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    assert page.count(begin) == 1 and page.count(end) == 1, (name, page)
    return page[page.index(begin) + len(begin) : page.index(end)]


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in `text`, as rows of {column: cell}; the separator row must be
    there and every row must have as many cells as the header."""
    tables: list[list[dict[str, str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        block = []
        while i < len(lines) and lines[i].startswith("|"):
            block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
            i += 1
        header, separator, *rows = block
        assert all(set(c) <= set("-:") and c for c in separator), block
        assert len(separator) == len(header), block
        tables.append([dict(zip(header, row, strict=True)) for row in rows])
    return tables


def number(cell: str) -> float:
    """The first number of a cell: '24.8 ms' -> 24.8, '(1.24x)' -> 1.24, '+3.1%' -> 3.1."""
    match = re.search(r"[-+]?\d+(?:\.\d+)?", cell)
    assert match, f"no number in {cell!r}"
    return float(match.group())


def written_tables(page: str, name: str, printed: str) -> list[list[dict[str, str]]]:
    """The tables of section `name`, checked to be among the tables the run printed."""
    body = section_of(page, name)
    assert "do not edit by hand" in body.splitlines()[1]
    assert "load average" in body and "at the start" in body and "at the end" in body
    tables = markdown_tables(body)
    printed_tables = markdown_tables(printed)
    assert tables and all(t in printed_tables for t in tables), "not the printed numbers"
    return tables


def run_into_page(tmp_path, capsys, script: str, section: str, argv: list[str]) -> tuple[str, str]:
    """Runs `script`'s main with `--markdown` into a page holding prose and a stale `section`;
    returns the page written and what the run printed."""
    page = tmp_path / "page.md"
    page_with_section(page, section)
    assert load_benchmark(script).main([*argv, "--markdown", str(page)]) == 0
    return page.read_text(), capsys.readouterr().out


def assert_prose_kept(page: str) -> None:
    assert page.startswith("# Title\n\nprose before\n\n") and page.endswith("\n\nprose after\n")
    assert "stale | table" not in page
