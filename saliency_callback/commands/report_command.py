"""The `report` subcommand: a static HTML/PNG report from a log dir (`output.report`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import IO

from saliency_callback.commands._common import CLIError, one_line
from saliency_callback.commands.progress import Console, Progress

# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def run_report(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from saliency_callback.output import report

    console = Console(err, args.quiet)
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
