"""The `saliency-callback` command line: `explain` image files, `report` a log dir, `annotate`.

```
saliency-callback explain model.keras cat.jpg dog.png --out explained/
saliency-callback report logs/ --out report.html --out report.png
saliency-callback annotate photos/ --out probes.npz   (see saliency_callback.commands.annotate)
```

Installed as a console script (and runnable as `python -m saliency_callback`). User errors are
one line on stderr, `saliency-callback: error: ...`, with exit status 2 for a wrong command line
and 1 for everything else (missing or unreadable files, a model that does not fit the images,
a log dir without saliency runs). Outputs are staged in a temporary place and moved into
place only when everything succeeded, so a failure leaves nothing half-written behind.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, TypeVar

from saliency_callback.commands._common import PROG, CLIError, one_line, parse_size
from saliency_callback.commands.explain_command import run_explain
from saliency_callback.commands.explain_files import (
    staged_directory,
)
from saliency_callback.commands.progress import Progress
from saliency_callback.commands.report_command import run_report
from saliency_callback.data.loading import (
    load_model,
    load_saved_model,
)

METHODS = ("vanilla", "smoothgrad", "integrated_gradients", "gradcam")

__all__ = [
    "PROG",
    "CLIError",
    "Progress",
    "build_parser",
    "load_model",
    "load_saved_model",
    "main",
    "one_line",
    "parse_scale",
    "parse_size",
    "parse_target",
    "staged_directory",
]


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are `CLIError`s (one line, exit status 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')", 2)


# --------------------------------------------------------------------------------------------
# Argument types.
# --------------------------------------------------------------------------------------------


_T = TypeVar("_T", int, float)


def _parse_number(
    text: str, convert: Callable[[str], _T], form: str, valid: Callable[[_T], bool], rule: str
) -> _T:
    """`convert(text)` if it is `valid`.

    Raises:
        argparse.ArgumentTypeError: "expected {form}" when `text` does not convert, "expected
            {rule}" when the value is not `valid`.
    """
    try:
        value = convert(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected {form}, received {text!r}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"expected {rule}, received {text!r}")
    return value


def parse_scale(text: str) -> float:
    """Parses a positive number or fraction such as `"1/255"` or `"0.5"`.

    Raises:
        argparse.ArgumentTypeError: For anything else.
    """
    return _parse_number(
        text,
        lambda t: float(Fraction(t.strip())),
        "a number or a fraction such as 1/255",
        lambda v: math.isfinite(v) and v > 0,
        "a positive scale",
    )


def parse_target(text: str) -> str | int:
    """Parses `"predicted"` or a class index.

    Raises:
        argparse.ArgumentTypeError: For anything else.
    """
    if text == "predicted":
        return text
    return _parse_number(
        text, int, "'predicted' or a class index", lambda v: v >= 0, "a class index >= 0"
    )


def _positive_int(text: str) -> int:
    return _parse_number(text, int, "a positive integer", lambda v: v >= 1, "a positive integer")


def _non_negative_float(text: str) -> float:
    return _parse_number(
        text, float, "a number", lambda v: math.isfinite(v) and v >= 0, "a number >= 0"
    )


def _alpha(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], received {text!r}")
    return value


def _colormap(text: str) -> str:
    from saliency_callback.output.render import validate_colormap

    try:
        return validate_colormap(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(one_line(err)) from None


# --------------------------------------------------------------------------------------------
# The parser.
# --------------------------------------------------------------------------------------------

_MAIN_EPILOG = f"""\
examples:
  {PROG} explain model.keras cat.jpg dog.png --out explained/
  {PROG} report logs/ --out report.html --out report.png
  {PROG} annotate photos/ --out probes.npz --size 224x224

Run '{PROG} COMMAND --help' for the options of a command.
"""

_EXPLAIN_DESCRIPTION = """\
Explain a saved Keras model on image files: which pixels drove its prediction?

