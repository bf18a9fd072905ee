"""SVG line charts for the static report (`report`): scalars over steps, with alarm events."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

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


def legend(series: Sequence[Series], events: bool = False) -> str:
    items = []
    for s in series:
        line = "dashed" if s.dash else "solid"
        style = f"border-top: {max(2, round(s.width))}px {line} {s.color}"
        items.append(f'<span><i style="{style}"></i>{html.escape(s.label)}</span>')
    if events:
        items.append('<span><i style="border-top: 2px dotted #d62728"></i>alarm</span>')
    return f'<div class="legend">{"".join(items)}</div>'
