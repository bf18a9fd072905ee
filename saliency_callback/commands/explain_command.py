"""The `explain` subcommand: saliency maps of a saved model on image files (`explain_files`)."""

from __future__ import annotations

import argparse
import os
from typing import IO, Any

import numpy as np

from saliency_callback.commands._common import CLIError, one_line
from saliency_callback.commands.explain_files import (
    ExplainError,
    ExplainJob,
    SummaryRow,
    batches,
    staged_directory,
    write_summary,
)
from saliency_callback.commands.progress import Console, Progress
from saliency_callback.data.loading import (
    ImageFile,
    LoadError,
    load_model,
    load_pixels,
    model_input,
    open_images,
    read_class_names,
    resolve_size,
)

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


def run_explain(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Runs `explain`; errors in its inputs and outputs become `CLIError`s."""
    try:
        return _explain(args, out, err)
    except LoadError as error:
        raise CLIError(str(error), 2 if error.usage else 1) from None
    except ExplainError as error:
        raise CLIError(str(error)) from None


def _explain(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Checks the inputs, explains the images in batches, writes the files, prints the table."""
    console = Console(err, args.quiet)
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
