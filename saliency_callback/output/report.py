"""A static timeline report of the saliency runs of a TensorBoard log dir.

`read_saliency_runs` reads every run written by `SaliencyCallback` (any directory whose event
files hold `saliency/probes`) with TensorBoard's own reader, keeping all steps (TensorBoard
keeps 10 images per tag by default). `render_html` turns them into one self-contained HTML
file (images as base64 PNG data URIs, inline CSS and SVG, no script, no server) and
`render_timeline_png` into one PNG; `write_report` writes either or both, each file through a
temporary file and a rename.

Everything here is TensorBoard, NumPy and Pillow; TensorFlow is not needed.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from saliency_callback.output.captions import draw_caption_strip
from saliency_callback.output.charts import Series as Series
from saliency_callback.output.charts import legend
from saliency_callback.output.charts import svg_line_chart as svg_line_chart
from saliency_callback.output.render import (
    BACKGROUND_RGB,
    caption_height,
)
from saliency_callback.output.runs import LogDirError as LogDirError
from saliency_callback.output.runs import ProgressFactory as ProgressFactory
from saliency_callback.output.runs import SaliencyRun as SaliencyRun
from saliency_callback.output.runs import read_saliency_runs as read_saliency_runs
from saliency_callback.output.runs import select_steps as select_steps
from saliency_callback.output.runs import start_progress

__all__ = [
    "LogDirError",
    "ProgressFactory",
    "SaliencyRun",
    "Series",
    "read_saliency_runs",
    "render_html",
    "render_timeline_png",
    "select_steps",
    "svg_line_chart",
    "write_report",
]

_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


# --------------------------------------------------------------------------------------------
# Cells.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    png: bytes
    width: int
    height: int


def _cell(png: bytes, max_width: int) -> _Cell:
    """The panel as it is, or downscaled to `max_width` (re-encoded as PNG)."""
    with Image.open(io.BytesIO(png)) as img:
        w, h = img.size
        if w <= max_width:
            return _Cell(png, w, h)
        nh = max(1, round(h * max_width / w))
        small = img.convert("RGB").resize((max_width, nh), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return _Cell(buffer.getvalue(), max_width, nh)


def _cells(
    runs: Sequence[SaliencyRun],
    max_steps: int | None,
    cell_width: int,
    progress: ProgressFactory | None,
) -> list[tuple[list[int], dict[tuple[int, int], _Cell]]]:
    """The selected steps and the cells `(step, probe) -> _Cell` of each run."""
    selected = [select_steps(r.steps, max_steps) for r in runs]
    total = sum(len(s) for s in selected)
    bar = start_progress(progress, "report: panels", total, "steps")
    done = 0
    out = []
    for run, steps in zip(runs, selected, strict=True):
        cells: dict[tuple[int, int], _Cell] = {}
        for step in steps:
            for probe, png in enumerate(run.panels[step]):
                cells[(step, probe)] = _cell(png, cell_width)
            done += 1
            bar.update(done, run.name)
        out.append((steps, cells))
    bar.close()
    return out


def _probe_tags(run: SaliencyRun, prefix: str) -> list[tuple[str, str]]:
    pattern = re.compile(re.escape(prefix) + r"/probe_(\d+)$")
    found = []
    for tag in run.scalars:
        m = pattern.match(tag)
        if m:
            found.append((m.group(1), tag))
    return sorted(found, key=lambda t: int(t[0]))


def _curves(run: SaliencyRun, prefix: str, extra: Sequence[tuple[str, str, str]]) -> list[Series]:
    series = []
    for i, (index, tag) in enumerate(_probe_tags(run, prefix)):
        series.append(
            Series(f"probe {index}", run.scalars[tag], _PALETTE[i % len(_PALETTE)], width=1.0)
        )
    series.append(Series("mean", run.scalars[prefix], "#111", width=2.5, markers=True))
    for tag, label, dash in extra:
        if tag in run.scalars:
            series.append(Series(label, run.scalars[tag], "#555", width=1.5, dash=dash))
    return series


# --------------------------------------------------------------------------------------------
# HTML.
# --------------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 6px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta, .description { color: #555; max-width: 70em; }
code { background: #eee; padding: 0 3px; border-radius: 3px; }
nav a { margin-right: 12px; }
.timeline-wrap { overflow-x: auto; border: 1px solid #ddd; background: #282828; }
table.timeline { border-collapse: collapse; }
table.timeline th { color: #eee; font-weight: 600; padding: 4px 8px; white-space: nowrap;
                    position: sticky; background: #282828; }
table.timeline thead th { top: 0; }
table.timeline tbody th { left: 0; text-align: right; vertical-align: top; }
table.timeline td { padding: 3px; vertical-align: top; }
table.timeline img { display: block; image-rendering: pixelated; }
td.alarm-step { outline: 2px solid #d62728; outline-offset: -2px; }
th.alarm-step { color: #ff8a80 !important; }
ul.alarms li { margin: 4px 0; }
ul.alarms .step, ul.warnings .step { font-weight: 600; color: #b71c1c; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; margin: 4px 0 12px; }
.legend i { display: inline-block; width: 18px; margin: 0 5px 3px 0; vertical-align: middle; }
svg.chart { background: #fff; border: 1px solid #ddd; }
svg.chart .tick { font-size: 11px; fill: #555; }
svg.chart .axis { font-size: 12px; fill: #333; }
.none { color: #2e7d32; }
.cannot-tell { color: #9a6700; }
"""


