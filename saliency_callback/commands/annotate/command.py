"""`saliency-callback annotate`: the subcommand's options, checks and server loop.

`add_parser` registers the subcommand with the main parser (`saliency_callback.commands.cli`), and
`run` checks the inputs, starts the server, prints the URL, opens the browser when there is one
and waits until the page saves and quits (or Ctrl-C). Every problem is one line on stderr.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import webbrowser
from typing import IO, Any

from saliency_callback.commands._common import PROG, CLIError, one_line, parse_size
from saliency_callback.commands.annotate.loading import start_probes
from saliency_callback.commands.annotate.server import make_server
from saliency_callback.commands.annotate.session import Session
from saliency_callback.data.loading import LoadError, read_class_names
from saliency_callback.data.probe_file import ProbeFileError, autosave_path, read_autosave

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Draw and check the probes' masks in a local page, and save them as one probe file.

Starts a server on 127.0.0.1, prints its URL and opens the browser (unless --no-browser). The
page shows every probe, pre-filled with an automatic proposal where one exists: drag a box, or
paint with the brush and the eraser; set the labels; skip probes to leave out. Every change is
autosaved next to --out (NAME.autosave.npz), so a closed tab loses nothing: run the same
command again to continue. 'Save & quit' writes --out (atomically) and stops the server.

Pass the file to the callback with SaliencyCallback.from_probe_file("probes.npz", ...), or to
'saliency-callback explain MODEL probes.npz'.
"""

_EPILOG = f"""\
examples:
  {PROG} annotate photos/ --out probes.npz --size 224x224 --class-names cat,dog
  {PROG} annotate a.jpg b.jpg --out probes.npz --labels labels.csv:species
  {PROG} annotate probes.npz          # edit a probe file again
"""


def add_parser(sub: Any, formatter_class: type[argparse.HelpFormatter]) -> None:
    """Adds the `annotate` subcommand to the main parser's subparsers."""
    an = sub.add_parser(
        "annotate",
        help="draw and check the probes' masks in a local page",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=formatter_class,
    )
    an.add_argument(
        "inputs",
        metavar="IMAGES",
        nargs="+",
        help="image files, directories of images, or one probe file (.npz) to edit",
    )
    an.add_argument(
        "--out",
        "-o",
        metavar="FILE",
        help="the probe file to write (.npz); default: the probe file being edited",
    )
    an.add_argument(
        "--labels",
        metavar="CSV[:COLUMN]",
        help="labels: a CSV with one class (index or name) per image, matched by a 'file' column "
        "or in order; COLUMN picks a column by its header",
    )
    an.add_argument(
        "--class-names",
        metavar="A,B,C",
        help="comma-separated class names (or a file with one name per line)",
    )
    an.add_argument(
        "--size",
        type=parse_size,
        metavar="HxW",
        help="resize every image to HxW, the model's input size (required for mixed sizes)",
    )
    an.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    an.add_argument("--no-browser", action="store_true", help="only print the URL")
    an.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing --out that is not the file being edited, and discard an "
        "autosave made for other images",
    )
    an.set_defaults(handler=run)


def _out_path(args: argparse.Namespace) -> str:
    if args.out is not None:
        if not args.out.endswith(".npz"):
            raise CLIError(f"--out {args.out!r}: expected a .npz file", 2)
        return str(args.out)
    if len(args.inputs) == 1 and args.inputs[0].endswith(".npz"):
        return str(args.inputs[0])
    raise CLIError("--out FILE.npz is required (where to save the probes)", 2)


def _check_out(out: str, edit_path: str | None, force: bool) -> None:
    if os.path.isdir(out):
        raise CLIError(f"--out {out!r} is a directory, expected a .npz file")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise CLIError(f"--out {out!r}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"--out {out!r}: cannot write to {parent}")
    editing = edit_path is not None and os.path.exists(out) and os.path.samefile(out, edit_path)
    if os.path.exists(out) and not editing and not force:
        raise CLIError(
            f"--out {out} already exists; to edit it run '{PROG} annotate {out}', or pass "
            "--force to replace it"
        )


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Runs `annotate` until the page saves and quits, or Ctrl-C."""
    out_path = _out_path(args)
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port expected 0..65535, received {args.port}", 2)
    try:
        class_names = read_class_names(args.class_names)
        start = start_probes(args.inputs, args.size, args.labels, class_names)
    except LoadError as error:
        raise CLIError(str(error), 2 if error.usage else 1) from None
    _check_out(out_path, start.edit_path, args.force)
    notes = list(start.notes)
    probes = start.probes
    sidecar = autosave_path(out_path)
    try:
        resumed = read_autosave(sidecar, probes.images)
    except ProbeFileError as error:
        if not args.force:
            raise CLIError(str(error)) from None
        resumed = None
        notes.append(f"discarded {sidecar} (--force)")
    if resumed is not None:
        probes = resumed
        notes.append(f"resumed the unsaved work of {sidecar}")
    session = Session(probes, out_path, start.fallback)
    try:
        server = make_server(session, args.port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise CLIError(
                f"port {args.port} on 127.0.0.1 is in use; pick another --port, or leave it out "
                "for a free one"
            ) from None
        raise CLIError(f"cannot listen on 127.0.0.1:{args.port}: {one_line(error)}") from None
    for note in notes:
        err.write(f"{PROG}: note: {note}\n")
    out.write(f"{PROG} annotate: {len(probes)} probes -> {out_path}\n")
    out.write(f"open {server.url}\n")
    out.write("(Save & quit in the page, or Ctrl-C here: the work so far stays autosaved)\n")
    out.flush()
    err.flush()
    if not args.no_browser:
        _open_browser(server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        err.write(f"{PROG}: stopped; {_outcome(session, sidecar)}\n")
        return 130
    finally:
        server.server_close()
    if os.path.exists(sidecar) or not session.saved.is_set():
        err.write(f"{PROG}: note: quit; {_outcome(session, sidecar)}\n")
    else:
        out.write(f"saved {session.probes.describe(out_path)}\n")
    out.flush()
    return 0


def _outcome(session: Session, sidecar: str) -> str:
    """What became of the work, for the last line."""
    if os.path.exists(sidecar):
        return f"unsaved work is kept in {sidecar}: run the same command to continue"
    if session.saved.is_set():
        return f"everything is saved in {session.out}"
    return "nothing was changed or saved"


def _open_browser(url: str) -> None:
    """Opens `url` when a browser is available (never fails)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return
    try:
        webbrowser.open(url, new=2)
    except Exception:  # no browser: the URL is printed
        return
