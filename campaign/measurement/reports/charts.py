"""Pure: small charts as inline SVG, for the console's pages and the HTML report.

No script, no font or file fetched: the SVG is part of the page, scales to its box
(``viewBox``, width 100 %) and stays readable on a 390 px phone (few, large labels).
Every chart carries a ``<title>`` and ``role="img"`` so a screen reader names it, and
every text is escaped. Three shapes cover the report:

* :func:`bar_chart`: horizontal bars with their values (the funnel);
* :func:`interval_chart`: a point with its interval as error bars, and the zero line
  (uplift with its 95 % interval);
* :func:`line_chart`: one or more series over ordered labels (a model's metric per
  version).

Values are plain floats; ``format_value`` turns them into the labels people read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

Format = Callable[[float], str]

WIDTH = 360  # viewBox units; the SVG is drawn at the width of its box
ROW = 26  # one bar or interval per row
LABEL = 120  # the left column for row labels
PAD = 8
COLORS = ("#44708a", "#c0603a", "#6a8a44", "#8a5a44")
MUTED = "#888888"


def _plain(value: float) -> str:
    return f"{value:,.3g}"


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _svg(title: str, height: float, body: str, description: str = "") -> str:
    text = escape(title)
    desc = f"<desc>{escape(description)}</desc>" if description else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" width="100%" '
            f'style="max-width:{WIDTH * 2}px;font:11px system-ui,sans-serif">'
            f"<title>{text}</title>{desc}"
            f'<text x="{PAD}" y="14" font-weight="bold">{text}</text>{body}</svg>')


def _label(x: float, y: float, text: str, anchor: str = "start", fill: str = "#222") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">'
            f"{escape(text)}</text>")


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], *,
              unit: str = "", format_value: Format = _plain) -> str:
    """One horizontal bar per label, its value written after it (missing: no bar)."""
    top = 24
    finite = _finite(values)
    largest = max([v for v in finite if v > 0], default=1.0)
    span = WIDTH - LABEL - PAD - 56  # room for the value text
    rows = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * ROW
        rows.append(_label(PAD, y + 15, _short(label)))
        if value is None or not math.isfinite(float(value)):
            rows.append(_label(LABEL, y + 15, "n/a", fill=MUTED))
            continue
        length = max(0.0, float(value)) / largest * span
        rows.append(f'<rect class="bar" x="{LABEL}" y="{y + 4}" width="{length:.1f}" '
                    f'height="{ROW - 8}" fill="{COLORS[0]}"/>')
        rows.append(_label(LABEL + length + 4, y + 15, format_value(float(value))))
    height = top + len(labels) * ROW + 18
    axis = _label(WIDTH - PAD, height - 4, unit, "end", MUTED) if unit else ""
    return _svg(title, height, "".join(rows) + axis)


def interval_chart(title: str, labels: Sequence[str], values: Sequence[float | None],
                   lows: Sequence[float | None], highs: Sequence[float | None], *,
                   unit: str = "", format_value: Format = _plain) -> str:
    """One point per label with its interval as an error bar, and a line at zero; a
    point whose interval lies above zero is drawn green, else grey."""
    top = 24
    finite = _finite([*values, *lows, *highs, 0.0])
    low_end, high_end = min(finite), max(finite)
    if high_end - low_end < 1e-12:
        low_end, high_end = low_end - 1.0, high_end + 1.0
    left, right = LABEL, WIDTH - PAD - 8

    def x(value: float) -> float:
        return left + (value - low_end) / (high_end - low_end) * (right - left)

    height = top + len(labels) * ROW + 30
    zero = (f'<line class="zero" x1="{x(0):.1f}" y1="{top}" x2="{x(0):.1f}" '
            f'y2="{height - 26}" stroke="#c00" stroke-width="1"/>')
    rows = []
    for i, (label, value, low, high) in enumerate(zip(labels, values, lows, highs,
                                                      strict=True)):
        y = top + i * ROW + ROW / 2
        rows.append(_label(PAD, y + 4, _short(label)))
        if value is None or not math.isfinite(float(value)):
            rows.append(_label(left, y + 4, "n/a", fill=MUTED))
            continue
        has_interval = low is not None and high is not None and math.isfinite(
            float(low)) and math.isfinite(float(high))
        color = "#1a7f37" if has_interval and float(low) > 0 else MUTED  # type: ignore[arg-type]
        if has_interval:
            a, b = x(float(low)), x(float(high))  # type: ignore[arg-type]
            rows.append(f'<path class="interval" d="M{a:.1f} {y:.1f}H{b:.1f}M{a:.1f} '
                        f'{y - 5:.1f}v10M{b:.1f} {y - 5:.1f}v10" stroke="{color}" '
                        f'stroke-width="1.5" fill="none"/>')
        rows.append(f'<circle class="point" cx="{x(float(value)):.1f}" cy="{y:.1f}" r="4" '
                    f'fill="{color}"><title>{escape(label)}: '
                    f"{escape(format_value(float(value)))}</title></circle>")
    axis = "".join([
        _label(left, height - 12, format_value(low_end), "start", MUTED),
        _label(right, height - 12, format_value(high_end), "end", MUTED),
        _label(WIDTH - PAD, height - 1, unit, "end", MUTED) if unit else "",
    ])
    return _svg(title, height, zero + "".join(rows) + axis)


def line_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]],
               *, unit: str = "", format_value: Format = _plain) -> str:
    """One line with a point per label for every series (a legend when several);
    a missing value breaks its line."""
    top, bottom, left, right = 24 + 16 * len(series), 34, 44, WIDTH - PAD
    height = top + 140 + bottom
    finite = _finite([v for values in series.values() for v in values])
    low_end, high_end = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if high_end - low_end < 1e-12:
        low_end, high_end = low_end - 0.05, high_end + 0.05
    plot_bottom = height - bottom
    step = (right - left) / max(1, len(labels) - 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        x = left + (i * step if len(labels) > 1 else (right - left) / 2)
        return x, plot_bottom - (value - low_end) / (high_end - low_end) * (plot_bottom - top)

    parts = [f'<line x1="{left}" y1="{plot_bottom}" x2="{right}" y2="{plot_bottom}" '
             f'stroke="{MUTED}"/>',
             _label(left - 4, top + 4, format_value(high_end), "end", MUTED),
             _label(left - 4, plot_bottom, format_value(low_end), "end", MUTED)]
    for n, (name, values) in enumerate(series.items()):
        color = COLORS[n % len(COLORS)]
        if len(series) > 1:
            parts.append(f'<rect x="{PAD}" y="{20 + 16 * n}" width="10" height="10" '
                         f'fill="{color}"/>' + _label(PAD + 14, 29 + 16 * n, name))
        path, pen = [], "M"
        for i, value in enumerate(values):
            if value is None or not math.isfinite(float(value)):
                pen = "M"
                continue
            x, y = xy(i, float(value))
            path.append(f"{pen}{x:.1f} {y:.1f}")
            pen = "L"
            parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" '
                         f'fill="{color}"><title>{escape(name)}, {escape(labels[i])}: '
                         f"{escape(format_value(float(value)))}</title></circle>")
        if path:
            parts.append(f'<path class="line" d="{"".join(path)}" stroke="{color}" '
                         f'stroke-width="2" fill="none"/>')
    # Label the first and last positions only when crowded: a phone has no room for more.
    every = 1 if len(labels) <= 6 else math.ceil(len(labels) / 6)
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            x, _ = xy(i, low_end)
            parts.append(_label(x, plot_bottom + 14, _short(label, 12), "middle"))
    if unit:
        parts.append(_label(WIDTH - PAD, height - 2, unit, "end", MUTED))
    return _svg(title, height, "".join(parts))