For each IMAGE it writes into --out DIR:
  NAME.map.png      the raw saliency map (normalised to 0..255, grayscale, model input size)
  NAME.overlay.png  the smoothed map blended over the image (model input size)
  NAME.panel.png    the panel: image | smoothed map | overlay, with a caption
  NAME.npz          arrays: input, attributions, map, smoothed, outputs, logits, target,
                    predicted, confidence, peak (row, col), peak_image (row, col), image_file
and summary.csv with one row per image; a table is printed on stdout.

Images are converted to the model's channels (grayscale/RGB/RGBA), resized to --size or to the
model's fixed input size (saying so), and multiplied by --scale (then --offset added): the
values must be in the range the model was trained on. Nothing is written if anything fails.
An IMAGE may also be a probe file written by 'annotate' (.npz): it stands for its probes'
images (skipped probes left out), named after them.
"""

_EXPLAIN_EPILOG = f"""\
examples:
  {PROG} explain model.keras cat.jpg --out explained/
  {PROG} explain model.keras photos/*.jpg --out explained/ --scale 1/255 \\
      --method smoothgrad --class-names cat,dog
  {PROG} explain model.keras scan.png --out explained/ --target 2 --sigma 0
  {PROG} explain saved_model_dir/ img.png --out explained/ --size 224x224 \\
      --scale 2/255 --offset -1
"""

_REPORT_DESCRIPTION = """\
Turn a TensorBoard log dir written by SaliencyCallback into a static, self-contained report.

Reads every saliency run of LOGDIR (any directory whose event files hold 'saliency/probes'),
with all logged steps. An .html output holds, per run: a timeline grid (probes as rows, logged
steps as columns, each cell the probe's panel), the mass-in-mask and confidence curves when
logged, and the alarm events. Images are embedded, so the file opens in any browser without a
server and can be attached to a ticket. A .png output holds the timeline grids.
"""

_REPORT_EPILOG = f"""\
examples:
  {PROG} report logs/ --out report.html
  {PROG} report logs/ --out report.html --out timeline.png
  {PROG} report logs/ --out report.html --run shortcut/saliency --max-steps 12
"""


def build_parser() -> argparse.ArgumentParser:
    """Builds the `saliency-callback` argument parser (`explain` and `report` subcommands).

    Returns:
        The parser. Its `error` raises `CLIError` (exit status 2) instead of exiting.
    """
    from saliency_callback import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        description="Saliency maps for Keras image models, from the command line.",
        epilog=_MAIN_EPILOG,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ex = sub.add_parser(
        "explain",
        help="explain a saved model on image files",
        description=_EXPLAIN_DESCRIPTION,
        epilog=_EXPLAIN_EPILOG,
        formatter_class=fmt,
    )
    ex.add_argument("model", metavar="MODEL", help="a .keras (or .h5) file or a SavedModel dir")
    ex.add_argument(
        "images",
        metavar="IMAGE",
        nargs="+",
        help="PNG, JPEG or other image files, or probe files (.npz) from 'annotate'",
    )
    ex.add_argument("--out", "-o", metavar="DIR", required=True, help="output directory")
    ex.add_argument(
        "--method",
        choices=METHODS,
        default="vanilla",
        help="saliency method (default: %(default)s)",
    )
    ex.add_argument(
        "--target",
        type=parse_target,
        default="predicted",
        metavar="predicted|INDEX",
        help="class to explain: each image's predicted class, or a class index "
        "(default: %(default)s)",
    )
    ex.add_argument(
        "--class-names",
        metavar="A,B,C",
        help="comma-separated class names (or a file with one name per line)",
    )
    ex.add_argument(
        "--size",
        type=parse_size,
        metavar="HxW",
        help="resize images to HxW (default: the model's input size, else each image's own)",
    )
    ex.add_argument(
        "--scale",
        type=parse_scale,
        default=1.0,
        metavar="S",
        help="multiply pixel values (0..255) by S, e.g. 1/255 for models trained on [0, 1] "
        "(default: 1)",
    )
    ex.add_argument(
        "--offset",
        type=float,
        default=0.0,
        metavar="B",
        help="then add B, e.g. --scale 2/255 --offset -1 for [-1, 1] (default: 0)",
    )
    ex.add_argument(
        "--sigma",
        type=_non_negative_float,
        default=1.0,
        help="Gaussian smoothing of the overlay, in pixels; 0 turns it off (default: 1)",
    )
    ex.add_argument(
        "--colormap",
        type=_colormap,
        default="inferno",
        help="a matplotlib colormap (default: %(default)s)",
    )
    ex.add_argument(
        "--alpha",
        type=_alpha,
        default=0.5,
        help="maximum opacity of the heatmap in the overlay (default: 0.5)",
    )
    ex.add_argument(
        "--layer", metavar="NAME", help="gradcam: the convolution layer (default: the last one)"
    )
    ex.add_argument(
        "--samples",
        type=_positive_int,
        metavar="N",
        help="smoothgrad: number of noisy copies (default: 20)",
    )
    ex.add_argument(
        "--steps",
        type=_positive_int,
        metavar="N",
        help="integrated_gradients: path steps (default: 32)",
    )
    ex.add_argument(
        "--endpoint",
        metavar="NAME",
        help="SavedModel: the endpoint to call (default: 'serve', else 'serving_default')",
    )
    ex.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        metavar="N",
        help="images per batch (default: %(default)s)",
    )
    ex.add_argument("--quiet", "-q", action="store_true", help="no progress or notes on stderr")
    ex.set_defaults(handler=run_explain)

    rp = sub.add_parser(
        "report",
        help="turn a log dir into a static HTML/PNG timeline report",
        description=_REPORT_DESCRIPTION,
        epilog=_REPORT_EPILOG,
        formatter_class=fmt,
    )
    rp.add_argument("logdir", metavar="LOGDIR", help="a log dir written by SaliencyCallback")
    rp.add_argument(
        "--out",
        "-o",
        metavar="FILE",
        action="append",
        required=True,
        help="report.html and/or report.png; repeat for both",
    )
    rp.add_argument(
        "--run",
        action="append",
        metavar="NAME",
        help="only this run (its path relative to LOGDIR); repeatable (default: all)",
    )
    rp.add_argument(
        "--max-steps",
        type=_positive_int,
        metavar="N",
        help="at most N timeline columns, evenly spaced, first and last kept (default: all)",
    )
    rp.add_argument(
        "--max-probes",
        type=_positive_int,
        metavar="N",
        help="only the first N probes of each run (default: all)",
    )
    rp.add_argument(
        "--cell-width",
        type=_positive_int,
        default=330,
        metavar="PX",
        help="panels wider than PX pixels are downscaled (default: %(default)s)",
    )
    rp.add_argument("--title", help="report title (default: 'Saliency report: LOGDIR')")
    rp.add_argument("--quiet", "-q", action="store_true", help="no progress or notes on stderr")
    rp.set_defaults(handler=run_report)

    from saliency_callback.commands.annotate.command import add_parser as add_annotate

    add_annotate(sub, fmt)
    return parser


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `saliency-callback` command line.

    Args:
        argv: The arguments, without the program name. Defaults to `sys.argv[1:]`.

    Returns:
        The exit status: `0` on success, `2` for a wrong command line, `1` for other errors
        (printed as one line, `saliency-callback: error: ...`, on stderr).

    Example:
    >>> main(["explain", "model.keras", "cat.png", "--out", "explained"])
    0
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    out, err = sys.stdout, sys.stderr
    try:
        parser = build_parser()
        args = parser.parse_args(list(argv) if argv is not None else None)
        if args.command is None:
            parser.print_help(out)
            return 2
        code: int = args.handler(args, out, err)
        return code
    except CLIError as error:
        err.write(f"{PROG}: error: {one_line(error)}\n")
        err.flush()
        return error.code
    except SystemExit as stop:  # --help and --version
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except KeyboardInterrupt:
        err.write(f"{PROG}: error: interrupted\n")
        return 130
