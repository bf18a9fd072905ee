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
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from saliency_callback.output.render import BACKGROUND_RGB, caption_height, draw_caption_strip
from saliency_callback.shortcuts.unmeasured import judge

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

PROBES_TAG = "saliency/probes"
ALARM_TEXT_TAG = "saliency/alarm_message"
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


class LogDirError(ValueError):
    """The log dir is missing, empty, or holds no saliency runs."""


class ProgressLike(Protocol):
    """What `write_report` reports progress to (e.g. `commands.progress.Progress`)."""

    def update(self, done: int, detail: str = "") -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[str, int, str], ProgressLike]
"""`(label, total, unit) -> progress`; called once per long piece of work."""


class _NoProgress:
    def update(self, done: int, detail: str = "") -> None:
        return None

    def close(self) -> None:
        return None


def _progress(factory: ProgressFactory | None, label: str, total: int, unit: str) -> ProgressLike:
    return factory(label, total, unit) if factory is not None else _NoProgress()


@dataclass
class SaliencyRun:
    """The saliency summaries of one run directory.

    Attributes:
        name: The run's path relative to the log dir (`"."` for the log dir itself).
        path: The run directory.
        steps: Steps with probe panels, ascending.
        panels: Per step, the PNG bytes of each probe's panel (as written by the callback).
        description: The Markdown description of the `saliency/probes` summary.
        scalars: `saliency/...` scalar tags -> `[(step, value), ...]`, ascending steps.
        alarms: `(step, message)` of each alarm event (`saliency/alarm_message` where the
            alarm fired).
        nonfinite: Steps whose outputs were NaN/inf (`saliency/nonfinite`; no images).
        notes: `(step, message)` of the alarm's other messages (e.g. "could not run").
    """

    name: str
    path: str
    steps: list[int]
    panels: dict[int, list[bytes]]
    description: str = ""
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    alarms: list[tuple[int, str]] = field(default_factory=list)
    nonfinite: list[int] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)

    @property
    def num_probes(self) -> int:
        """Number of probes (the most panels logged at one step)."""
        return max((len(p) for p in self.panels.values()), default=0)

    @property
    def verdict(self) -> dict[str, Any]:
        """The alarm's verdict, as the Saliency tab gives it (`unmeasured.judge`): `state` is
        `"alarm"`, `"clear"`, `"cannot_tell"` (with its `reason`) or `"none"`."""
        scalars = {tag: dict(values) for tag, values in self.scalars.items()}
        return judge(scalars, dict(self.alarms + self.notes), self.num_probes)

    @property
    def has_alarm(self) -> bool:
        """Whether the run was logged with an alarm (its scalars or messages exist)."""
        return self.verdict["state"] != "none"


# --------------------------------------------------------------------------------------------
# Reading.
# --------------------------------------------------------------------------------------------


def _run_dirs(log_dir: str) -> list[str]:
    """Directories under `log_dir` (itself included) that hold event files, sorted."""
    found = []
    for root, dirs, files in os.walk(log_dir):
        dirs.sort()
        if any("tfevents" in f for f in files):
            found.append(root)
    return found


def _tensor_value(event: Any) -> np.ndarray:
    from tensorboard.util import tensor_util

    return np.asarray(tensor_util.make_ndarray(event.tensor_proto))


def _read_run(run_dir: str, name: str) -> SaliencyRun | None:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(
        run_dir,
        size_guidance={ea.TENSORS: 0, ea.IMAGES: 0, ea.SCALARS: 0},
    )
    acc.Reload()
    tags = acc.Tags().get(ea.TENSORS, [])
    if PROBES_TAG not in tags:
        return None
    panels: dict[int, list[bytes]] = {}
    for event in acc.Tensors(PROBES_TAG):
        value = _tensor_value(event)
        panels[int(event.step)] = [bytes(b) for b in value.reshape(-1)[2:]]
    run = SaliencyRun(
        name=name,
        path=run_dir,
        steps=sorted(panels),
        panels=panels,
        description=acc.SummaryMetadata(PROBES_TAG).summary_description,
    )
    for tag in tags:
        if not tag.startswith("saliency/") or tag == PROBES_TAG:
            continue
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin == "scalars":
            values: dict[int, float] = {}
            for event in acc.Tensors(tag):
                values[int(event.step)] = float(_tensor_value(event).reshape(-1)[0])
            run.scalars[tag] = sorted(values.items())
        elif plugin == "text" and tag == ALARM_TEXT_TAG:
            for event in acc.Tensors(tag):
                raw = _tensor_value(event).reshape(-1)
                text = raw[0] if raw.size else b""
                message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
                run.alarms.append((int(event.step), message))
    fired = set(run.verdict["alarm_steps"])
    run.notes = sorted(a for a in run.alarms if a[0] not in fired)
    run.alarms = sorted(a for a in run.alarms if a[0] in fired)
    run.nonfinite = [s for s, v in run.scalars.get("saliency/nonfinite", []) if v > 0]
    return run