def _markdown_inline(text: str) -> str:
    """Escapes text and renders the callback description's `code` and **bold**."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    return "<br>".join(p for p in out.split("\n") if p.strip())


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _step_label(step: int) -> str:
    return "before training" if step < 0 else f"step {step}"


def _run_section(
    index: int, run: SaliencyRun, steps: list[int], cells: dict[tuple[int, int], _Cell]
) -> str:
    esc = html.escape
    alarm_steps = {s for s, _ in run.alarms}
    out = [f'<section class="run" id="run-{index}">']
    out.append(f"<h2>Run <code>{esc(run.name)}</code></h2>")
    shown = (
        f"all {len(steps)} logged steps"
        if len(steps) == len(run.steps)
        else f"{len(steps)} of {len(run.steps)} logged steps"
    )
    out.append(
        f'<p class="meta">{run.num_probes} probes, {shown} '
        f"({_step_label(run.steps[0])} to {_step_label(run.steps[-1])}); step <i>e</i> is the "
        f"end of epoch <i>e</i> (counting from 0). Directory: <code>{esc(run.path)}</code></p>"
    )
    if run.description:
        out.append(f'<p class="description">{_markdown_inline(run.description)}</p>')

    out.append("<h3>Alarms</h3>")
    verdict = run.verdict
    if run.alarms:
        out.append('<ul class="alarms">')
        for step, message in run.alarms:
            out.append(
                f'<li class="alarm"><span class="step">{esc(_step_label(step))}:</span> '
                f"{esc(message)}</li>"
            )
        out.append("</ul>")
    elif verdict["state"] == "cannot_tell":  # never "all clear"
        out.append(f'<p class="cannot-tell">{esc(verdict["reason"])}</p>')
    elif run.has_alarm:
        out.append('<p class="none">The alarm never fired.</p>')
    else:
        out.append('<p class="meta">No alarm was configured for this run.</p>')
    harm = verdict["harm"]
    if harm is not None and harm["cannot_tell"] and verdict["state"] != "cannot_tell":
        out.append(f'<p class="cannot-tell">{esc(harm["sentence"])}</p>')
    if run.nonfinite:
        listed = ", ".join(str(s) for s in run.nonfinite)
        out.append(
            f'<ul class="warnings"><li><span class="step">steps {esc(listed)}:</span> the '
            "model's outputs or gradients were NaN/inf; no images were logged.</li></ul>"
        )

    events = [(float(s), f"alarm at step {s}") for s in sorted(alarm_steps)]
    if "saliency/mass_in_mask" in run.scalars:
        series = _curves(
            run,
            "saliency/mass_in_mask",
            [("saliency/mass_in_mask_chance", "chance (mask area)", "6 4")],
        )
        out.append("<h3>Mass in mask</h3>")
        out.append(
            '<p class="meta">Fraction of the saliency mass inside each probe\'s object mask; '
            "higher is better, chance is what a map ignoring the object gets.</p>"
        )
        out.append(
            '<figure class="curve" data-kind="mass_in_mask">'
            + svg_line_chart(
                series,
                title=f"Mass in mask, run {run.name}",
                y_label="mass in mask",
                events=events,
            )
            + legend(series, bool(events))
            + "</figure>"
        )
    if "saliency/confidence" in run.scalars:
        extra = [("saliency/probe_accuracy", "probe accuracy", "2 3")]
        series = _curves(run, "saliency/confidence", extra)
        out.append("<h3>Confidence</h3>")
        out.append(
            '<figure class="curve" data-kind="confidence">'
            + svg_line_chart(
                series, title=f"Confidence, run {run.name}", y_label="confidence", events=events
            )
            + legend(series, bool(events))
            + "</figure>"
        )

    out.append("<h3>Timeline</h3>")
    out.append(
        '<p class="meta">Rows: probes; columns: logged steps. Each panel: image | saliency | '
        "overlay, with the probe's caption.</p>"
    )
    out.append('<div class="timeline-wrap"><table class="timeline"><thead><tr><th></th>')
    for step in steps:
        cls = ' class="alarm-step"' if step in alarm_steps else ""
        out.append(f'<th scope="col"{cls}>{esc(_step_label(step))}</th>')
    out.append("</tr></thead><tbody>")
    for probe in range(run.num_probes):
        out.append(f'<tr><th scope="row">probe {probe}</th>')
        for step in steps:
            cls = "cell alarm-step" if step in alarm_steps else "cell"
            cell = cells.get((step, probe))
            attrs = f'class="{cls}" data-step="{step}" data-probe="{probe}"'
            if cell is None:
                out.append(f"<td {attrs}></td>")
                continue
            out.append(
                f'<td {attrs}><img src="{_data_uri(cell.png)}" width="{cell.width}" '
                f'height="{cell.height}" alt="probe {probe}, {esc(_step_label(step))}" '
                f'loading="eager"></td>'
            )
        out.append("</tr>")
    out.append("</tbody></table></div></section>")
    return "\n".join(out)


def render_html(
    runs: Sequence[SaliencyRun],
    *,
    log_dir: str = "",
    title: str | None = None,
    max_steps: int | None = None,
    cell_width: int = 330,
    progress: ProgressFactory | None = None,
    _cells_cache: list[tuple[list[int], dict[tuple[int, int], _Cell]]] | None = None,
) -> str:
    """Renders the runs as one self-contained HTML page.

    Args:
        runs: From `read_saliency_runs`.
        log_dir: The log dir, shown in the header. Defaults to `""`.
        title: Page title. Defaults to `None` ("Saliency report: LOG_DIR").
        max_steps: At most this many timeline columns per run (see `select_steps`).
            Defaults to `None` (all).
        cell_width: Panels wider than this are downscaled. Defaults to `330`.
        progress: Optional progress factory.

    Returns:
        The HTML text: images as base64 PNG data URIs, inline CSS and SVG, no script.
    """
    cells = _cells_cache or _cells(runs, max_steps, cell_width, progress)
    page_title = title or f"Saliency report: {log_dir or 'log dir'}"
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    esc = html.escape
    total_alarms = sum(len(r.alarms) for r in runs)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(page_title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(page_title)}</h1>",
        f'<p class="meta">Log dir <code>{esc(log_dir)}</code>: {len(runs)} saliency '
        f"run{'s' if len(runs) != 1 else ''}, {total_alarms} alarm event"
        f"{'s' if total_alarms != 1 else ''}. Generated {esc(now)} by saliency_callback.</p>",
    ]
    if len(runs) > 1:
        links = "".join(f'<a href="#run-{i}">{esc(r.name)}</a>' for i, r in enumerate(runs))
        parts.append(f"<nav>Runs: {links}</nav>")
    for i, (run, (steps, run_cells)) in enumerate(zip(runs, cells, strict=True)):
        parts.append(_run_section(i, run, steps, run_cells))
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# PNG.
# --------------------------------------------------------------------------------------------


def _strip(width: int, text: str) -> Image.Image:
    return Image.fromarray(draw_caption_strip(max(1, width), text))


def render_timeline_png(
    runs: Sequence[SaliencyRun],
    *,
    max_steps: int | None = None,
    cell_width: int = 330,
    progress: ProgressFactory | None = None,
    _cells_cache: list[tuple[list[int], dict[tuple[int, int], _Cell]]] | None = None,
) -> np.ndarray:
    """Renders the timeline grids of the runs into one image, runs stacked vertically.

    Each run: a title line, a header row of steps, then one row per probe (its panels along
    the steps). Alarm steps are marked "(alarm)" in the header.

    Args:
        runs: From `read_saliency_runs`.
        max_steps: At most this many columns per run. Defaults to `None` (all).
        cell_width: Panels wider than this are downscaled. Defaults to `330`.
        progress: Optional progress factory.

    Returns:
        A `uint8` array `(height, width, 3)`.
    """
    cells = _cells_cache or _cells(runs, max_steps, cell_width, progress)
    pad, label_w = 4, 72
    strip_h = caption_height()
    blocks = []
    for run, (steps, run_cells) in zip(runs, cells, strict=True):
        cw = max((c.width for c in run_cells.values()), default=1)
        ch = max((c.height for c in run_cells.values()), default=1)
        n_probes = run.num_probes
        width = label_w + len(steps) * (cw + pad) + pad
        height = 2 * strip_h + n_probes * (ch + pad) + 2 * pad
        block = Image.new("RGB", (width, height), BACKGROUND_RGB)
        n_alarms = len(run.alarms)
        head = f"run {run.name}: {n_probes} probes x {len(steps)} steps"
        if n_alarms:
            head += f", {n_alarms} alarm{'s' if n_alarms != 1 else ''}"
        block.paste(_strip(width, head), (0, 0))
        alarm_steps = {s for s, _ in run.alarms}
        y0 = strip_h + pad
        for j, step in enumerate(steps):
            label = _step_label(step) + (" (alarm)" if step in alarm_steps else "")
            block.paste(_strip(cw, label), (label_w + j * (cw + pad), y0))
        y0 += strip_h
        for probe in range(n_probes):
            y = y0 + probe * (ch + pad)
            block.paste(_strip(label_w - pad, f"probe {probe}"), (0, y))
            for j, step in enumerate(steps):
                cell = run_cells.get((step, probe))
                if cell is None:
                    continue
                with Image.open(io.BytesIO(cell.png)) as img:
                    block.paste(img.convert("RGB"), (label_w + j * (cw + pad), y))
        blocks.append(block)
    width = max(b.width for b in blocks)
    height = sum(b.height for b in blocks) + pad * (len(blocks) - 1)
    canvas = Image.new("RGB", (width, height), BACKGROUND_RGB)
    y = 0
    for b in blocks:
        canvas.paste(b, (0, y))
        y += b.height + pad
    return np.asarray(canvas, dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Writing.
# --------------------------------------------------------------------------------------------


def _write_atomic(path: str, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file and a rename (never half-written).

    Raises:
        OSError: If the directory cannot be written.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".saliency-report-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp made it private
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(
    runs: Sequence[SaliencyRun],
    outputs: Sequence[str],
    *,
    log_dir: str = "",
    title: str | None = None,
    max_steps: int | None = None,
    cell_width: int = 330,
    progress: ProgressFactory | None = None,
) -> None:
    """Writes the report files: `.html` (see `render_html`) and/or `.png` (the timeline).

    Every file is rendered first, then each is written through a temporary file and a rename
    (missing parent directories are created then), so a failure never leaves a half-written
    report.

    Args:
        runs: From `read_saliency_runs`.
        outputs: Paths ending in `.html`/`.htm` or `.png`.
        log_dir: The log dir, shown in the HTML header. Defaults to `""`.
        title: HTML title. Defaults to `None`.
        max_steps: At most this many timeline columns per run. Defaults to `None` (all).
        cell_width: Panels wider than this are downscaled. Defaults to `330`.
        progress: Optional progress factory.

    Raises:
        ValueError: For an output that is neither `.html` nor `.png`, or no runs.
        OSError: If a file cannot be written.

    Example:
    >>> write_report(read_saliency_runs("logs"), ["report.html", "report.png"], log_dir="logs")
    """
    if not runs:
        raise ValueError("expected at least one saliency run, received none")
    kinds = []
    for path in outputs:
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        if suffix not in (".html", ".htm", ".png"):
            raise ValueError(f"expected an output ending in .html or .png, received {path!r}")
        kinds.append("png" if suffix == ".png" else "html")
    cells = _cells(runs, max_steps, cell_width, progress)
    rendered: list[tuple[str, bytes]] = []
    for path, kind in zip(outputs, kinds, strict=True):
        if kind == "html":
            text = render_html(
                runs,
                log_dir=log_dir,
                title=title,
                max_steps=max_steps,
                cell_width=cell_width,
                _cells_cache=cells,
            )
            rendered.append((path, text.encode("utf-8")))
        else:
            image = render_timeline_png(
                runs, max_steps=max_steps, cell_width=cell_width, _cells_cache=cells
            )
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            rendered.append((path, buffer.getvalue()))
    for path, data in rendered:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        _write_atomic(os.fspath(path), data)
