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
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any, TypeVar

import numpy as np

from saliency_callback.commands._common import PROG, CLIError, one_line, parse_size
from saliency_callback.commands.explain_files import (
    ExplainError,
    ExplainJob,
    SummaryRow,
    batches,
    staged_directory,
    write_summary,
)
from saliency_callback.data.loading import (
    ImageFile,
    LoadError,
    load_model,
    load_pixels,
    load_saved_model,
    model_input,
    open_images,
    read_class_names,
    resolve_size,
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
class _Console:
    """Where notes go (stderr), unless `--quiet`."""

    err: IO[str]
    quiet: bool = False

    def note(self, message: str) -> None:
        if not self.quiet:
            self.err.write(f"{PROG}: note: {message}\n")
            self.err.flush()


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
    ex.set_defaults(handler=_run_explain)

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
    rp.set_defaults(handler=_run_report)

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


# --------------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------------


def _build_method(args: argparse.Namespace) -> Any:
    """The saliency method of `--method`, with its options.

    Raises:
        CLIError: (exit status 2) for an option of another method.
    """
    from saliency_callback.maps.methods import GradCAM, IntegratedGradients, SmoothGrad, Vanilla

    if args.layer is not None and args.method != "gradcam":
        raise CLIError("--layer is for --method gradcam", 2)
    if args.samples is not None and args.method != "smoothgrad":
        raise CLIError("--samples is for --method smoothgrad", 2)
    if args.steps is not None and args.method != "integrated_gradients":
        raise CLIError("--steps is for --method integrated_gradients", 2)
    if args.method == "smoothgrad":
        return SmoothGrad(Vanilla(), n_samples=args.samples or 20)
    if args.method == "integrated_gradients":
        return IntegratedGradients(steps=args.steps or 32)
    if args.method == "gradcam":
        return GradCAM(layer=args.layer)
    return Vanilla()


def _print_table(rows: list[SummaryRow], show_target: bool, out: IO[str]) -> None:
    """Prints the rows as a table with aligned columns (`explained` only with `--target`)."""
    header = ["file", "predicted", "confidence"]
    if show_target:
        header.append("explained")
    header.append("peak (x, y)")
    table = [header]
    for r in rows:
        line = [r.file, r.predicted, r.confidence]
        if show_target:
            line.append(r.target)
        line.append(f"({r.peak_x}, {r.peak_y})")
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    out.flush()


def _run_explain(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Runs `explain`; errors in its inputs and outputs become `CLIError`s."""
    try:
        return _explain(args, out, err)
    except LoadError as error:
        raise CLIError(str(error), 2 if error.usage else 1) from None
    except ExplainError as error:
        raise CLIError(str(error)) from None


def _explain(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Checks the inputs, explains the images in batches, writes the files, prints the table."""
    console = _Console(err, args.quiet)
    class_names = read_class_names(args.class_names)
    method = _build_method(args)
    if not os.path.exists(args.model):
        raise CLIError(f"model not found: {args.model}")
    files = open_images(args.images)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out!r} is a file, expected a directory")

    model = load_model(args.model, args.endpoint)
    spec = model_input(model)
    size = resolve_size(args.size, spec)

    from saliency_callback.maps.engine import Explainer
    from saliency_callback.output.render import Renderer

    try:
        explainer = Explainer(model, method, target=args.target, batch_size=args.batch_size)
    except (ValueError, TypeError) as error:
        message = one_line(error)
        if args.target != "predicted" and "`target`" in message:
            raise CLIError(f"--target {args.target} does not fit the model: {message}") from None
        raise CLIError(
            f"cannot explain this model with --method {args.method}: {message}"
        ) from None
    head = explainer.head
    if (
        class_names is not None
        and head.num_classes is not None
        and len(class_names) != head.num_classes
    ):
        raise CLIError(
            f"--class-names has {len(class_names)} names but the model has "
            f"{head.num_classes} classes"
        )
    if class_names is not None and head.num_classes is None:
        console.note("--class-names ignored: the model has one linear output (regression)")
    renderer = Renderer(sigma=args.sigma, colormap=args.colormap, alpha=args.alpha)
    if os.path.isdir(args.model):
        console.note(
            "SavedModel: gradients are taken of its saved output as it is (no pre-activation "
            "logits are available)"
        )
    if spec.channels is None:
        console.note("the model accepts any number of channels; images are read as RGB")
    if size is None:
        console.note("the model accepts any image size; each image keeps its own size")
    if args.scale == 1.0 and args.offset == 0.0:
        console.note(
            "pixel values are fed as 0..255 (use --scale 1/255 for models trained on [0, 1])"
        )

    job = ExplainJob(
        explainer,
        renderer,
        class_names,
        method.name,
        scale=args.scale,
        offset=args.offset,
        sigma=args.sigma,
        colormap=args.colormap,
        alpha=args.alpha,
    )
    progress = Progress("explain", len(files), "images", stream=err, enabled=not args.quiet)
    rows: dict[int, SummaryRow] = {}
    resized_count = converted_count = 0
    with staged_directory(args.out) as stage:
        done = 0
        progress.update(0)
        for group in batches(files, size, args.batch_size):
            by_shape: dict[tuple[int, ...], list[tuple[ImageFile, np.ndarray, np.ndarray]]] = {}
            for item in group:
                px, disp, was_resized, was_converted = load_pixels(item, size, spec.channels)
                resized_count += was_resized
                converted_count += was_converted
                by_shape.setdefault(px.shape, []).append((item, px, disp))
            for entries in by_shape.values():  # one shape unless the model takes any size
                rows.update(job.explain(stage, entries))
            done += len(group)
            progress.update(done)
        write_summary(os.path.join(stage, "summary.csv"), [rows[i] for i in sorted(rows)])
    progress.close()
    if resized_count and size is not None:
        source = "--size" if args.size is not None else "the model's input size"
        console.note(
            f"resized {resized_count} of {len(files)} images to {size[0]}x{size[1]} ({source})"
        )
    if converted_count:
        mode = {1: "grayscale", 4: "RGBA"}.get(spec.channels or 3, "RGB")
        console.note(
            f"converted {converted_count} of {len(files)} images to {mode} for the "
            f"model's {spec.channels or 3} channels"
        )
    show_target = args.target != "predicted"
    _print_table([rows[i] for i in sorted(rows)], show_target, out)
    console.note(
        f"wrote the explanations of {len(rows)} image{'s' if len(rows) != 1 else ''} to {args.out}"
    )
    return 0


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def _run_report(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from saliency_callback.output import report

    console = _Console(err, args.quiet)
    outputs = []
    for path in args.out:
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in (".html", ".htm", ".png"):
            raise CLIError(f"--out {path!r}: expected a .html or .png file", 2)
        if os.path.isdir(path):
            raise CLIError(f"--out {path!r} is a directory, expected a .html or .png file")
        outputs.append(path)

    def progress_factory(label: str, total: int, unit: str) -> Progress:
        return Progress(label, total, unit, stream=err, enabled=not args.quiet)

    try:
        runs = report.read_saliency_runs(args.logdir, runs=args.run, progress=progress_factory)
    except report.LogDirError as error:
        raise CLIError(one_line(error)) from None
    if args.max_probes is not None:
        runs = [
            dataclasses.replace(
                run, panels={s: p[: args.max_probes] for s, p in run.panels.items()}
            )
            for run in runs
        ]
    try:
        report.write_report(
            runs,
            outputs,
            log_dir=args.logdir,
            title=args.title,
            max_steps=args.max_steps,
            cell_width=args.cell_width,
            progress=progress_factory,
        )
    except OSError as error:
        raise CLIError(f"cannot write the report: {one_line(error)}") from None
    for run in runs:
        n_alarms = len(run.alarms)
        console.note(
            f"run {run.name!r}: {run.num_probes} probes x {len(run.steps)} steps"
            + (f", {n_alarms} alarm{'s' if n_alarms != 1 else ''}" if n_alarms else "")
        )
    for path in outputs:
        out.write(f"{path}\n")
    out.flush()
    return 0
