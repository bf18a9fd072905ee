"""What every `saliency-callback` subcommand shares: the program name, the one-line user
error, and the argument types used by more than one subcommand.

A module of its own so that subcommands living elsewhere
(`saliency_callback.commands.annotate`) import it without importing
`saliency_callback.commands.cli`, which imports them.
"""

from __future__ import annotations

import argparse

PROG = "saliency-callback"
_MAX_MESSAGE = 400


class CLIError(Exception):
    """A user error, reported as one line on stderr with exit status `code`.

    Args:
        message: What went wrong and, where it helps, what to do.
        code: Exit status: `2` for a wrong command line, `1` otherwise. Defaults to `1`.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def one_line(err: BaseException | str, limit: int = _MAX_MESSAGE) -> str:
    """Collapses an error message to a single line of at most `limit` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def parse_size(text: str) -> tuple[int, int]:
    """Parses `"HxW"` (or `"H,W"`, or `"S"` for a square) into `(height, width)`.

    Raises:
        argparse.ArgumentTypeError: For anything else.
    """
    parts = text.lower().replace(",", "x").split("x")
    try:
        if len(parts) == 1:
            parts = parts * 2
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HxW such as 224x224, received {text!r}"
        ) from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"expected a positive HxW, received {text!r}")
    return h, w
