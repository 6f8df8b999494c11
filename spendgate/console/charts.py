"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, works air-gapped, and passes the
console's Content-Security-Policy (classes from the console's stylesheet, no inline styles).

Each chart has a <title> and <desc> for screen readers; the pages also show the figures as a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 12, 12, 36


def _num(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return Decimal(0)


def _ticks(top: Decimal) -> list[Decimal]:
    """Three round gridline values up to `top`."""
    if top <= 0:
        return [Decimal(0)]
    step = Decimal(10) ** (len(str(int(top / 3))) - 1) if top >= 3 else Decimal("0.01")
    while top / step > 4:
        step *= 2 if str(step)[0] == "1" else Decimal("2.5") if str(step)[0] == "2" else 2
    return [step * i for i in range(int(top / step) + 1)]


def _money(value: Decimal) -> str:
    return f"${value:,.0f}" if value >= 10 else f"${value:,.2f}"


def _frame(title: str, desc: str, body: list[str], ticks: list[Decimal], scale: Decimal, cid: str) -> Markup:
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{cid}-t {cid}-d" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{cid}-t">{escape(title)}</title><desc id="{cid}-d">{escape(desc)}</desc>',
    ]
    for tick in ticks:
        y = PAD_TOP + plot_h - float(tick / scale) * plot_h if scale else PAD_TOP + plot_h
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_money(tick)}</text>'
        )
    parts += body
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    points: Sequence[Sequence[object]], title: str, cid: str = "chart", limit: object = None
) -> Markup:
    """Bars for (label, dollars) points, e.g. spend per day; `limit` draws a dashed budget line."""
    values = [_num(p[1]) for p in points]
    line = _num(limit) if limit is not None else None
    top = max([*values, line or Decimal(0), Decimal("0.01")])
    ticks = _ticks(top)
    scale = max(top, ticks[-1])
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(points), 1)
    body = []
    every = max(1, len(points) // 8)
    for i, (point, value) in enumerate(zip(points, values, strict=True)):
        h = float(value / scale) * plot_h if scale else 0.0
        x = PAD_LEFT + i * slot + slot * 0.15
        label = escape(str(point[0]))
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{PAD_TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}"><title>{label}: {_money(value)}</title></rect>'
        )
        if i % every == 0:
            body.append(
                f'<text class="axis" x="{x + slot * 0.35:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" '
                f'text-anchor="middle">{label[-5:]}</text>'
            )
    if line is not None:
        y = PAD_TOP + plot_h - float(line / scale) * plot_h
        body.append(
            f'<line class="limit" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
    total = sum(values, Decimal(0))
    desc = f"{len(points)} bars, total {_money(total)}" + (
        f"; line at {_money(line)}" if line is not None else ""
    )
    return _frame(title, desc, body, ticks, scale, cid)


def line_chart(points: Sequence[Sequence[object]], title: str, cid: str = "trend") -> Markup:
    """A line through (label, dollars) points, e.g. cost per merged PR per month; gaps are skipped."""
    present = [(i, _num(p[1])) for i, p in enumerate(points) if p[1] is not None]
    top = max([v for _, v in present] + [Decimal("0.01")])
    ticks = _ticks(top)
    scale = max(top, ticks[-1])
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    step = plot_w / max(len(points) - 1, 1)
    coords = [(PAD_LEFT + i * step, PAD_TOP + plot_h - float(v / scale) * plot_h) for i, v in present]
    body = []
    if len(coords) > 1:
        body.append(
            '<polyline class="line" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>'
        )
    for (x, y), (i, v) in zip(coords, present, strict=True):
        body.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{escape(str(points[i][0]))}: '
            f"{_money(v)}</title></circle>"
        )
    for i, p in enumerate(points):
        anchor = "end" if i == len(points) - 1 and len(points) > 1 else "middle"
        body.append(
            f'<text class="axis" x="{PAD_LEFT + i * step:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" '
            f'text-anchor="{anchor}">{escape(str(p[0]))}</text>'
        )
    return _frame(title, f"{len(present)} points", body, ticks, scale, cid)
