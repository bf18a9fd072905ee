"""Progress and notes on stderr, for the commands (`Progress`, `Console`)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import IO

from saliency_callback.commands._common import PROG

# --------------------------------------------------------------------------------------------
# Progress and notes on stderr.
# --------------------------------------------------------------------------------------------


class Progress:
    """Shows `label: done/total unit` on stderr for long work.

    On a terminal the line is redrawn in place; otherwise (logs, CI, pipes) a line is printed
    at about every tenth of the work and at the end. Nothing is shown for fewer than
    `min_total` items or when disabled.

    Args:
        label: What is being done, e.g. `"explain"`.
        total: Number of items.
        unit: Name of the items, e.g. `"images"`. Defaults to `"items"`.
        stream: Where to write. Defaults to `sys.stderr`.
        enabled: Whether to show anything. Defaults to `True`.
        min_total: Smallest `total` for which progress is shown. Defaults to `2`.

    Example:
    >>> progress = Progress("explain", 100, "images")
    >>> for i in range(100):
    ...     progress.update(i + 1)
    >>> progress.close()
    """

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "items",
        *,
        stream: IO[str] | None = None,
        enabled: bool = True,
        min_total: int = 2,
    ) -> None:
        self.label = label
        self.total = max(0, int(total))
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.total >= min_total
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self._last_shown = -1
        self._open_line = False

    def update(self, done: int, detail: str = "") -> None:
        """Reports that `done` of `total` items are finished."""
        if not self.enabled:
            return
        done = min(max(0, int(done)), self.total)
        step = max(1, math.ceil(self.total / 10))
        due = done == self.total or self._last_shown < 0 or done - self._last_shown >= step
        if not self.tty and not due:
            return
        self._last_shown = done
        text = f"{self.label}: {done}/{self.total} {self.unit}"
        if detail:
            text += f" ({detail})"
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._open_line = True
            if done == self.total:
                self.close()
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends the in-place line on a terminal."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


@dataclass
class Console:
    """Where notes go (stderr), unless `--quiet`."""

    err: IO[str]
    quiet: bool = False

    def note(self, message: str) -> None:
        if not self.quiet:
            self.err.write(f"{PROG}: note: {message}\n")
            self.err.flush()
