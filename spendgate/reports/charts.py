"""The reports' charts, drawn with matplotlib's object API (no pyplot, so no global figure state and
no backend chosen at import time): SVG for the HTML report, PNG for the PDF.

Each `*_chart` function returns a `Chart` (a named, titled figure) or None when there is nothing to
draw (no budgets, no routing savings).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from PIL import Image as PILImage

from spendgate.pricing import NANOS_PER_USD
from spendgate.reports.data import FinanceReport, GovernanceReport, Slice, trend_line

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#64748b")
MUTED = "#cbd5e1"
INK = "#1e293b"
_RC: dict[Any, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.edgecolor": "#94a3b8",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "svg.fonttype": "none",  # text stays text in the SVG: searchable, selectable, small
}


@dataclass(frozen=True, slots=True)
class Chart:
    name: str  # 'spend-trend'; also the SVG id prefix
    title: str
    figure: Figure

    def svg(self) -> str:
        buffer = io.StringIO()
        with rc_context(_RC | {"svg.hashsalt": self.name}):
            # The figure's constrained layout already fits it: no second, "tight" drawing pass.
            self.figure.savefig(buffer, format="svg")
        text = buffer.getvalue()
        return text[text.index("<svg") :]  # inline: no XML declaration or doctype

    def png(self, dpi: int = 160) -> bytes:
        buffer = io.BytesIO()
        with rc_context(_RC):
            self.figure.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()

    def pixels(self, dpi: int = 160) -> PILImage.Image:
        """The chart drawn to an RGB image: for the PDF, which compresses pixels itself (a PNG
        would be encoded here only to be decoded again there)."""
        before = self.figure.dpi
        try:
            with rc_context(_RC):
                self.figure.set_dpi(dpi)
                canvas = FigureCanvasAgg(self.figure)
                canvas.draw()  # type: ignore[no-untyped-call]
                buffer = canvas.buffer_rgba()  # type: ignore[no-untyped-call]
                rgba = PILImage.frombuffer("RGBA", canvas.get_width_height(), buffer)
            return rgba.convert("RGB")  # the figure is opaque
        finally:
            self.figure.set_dpi(before)


def dollars(nanos: int | Decimal) -> float:
    return float(Decimal(nanos) / NANOS_PER_USD)


def _money_axis(ax: Axes, axis: str = "y") -> None:
    formatter = FuncFormatter(lambda v, _: f"${v:,.0f}" if abs(v) >= 10 else f"${v:,.2f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


def _figure(width: float = 7.5, height: float = 3.0) -> Figure:
    with rc_context(_RC):
        return Figure(figsize=(width, height), layout="constrained")


# The most lines a chart draws; the report's tables list every line.
MAX_BARS = 15
MAX_TEAM_LINES = 8


def _top_title(title: str, shown: int, total: int) -> str:
    return title if shown >= total else f"{title} (top {shown} of {total})"


def _short(label: str, size: int = 28) -> str:
    return label if len(label) <= size else label[: size - 1] + "…"


def hbar_chart(name: str, title: str, slices: Sequence[Slice], color: str = PALETTE[0]) -> Chart | None:
    """Largest first, top to bottom, each bar labelled with its amount."""
    if not slices:
        return None
    title = _top_title(title, min(len(slices), MAX_BARS), len(slices))
    slices = slices[:MAX_BARS]
    fig = _figure(7.5, 0.45 + 0.32 * len(slices))
    with rc_context(_RC):
        ax = fig.add_subplot()
        names = [_short(s.name) for s in reversed(slices)]
        values = [dollars(s.cost_nanos) for s in reversed(slices)]
        bars = ax.barh(names, values, color=color)
        ax.bar_label(bars, labels=[f"${v:,.2f}" for v in values], padding=3, fontsize=8, color=INK)
        _money_axis(ax, "x")
        ax.margins(x=0.18)
        ax.set_title(title, loc="left")
    return Chart(name, title, fig)


def daily_chart(name: str, title: str, days: Sequence[tuple[str, int]]) -> Chart | None:
    if not days:
        return None
    fig = _figure(7.5, 2.6)
    with rc_context(_RC):
        ax = fig.add_subplot()
        _day_bars(ax, days)
        ax.set_title(title, loc="left")
    return Chart(name, title, fig)


def _day_bars(ax: Axes, days: Sequence[tuple[str, int]]) -> None:
    """One bar per UTC day; about five date labels whatever the period's length."""
    ax.bar(range(len(days)), [dollars(n) for _, n in days], color=PALETTE[0], width=0.8)
    step = max(1, round(len(days) / 5))
    ticks = list(range(0, len(days), step))
    ax.set_xticks(ticks, [datetime.strptime(days[i][0], "%Y-%m-%d").strftime("%d %b") for i in ticks])
    _money_axis(ax)