def read_saliency_runs(
    log_dir: str,
    *,
    runs: Sequence[str] | None = None,
    progress: ProgressFactory | None = None,
) -> list[SaliencyRun]:
    """Reads the saliency runs of a log dir, with all their steps.

    A saliency run is any directory under `log_dir` (itself included) whose event files hold
    the image tag `saliency/probes`, as written by `SaliencyCallback`.

    Args:
        log_dir: The TensorBoard log dir.
        runs: Only these runs (paths relative to `log_dir`). Defaults to `None` (all).
        progress: Optional progress factory (one item per run directory read).

    Returns:
        The runs, sorted by name.

    Raises:
        LogDirError: If `log_dir` does not exist, holds no event files, holds no saliency run
            ("foreign log dir"), or a requested run is not among them.

    Examples:
        >>> runs = read_saliency_runs("logs")
        >>> [(r.name, len(r.steps), r.num_probes) for r in runs]
        [('saliency', 20, 8)]
    """
    if not os.path.exists(log_dir):
        raise LogDirError(f"log dir not found: {log_dir}")
    if not os.path.isdir(log_dir):
        raise LogDirError(f"expected a log dir, received a file: {log_dir}")
    dirs = _run_dirs(log_dir)
    if not dirs:
        raise LogDirError(f"empty log dir: no TensorBoard event files under {log_dir}")
    names = {d: os.path.relpath(d, log_dir).replace(os.sep, "/") for d in dirs}
    if runs is not None:
        wanted = {r.strip("/") or "." for r in runs}
        dirs = [d for d in dirs if names[d] in wanted]
        missing = wanted - {names[d] for d in dirs}
        if missing:
            raise LogDirError(
                f"no run {sorted(missing)[0]!r} with event files in {log_dir}; runs: "
                f"{', '.join(sorted(names.values()))}"
            )
    bar = _progress(progress, "report: reading", len(dirs), "runs")
    found = []
    for i, run_dir in enumerate(dirs):
        try:
            run = _read_run(run_dir, names[run_dir])
        except Exception as err:  # corrupt or unreadable event files
            raise LogDirError(f"cannot read the event files in {run_dir}: {err}") from None
        if run is not None and run.steps:
            found.append(run)
        bar.update(i + 1)
    bar.close()
    if not found:
        raise LogDirError(
            f"foreign log dir: no saliency run in {log_dir} (no event file holds "
            f"'{PROBES_TAG}'; is it a log dir written by SaliencyCallback?)"
        )
    return sorted(found, key=lambda r: r.name)


def select_steps(steps: Sequence[int], max_steps: int | None) -> list[int]:
    """At most `max_steps` of `steps`, evenly spaced, keeping the first and the last.

    Args:
        steps: Ascending steps.
        max_steps: The most to keep, or `None` for all.

    Returns:
        The selected steps, ascending.
    """
    steps = list(steps)
    if max_steps is None or len(steps) <= max_steps:
        return steps
    if max_steps == 1:
        return [steps[-1]]
    index = np.unique(np.round(np.linspace(0, len(steps) - 1, max_steps)).astype(int))
    return [steps[i] for i in index]


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
    bar = _progress(progress, "report: panels", total, "steps")
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


