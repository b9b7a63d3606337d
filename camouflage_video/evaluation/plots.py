"""SVG plots of the evaluation report (histograms, lines), drawn as text: no plotting library, no scripts."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

import numpy as np

_W, _H = 760, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 16, 30, 44


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) < 0.01 or abs(v) >= 10000:
        return f"{v:.0e}"
    return f"{v:g}"


def _axes(
    x0: float, x1: float, y0: float, y1: float, x_label: str, y_label: str, title: str
) -> tuple[list[str], Callable[[float], float], Callable[[float], float]]:
    """The frame, grid, ticks and labels of a plot, and the data-to-pixel mappings of its two axes."""
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0 or 1) * pw

    def sy(y: float) -> float:
        return _TOP + ph - (y - y0) / (y1 - y0 or 1) * ph

    label = html.escape(title)
    out = [
        (
            f'<svg class="plot" viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-label="{label}" font-family="system-ui,sans-serif" font-size="11">'
        ),
        f'<text x="{_LEFT}" y="18" font-size="13" font-weight="600">{html.escape(title)}</text>',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" fill="#fcfcfd" stroke="#ccc"/>',
    ]
    for t in _ticks(y0, y1):
        out.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>'
            f'<text x="{_LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_tick_label(t)}</text>'
        )
    for t in _ticks(x0, x1, 8):
        out.append(
            f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{_TOP + ph}" y2="{_TOP + ph + 4}" stroke="#888"/>'
            f'<text x="{sx(t):.1f}" y="{_TOP + ph + 16}" text-anchor="middle">{_tick_label(t)}</text>'
        )
    out.append(f'<text x="{_LEFT + pw / 2}" y="{_H - 8}" text-anchor="middle">{html.escape(x_label)}</text>')
    out.append(
        f'<text transform="translate(14 {_TOP + ph / 2}) rotate(-90)" text-anchor="middle">'
        f"{html.escape(y_label)}</text>"
    )
    return out, sx, sy


def _legend(labels: Sequence[tuple[str, str]]) -> list[str]:
    out, x = [], _W - _RIGHT
    for label, color in reversed(labels):
        width = 18 + 6.2 * len(label)
        x -= width + 10
        out.append(
            f'<rect x="{x:.1f}" y="9" width="12" height="10" fill="{color}" opacity="0.8"/>'
            f'<text x="{x + 16:.1f}" y="18">{html.escape(label)}</text>'
        )
    return out


def _threshold_line(
    threshold: float | None, *, x: float | None = None, y: float | None = None, text: str | None = None
) -> list[str]:
    """A dashed line at the match threshold: vertical at pixel ``x`` or horizontal at pixel ``y``."""
    if threshold is None or (x is None and y is None):
        return []
    text = html.escape(text) if text is not None else f"match below {threshold:g}"
    if x is not None:
        return [
            (
                f'<line class="threshold" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}" stroke="#333" '
                f'stroke-dasharray="5 4"/><text x="{x + 4:.1f}" y="{_TOP + 12}">{text}</text>'
            )
        ]
    return [
        (
            f'<line class="threshold" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#333" '
            f'stroke-dasharray="5 4"/><text x="{_LEFT + 4}" y="{y - 4:.1f}">{text}</text>'
        )
    ]


def svg_histogram(
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    x_range: tuple[float, float],
    bins: int = 30,
    threshold: float | None = None,
    threshold_text: str | None = None,
    x_label: str = "",
    title: str = "",
) -> str:
    """Overlaid histograms (one translucent bar set per series) as an inline SVG string."""
    x0, x1 = x_range
    edges = np.linspace(x0, x1, bins + 1)
    counts = [
        np.histogram(np.clip(values, x0, x1), edges)[0] if len(values) else np.zeros(bins, int)
        for _, values, _ in series
    ]
    top = max(1, max(int(c.max()) for c in counts))
    out, sx, sy = _axes(x0, x1, 0, top * 1.1, x_label, "faces", title)
    for (label, _, color), count in zip(series, counts, strict=True):
        for i, c in enumerate(count):
            if c:
                x, w = sx(edges[i]), sx(edges[i + 1]) - sx(edges[i])
                out.append(
                    f'<rect class="bar" x="{x + 0.5:.1f}" y="{sy(c):.1f}" width="{max(w - 1, 0.5):.1f}" '
                    f'height="{sy(0) - sy(c):.1f}" fill="{color}" opacity="0.6"><title>{html.escape(label)}: '
                    f"{c} in [{edges[i]:.2f}, {edges[i + 1]:.2f})</title></rect>"
                )
    if threshold is not None and x0 <= threshold <= x1:
        out += _threshold_line(threshold, x=sx(threshold), text=threshold_text)
    out += _legend([(label, color) for label, _, color in series])
    out.append("</svg>")
    return "".join(out)


def svg_lines(
    series: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
    *,
    threshold: float | None = None,
    x_label: str = "",
    y_label: str = "",
    title: str = "",
    y_min: float | None = None,
) -> str:
    """Line plot of several ``(label, xs, ys, color)`` series, with markers, as an inline SVG string."""
    xs_all = [x for _, xs, _, _ in series for x in xs]
    ys_all = [y for _, _, ys, _ in series for y in ys]
    if threshold is not None:
        ys_all.append(threshold)
    x0, x1 = (min(xs_all), max(xs_all)) if xs_all else (0, 1)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    y0 = y_min if y_min is not None else (min(ys_all) if ys_all else 0)
    y1 = max(ys_all) * 1.1 if ys_all and max(ys_all) > y0 else y0 + 1
    out, sx, sy = _axes(x0, x1, y0, y1, x_label, y_label, title)
    if threshold is not None:
        out += _threshold_line(threshold, y=sy(threshold))
    for label, xs, ys, color in series:
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
        out.append(
            f'<polyline class="series" fill="none" stroke="{color}" stroke-width="1.6" points="{points}">'
            f"<title>{html.escape(label)}</title></polyline>"
        )
        if len(xs) <= 400:
            for x, y in zip(xs, ys, strict=True):
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{color}"/>')
    out += _legend([(label, color) for label, _, _, color in series])
    out.append("</svg>")
    return "".join(out)