# --- finance -------------------------------------------------------------------------------------
def spend_trend_chart(report: FinanceReport) -> Chart:
    """Monthly spend over the trend window (bars, this month highlighted) and this month by day."""
    title = "Spend trend"
    fig = _figure(7.5, 2.8)
    with rc_context(_RC):
        months, daily = fig.subplots(1, 2, width_ratios=(1, 1.6))
        labels = [datetime.strptime(m, "%Y-%m").strftime("%b %y") for m, _ in report.monthly]
        values = [dollars(n) for _, n in report.monthly]
        colors = [PALETTE[0] if m == report.month else MUTED for m, _ in report.monthly]
        months.bar(labels, values, color=colors)
        months.set_title("By month", loc="left")
        months.tick_params(axis="x", labelrotation=45)
        _money_axis(months)
        _day_bars(daily, [(d.day, d.cost_nanos) for d in report.daily])
        daily.set_title(f"By day, {datetime.strptime(report.month, '%Y-%m'):%B %Y}", loc="left")
    return Chart("spend-trend", title, fig)


def cost_per_pr_chart(report: FinanceReport) -> Chart | None:
    """Cost per merged PR per team and month (solid), each with its least-squares trend (dashed)."""
    teams = [t for t in report.cost_per_pr if any(r.cost_per_pr is not None for r in t.rows)]
    if not teams:
        return None
    # More lines than a reader can tell apart: the teams with the most spend in the window.
    shown = sorted(teams, key=lambda t: -sum(r.spend_nanos for r in t.rows))[:MAX_TEAM_LINES]
    title = _top_title("Cost per merged PR by team", len(shown), len(teams))
    teams = [t for t in teams if t in shown]
    fig = _figure(7.5, 3.0)
    with rc_context(_RC):
        ax = fig.add_subplot()
        months = [r.month for r in teams[0].rows]
        labels = [datetime.strptime(m, "%Y-%m").strftime("%b %y") for m in months]
        for i, team in enumerate(teams):
            color = PALETTE[i % len(PALETTE)]
            points = [(x, r.cost_per_pr) for x, r in enumerate(team.rows) if r.cost_per_pr is not None]
            xs = [x for x, _ in points]
            ax.plot(xs, [float(y) for _, y in points if y is not None], "o-", color=color, label=team.team)
            line = trend_line([(x, y) for x, y in points if y is not None])
            if line is not None:
                m, b = line
                ends = [xs[0], xs[-1]]
                ax.plot(ends, [m * x + b for x in ends], "--", color=color, alpha=0.6, linewidth=1.2)
        ax.set_xticks(range(len(months)), labels)
        _money_axis(ax)
        ax.set_ylim(bottom=0)
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_title(title + " (dashed: trend)", loc="left")
    return Chart("cost-per-pr", title, fig)