# --------------------------------------------------------------------------------------------
# SVG charts.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line of an `svg_line_chart`.

    Attributes:
        label: Legend text.
        points: `(x, y)` pairs; NaN values break the line.
        color: CSS colour.
        width: Stroke width in pixels. Defaults to `1.5`.
        dash: SVG `stroke-dasharray`, e.g. `"5 3"`. Defaults to `None` (solid).
        markers: Whether to draw a dot at each point. Defaults to `False`.
    """

    label: str
    points: Sequence[tuple[float, float]]
    color: str
    width: float = 1.5
    dash: str | None = None
    markers: bool = False


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def svg_line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str = "",
    y_range: tuple[float, float] | None = None,
    events: Sequence[tuple[float, str]] = (),
    width: int = 680,
    height: int = 260,
) -> str:
    """Draws line series as an inline SVG chart (no script, no external resources).

    Args:
        series: The lines.
        title: Accessible title of the chart (SVG `<title>`).
        y_label: Label of the y axis. Defaults to `""`.
        y_range: `(low, high)` of the y axis. Defaults to `None`: `(0, 1)` when all values
            are in it, else the data's range.
        events: `(x, label)` vertical markers (e.g. alarm steps), drawn in red.
        width: Width in pixels. Defaults to `680`.
        height: Height in pixels. Defaults to `260`.

    Returns:
        An `<svg>` element as a string.

    Example:
    >>> svg = svg_line_chart([Series("mean", [(0, 0.2), (1, 0.5)], "#000")], title="mass")
    """
    xs = [x for s in series for x, y in s.points if math.isfinite(y)]
    ys = [y for s in series for _, y in s.points if math.isfinite(y)]
    xs += [x for x, _ in events]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    if y_range is None:
        if not ys or (min(ys) >= 0 and max(ys) <= 1):
            y_range = (0.0, 1.0)
        else:
            lo, hi = min(ys), max(ys)
            pad = (hi - lo) * 0.05 or 1.0
            y_range = (lo - pad, hi + pad)
    y_lo, y_hi = y_range
    left, right, top, bottom = 52, 14, 12, 34
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * ph

    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">',
        f"<title>{esc(title)}</title>",
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccc"/>',
    ]
    for t in _nice_ticks(y_lo, y_hi, 5):
        y = sy(t)
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{t:g}</text>'
        )
    x_ticks = [t for t in _nice_ticks(x_lo, x_hi, 8) if float(t).is_integer()]
    for t in x_ticks:
        x = sx(t)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#999"/>'
            f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" class="tick">'
            f"{_fmt(t)}</text>"
        )
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle" '
        'class="axis">step</text>'
    )
    if y_label:
        parts.append(
            f'<text transform="translate(12 {top + ph / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle" class="axis">{esc(y_label)}</text>'
        )
    for x, label in events:
        px = sx(x)
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{top + ph}" stroke="#d62728" '
            f'stroke-width="1.5" stroke-dasharray="2 2"><title>{esc(label)}</title></line>'
        )
    for s in series:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        segment: list[tuple[float, float]] = []
        segments = []
        for x, y in s.points:
            if math.isfinite(y):
                segment.append((x, y))
            elif segment:
                segments.append(segment)
                segment = []
        if segment:
            segments.append(segment)
        for seg in segments:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in seg)
            parts.append(
                f'<polyline fill="none" stroke="{s.color}" stroke-width="{s.width}"{dash} '
                f'points="{coords}"><title>{esc(s.label)}</title></polyline>'
            )
        dots = [pt for seg in segments for pt in seg] if s.markers else []
        dots += [seg[0] for seg in segments if len(seg) == 1 and not s.markers]
        for x, y in dots:
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{max(2.0, s.width)}" '
                f'fill="{s.color}"><title>{esc(s.label)} at step {_fmt(x)}: '
                f"{y:.3g}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: Sequence[Series], events: bool = False) -> str:
    items = []
    for s in series:
        line = "dashed" if s.dash else "solid"
        style = f"border-top: {max(2, round(s.width))}px {line} {s.color}"
        items.append(f'<span><i style="{style}"></i>{html.escape(s.label)}</span>')
    if events:
        items.append('<span><i style="border-top: 2px dotted #d62728"></i>alarm</span>')
    return f'<div class="legend">{"".join(items)}</div>'


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
            + _legend(series, bool(events))
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
            + _legend(series, bool(events))
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
