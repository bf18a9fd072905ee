"""Writing a benchmark's tables into a documentation page, between its own markers.

A page holds any number of sections, each owned by one benchmark mode:

    <!-- bench_engine: begin -->
    ...written by the benchmark...
    <!-- bench_engine: end -->

`write_section` replaces what lies between a section's markers (adding the markers at the end of
the page when they are missing), leaves the rest of the page alone, and replaces the file
atomically, so an interrupted run never leaves a half-written page. The section's first lines
say which command wrote it, that it is not to be edited by hand, and the load average at the
start and the end of the run.

Standard library only: the scripts that import it need not pay for TensorFlow.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path


def load_average() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def command_line(script: str, argv: Sequence[str] | None = None, prefix: str = "") -> str:
    """`python benchmarks/<script> <arguments>`, as the run was started."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([*([prefix] if prefix else []), "python", f"benchmarks/{script}", *args])


def markers(name: str) -> tuple[str, str]:
    if not name.strip() or "-->" in name or "\n" in name:
        raise ValueError(f"name must be one line without '-->', received {name!r}")
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def section(name: str, markdown: str, command: str, load_start: float) -> str:
    """The whole section, markers included."""
    begin, end = markers(name)
    if "-->" in command:
        raise ValueError(f"command must not contain '-->', received {command!r}")
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    head = (
        f"<!-- written by `{command}`; do not edit by hand -->\n\n"
        f"Written by `{command}` on {today}: {os.cpu_count()} CPUs, load average "
        f"{load_start:.1f} at the start, {load_average():.1f} at the end.\n\n"
    )
    return f"{begin}\n{head}{markdown.strip()}\n\n{end}"  # a blank line ends the last table


def write_section(
    path: str | os.PathLike[str], name: str, markdown: str, command: str, load_start: float
) -> None:
    """Replaces section `name` of the page at `path` by `markdown` (see the module's doc)."""
    path = Path(path)
    begin, end = markers(name)
    body = section(name, markdown, command, load_start)
    page = path.read_text(encoding="utf-8") if path.exists() else ""
    if page.count(begin) > 1 or page.count(end) > 1:
        raise ValueError(f"{path} holds the markers of section {name!r} more than once")
    if begin in page:
        start = page.index(begin)
        if end not in page or page.index(end) < start:
            raise ValueError(f"{path}: section {name!r} has a begin marker but no end after it")
        page = page[:start] + body + page[page.index(end) + len(end) :]
    elif end in page:
        raise ValueError(f"{path}: section {name!r} has an end marker but no begin")
    else:
        page = (page.rstrip("\n") + "\n\n" if page.strip() else "") + body + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fmt_ms(value: float) -> str:
    """A duration for a table: '24.8 ms', '496 ms', '2292 ms'."""
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; cells are written with `str`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns: {row!r}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"