def budget_chart(report: FinanceReport) -> Chart | None:
    if not report.budgets:
        return None
    title = _top_title("Budget versus actual", min(len(report.budgets), MAX_BARS), len(report.budgets))
    top = sorted(report.budgets, key=lambda b: -b.actual_nanos)[:MAX_BARS]
    lines = list(reversed([b for b in report.budgets if b in top]))
    fig = _figure(7.5, 1.0 + 0.45 * len(lines))
    with rc_context(_RC):
        ax = fig.add_subplot()
        names = [_short(f"{b.name} ({b.scope})", 36) for b in lines]
        ys = range(len(lines))
        ax.barh([y + 0.2 for y in ys], [dollars(b.amount_nanos) for b in lines], 0.38, color=MUTED)
        actual = [dollars(b.actual_nanos) for b in lines]
        colors = [PALETTE[3] if b.actual_nanos > b.amount_nanos else PALETTE[0] for b in lines]
        bars = ax.barh([y - 0.2 for y in ys], actual, 0.38, color=colors)
        ax.bar_label(bars, labels=[b.used for b in lines], padding=3, fontsize=8, color=INK)
        ax.set_yticks(list(ys), names)
        _money_axis(ax, "x")
        ax.margins(x=0.12)
        ax.legend(["budget", "actual"], frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
        ax.set_title(title, loc="left")
    return Chart("budget-vs-actual", title, fig)


def forecast_chart(report: FinanceReport) -> Chart | None:
    projections = [p for p in report.forecast.projections if p.projected_nanos or p.budget_nanos]
    if not projections:
        return None
    month = datetime.strptime(report.forecast.month, "%Y-%m").strftime("%B %Y")
    title = f"Forecast for {month}"
    rows = list(reversed(projections[:12]))
    fig = _figure(7.5, 1.0 + 0.4 * len(rows))
    with rc_context(_RC):
        ax = fig.add_subplot()
        names = [_short(p.name or "(no team)") for p in rows]
        mtd = [dollars(p.mtd_nanos) for p in rows]
        rest = [dollars(p.projected_nanos - p.mtd_nanos) for p in rows]
        if any(mtd):
            ax.barh(names, mtd, color=PALETTE[0], label="spent so far")
        ax.barh(names, rest, left=mtd, color=PALETTE[0], alpha=0.35, hatch="//", label="projected")
        budgets = [(i, dollars(p.budget_nanos)) for i, p in enumerate(rows) if p.budget_nanos]
        if budgets:
            ax.scatter([b for _, b in budgets], [i for i, _ in budgets], marker="|", s=400, color=PALETTE[3])
            ax.scatter([], [], marker="|", color=PALETTE[3], label="monthly budget")
        _money_axis(ax, "x")
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
        ax.set_title(title, loc="left")
    return Chart("forecast", title, fig)


def finance_charts(report: FinanceReport) -> list[Chart]:
    charts = [
        spend_trend_chart(report),
        cost_per_pr_chart(report),
        budget_chart(report),
        forecast_chart(report),
        hbar_chart("top-use-cases", "Top use cases", report.use_cases, PALETTE[2]),
    ]
    if report.savings is not None:
        charts.append(
            hbar_chart("routing-savings", "Routing savings by rule", report.savings.by_rule, PALETTE[2])
        )
    return [c for c in charts if c is not None]


# --- governance ----------------------------------------------------------------------------------
def governance_charts(report: GovernanceReport) -> list[Chart]:
    charts = [
        daily_chart("daily-spend", "Spend by day", [(d.day, d.cost_nanos) for d in report.daily]),
        hbar_chart("teams", "Spend by team", report.teams[:12]),
        hbar_chart("use-cases", "Spend by use case", report.use_cases[:12], PALETTE[2]),
        hbar_chart("models", "Spend by model", report.models[:12], PALETTE[4]),
        hbar_chart("keys", "Top keys", report.keys, PALETTE[5]),
        hbar_chart("users", "Top users", report.users, PALETTE[1]),
    ]
    return [c for c in charts if c is not None]
