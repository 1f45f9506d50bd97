"""The report's figures as inline SVG: heatmaps (confusion, context flow) and bar charts with intervals.

Hand-written SVG rather than plotly (whose inline plotly.js adds about 4.6 MB
to every page) or matplotlib (a second renderer to keep in step): each figure
is a few kilobytes of markup, draws without a script, and is as offline as
the page's text.  Every figure states its scale: heatmaps print each value in
its cell and name the range of the colour scale; bars print their value and
draw their confidence interval as a whisker.

Example::

    svg = heatmap(conf / conf.sum(1, keepdims=True), names, names, title="confusion (row = true class)")
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

FONT = "font-family:system-ui,sans-serif"
SERIES_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    t = min(1.0, max(0.0, t))
    return "#%02x%02x%02x" % tuple(round(x + (y - x) * t) for x, y in zip(a, b))


WHITE, BLUE, RED = (255, 255, 255), (33, 102, 172), (178, 24, 43)


def _colour(v: float, lo: float, hi: float, diverging: bool) -> str:
    if not math.isfinite(v):
        return "#eeeeee"
    if diverging:                                    # 0 is white; the larger |end| saturates
        m = max(abs(lo), abs(hi)) or 1.0
        return _mix(WHITE, BLUE if v >= 0 else RED, abs(v) / m)
    return _mix(WHITE, BLUE, (v - lo) / ((hi - lo) or 1.0))


def _text_colour(v: float, lo: float, hi: float, diverging: bool) -> str:
    if not math.isfinite(v):
        return "#666"
    t = abs(v) / (max(abs(lo), abs(hi)) or 1.0) if diverging else (v - lo) / ((hi - lo) or 1.0)
    return "#fff" if t > 0.6 else "#222"


def heatmap(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str, fmt: str = "{:.2f}",
            vmin: float | None = None, vmax: float | None = None, diverging: bool = False,
            row_axis: str = "true class", col_axis: str = "", cell: int = 36) -> str:
    """R x C values -> an SVG heatmap, every value printed in its cell (NaN: grey, '-').

    The colour scale runs from ``vmin`` to ``vmax`` (default: the data's range; ``diverging``: white at 0,
    blue above, red below) and is stated under the title."""
    m = np.asarray(matrix, np.float64)
    finite = m[np.isfinite(m)]
    lo = float(finite.min()) if vmin is None and finite.size else (vmin or 0.0)
    hi = float(finite.max()) if vmax is None and finite.size else (vmax if vmax is not None else 1.0)
    left = 14 + 7 * max((len(str(r)) for r in rows), default=4)
    top = 46 + 6 * max((len(str(c)) for c in cols), default=4)
    scale = (f"colour: white at 0, blue up to +{max(abs(lo), abs(hi)):.2f}, red down to -{max(abs(lo), abs(hi)):.2f}"
             if diverging else f"colour: white at {lo:.2f}, blue at {hi:.2f}")
    axes = f"rows: {row_axis}" + (f"; columns: {col_axis}" if col_axis else "")
    w = max(left + cell * len(cols) + 10, round(7.4 * len(title)) + 8, round(6.2 * len(axes)) + 8)
    h = top + cell * len(rows) + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="fig" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="{_esc(title)}" style="{FONT}">',
           f'<text x="4" y="15" font-size="13" font-weight="600">{_esc(title)}</text>',
           f'<text x="4" y="31" font-size="11" fill="#555">{_esc(scale)}</text>']
    for j, c in enumerate(cols):
        x = left + cell * j + cell / 2
        out.append(f'<text transform="translate({x:.0f},{top - 5}) rotate(-45)" font-size="11">{_esc(c)}</text>')
    for i, r in enumerate(rows):
        y = top + cell * i
        out.append(f'<text x="{left - 5}" y="{y + cell / 2 + 4:.0f}" font-size="11" text-anchor="end">{_esc(r)}</text>')
        for j in range(len(cols)):
            v = m[i, j]
            x = left + cell * j
            label = "-" if not math.isfinite(v) else fmt.format(v)
            out.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_colour(v, lo, hi, diverging)}" '
                       f'stroke="#fff"><title>{_esc(r)} / {_esc(cols[j])}: {_esc(label)}</title></rect>'
                       f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" font-size="10" text-anchor="middle" '
                       f'fill="{_text_colour(v, lo, hi, diverging)}">{_esc(label)}</text>')
    y = top + cell * len(rows) + 16
    out.append(f'<text x="4" y="{y}" font-size="11" fill="#555">{_esc(axes)}</text></svg>')
    return "".join(out)


def bars(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float | None], Sequence[Sequence[float] | None]]],
         *, title: str, y_label: str, y_range: tuple[float, float] = (0.0, 1.0),
         reference: tuple[float, str] | None = None, width: int = 640, height: int = 260) -> str:
    """Grouped bars: ``series`` = [(name, one value per group, one [lo, hi] or None per group)].

    Each bar prints its value; a whisker draws its interval; ``reference`` = (y, label) draws a dashed
    line (a chance level or the model's own value)."""
    lo, hi = y_range
    left, right, top, bottom = 48, 10, 46, 62
    pw, ph = width - left - right, height - top - bottom
    y_of = lambda v: top + ph * (1 - (min(max(v, lo), hi) - lo) / ((hi - lo) or 1.0))  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="fig" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title)}" style="{FONT}">',
           f'<text x="4" y="15" font-size="13" font-weight="600">{_esc(title)}</text>']
    for t in np.linspace(lo, hi, 5):
        y = y_of(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{t:.2f}</text>')
    out.append(f'<text transform="translate(12,{top + ph / 2:.0f}) rotate(-90)" font-size="11" '
               f'text-anchor="middle">{_esc(y_label)}</text>')
    gw = pw / max(len(groups), 1)
    bw = min(44.0, 0.8 * gw / max(len(series), 1))
    for g, group in enumerate(groups):
        x0 = left + gw * g + (gw - bw * len(series)) / 2
        for s, (name, values, cis) in enumerate(series):
            v = values[g]
            x = x0 + bw * s
            colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
            if v is None or not math.isfinite(v):
                out.append(f'<text x="{x + bw / 2:.1f}" y="{top + ph - 4}" font-size="10" text-anchor="middle">-</text>')
                continue
            y = y_of(v)
            ci = cis[g] if cis else None
            tip = f"{name}, {group}: {v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            out.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{top + ph - y:.1f}" '
                       f'fill="{colour}"><title>{_esc(tip)}</title></rect>')
            label_y = y - 4
            if ci:
                y1, y2 = y_of(ci[0]), y_of(ci[1])
                xm = x + bw / 2
                out.append(f'<path d="M{xm:.1f},{y1:.1f}V{y2:.1f}M{xm - 4:.1f},{y1:.1f}h8M{xm - 4:.1f},{y2:.1f}h8" '
                           f'stroke="#222" fill="none"/>')
                label_y = min(label_y, y2 - 4)
            out.append(f'<text x="{x + bw / 2:.1f}" y="{label_y:.1f}" font-size="10" text-anchor="middle" '
                       f'stroke="#fff" stroke-width="3" paint-order="stroke">{v:.3f}</text>')
        out.append(f'<text x="{left + gw * g + gw / 2:.1f}" y="{top + ph + 15}" font-size="11" '
                   f'text-anchor="middle">{_esc(group)}</text>')
    if reference is not None:
        y = y_of(reference[0])
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#222" stroke-dasharray="5,4"/>'
                   f'<line x1="{width - 150}" x2="{width - 128}" y1="27" y2="27" stroke="#222" stroke-dasharray="5,4"/>'
                   f'<text x="{width - 124}" y="31" font-size="10">{_esc(reference[1])}</text>')
    if len(series) > 1:
        x = left
        for s, (name, _, _) in enumerate(series):
            out.append(f'<rect x="{x}" y="{height - 18}" width="10" height="10" fill="{SERIES_COLOURS[s % 6]}"/>'
                       f'<text x="{x + 14}" y="{height - 9}" font-size="11">{_esc(name)}</text>')
            x += 24 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)
