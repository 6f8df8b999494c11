"""What each report says, in order, independent of the output format: key figures, then sections,
each with an explanation, an optional chart and a table. `html` and `pdf` render the same document,
so the two outputs cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from spendgate.finance.cost_per_pr import round_cents
from spendgate.reports.data import (
    FinanceReport,
    GovernanceReport,
    Slice,
    month_label,
    percent,
    usd,
    usd_exact,
)


@dataclass(frozen=True, slots=True)
class Figure:
    label: str
    value: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[int, ...] = ()  # columns aligned right


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    text: str
    chart: str | None = None  # a Chart name
    table: Table | None = None


@dataclass(frozen=True, slots=True)
class Document:
    kind: str  # finance, governance
    title: str
    period: str
    generated: str
    figures: tuple[Figure, ...]
    sections: tuple[Section, ...] = field(default=())


def _signed_usd(value: Decimal) -> str:
    return f"-${-value:,}" if value < 0 else f"+${value:,}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _generated(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _use_case_table(slices: Sequence[Slice], total: int) -> Table:
    """Spend by use case, with the share of each whose use case was inferred (not declared)."""
    return Table(
        ("use case", "requests", "spend", "share", "inferred"),
        tuple(
            (
                s.name,
                f"{s.requests:,}",
                usd(s.cost_nanos),
                percent(s.cost_nanos, total),
                percent(s.inferred_nanos, s.cost_nanos) if s.inferred_nanos else "-",
            )
            for s in slices
        ),
        (1, 2, 3, 4),
    )


def _slice_table(name: str, slices: Sequence[Slice], total: int) -> Table:
    return Table(
        (name, "requests", "spend", "share"),
        tuple((s.name, f"{s.requests:,}", usd(s.cost_nanos), percent(s.cost_nanos, total)) for s in slices),
        (1, 2, 3),
    )


def finance_document(report: FinanceReport) -> Document:
    month = month_label(report.month)
    delta = percent(report.total_nanos - report.previous_nanos, report.previous_nanos)
    change = (
        f"{'' if delta.startswith('-') else '+'}{delta} on the month before"
        if report.previous_nanos
        else "no spend the month before"
    )
    per_pr = report.cost_per_pr_usd
    figures = [
        Figure("Total spend", usd(report.total_nanos), f"exactly ${usd_exact(report.total_nanos)}; {change}"),
        Figure("Calls", f"{report.requests:,}", "metered through the gateway"),
        Figure("Merged PRs", f"{report.merged_prs:,}", "across all teams, in the month"),
        Figure(
            "Cost per merged PR",
            "-" if per_pr is None else f"${round_cents(per_pr):,}",
            "total spend / merged PRs",
        ),
        Figure(
            "Forecast",
            usd(report.forecast.projected_nanos),
            f"{'month-end' if report.forecast.kind == 'month-end' else 'next month'} "
            f"({month_label(report.forecast.month)})",
        ),
    ]
    if report.savings is not None:
        figures.append(
            Figure(
                "Routing savings",
                usd(report.savings.saved_nanos),
                f"{_plural(report.savings.routed_requests, 'call')} routed to cheaper models",
            )
        )
    if report.savings is not None and report.savings.baseline_saved_nanos is not None:
        s = report.savings
        figures.append(
            Figure(
                f"Against {s.baseline_model}",
                usd(s.baseline_saved_nanos or 0),
                f"{percent(s.baseline_saved_nanos or 0, s.baseline_nanos or 0)} less than every call on "
                f"{s.baseline_model} ({usd(s.baseline_nanos or 0)})",
            )
        )

    sections = [
        Section(
            "Spend trend",
            f"What the gateway metered each month (the last {len(report.monthly)}, {month} highlighted) "
            "and each day of the month. Months and days are UTC.",
            "spend-trend",
            Table(
                ("month", "spend"),
                tuple((month_label(m), usd(n)) for m, n in report.monthly),
                (1,),
            ),
        ),
        Section(
            "Spend by team",
            "Each team's spend in the month; it is charged to the team's cost center "
            "(`spendgate chargeback` has the line-by-line split and the FOCUS export).",
            None,
            _slice_table("team", report.teams, report.total_nanos),
        ),
        _cost_per_pr_section(report),
    ]
    if report.budgets:
        sections.append(
            Section(
                "Budget versus actual",
                "Each monthly budget against what its scope spent in the month (UTC). A budget stops "
                "calls at its hard tier (150 % of the amount by default), so actual can exceed 100 %.",
                "budget-vs-actual",
                Table(
                    ("budget", "scope", "budget", "actual", "used"),
                    tuple(
                        (b.name, b.scope, usd(b.amount_nanos), usd(b.actual_nanos), b.used)
                        for b in report.budgets
                    ),
                    (2, 3, 4),
                ),
            )
        )
    sections.append(_forecast_section(report))
    sections.append(
        Section(
            "Top use cases",
            "What the money was spent on, from the use case each call was tagged with, or that "
            "Spendgate inferred from its headers and shape when it declared none (the `inferred` "
            "column: that part of the row's spend; `untagged` when neither).",
            "top-use-cases",
            _use_case_table(report.use_cases, report.total_nanos),
        )
    )
    if report.savings is not None:
        s = report.savings
        routed = (
            f"Routing sent {_plural(s.routed_requests, 'call')} to a cheaper model than the one asked for. "
            f"The month's calls cost {usd(s.cost_nanos)} with routing; on the models asked for they "
            f"would have cost {usd(s.counterfactual_nanos)}: {usd(s.saved_nanos)} saved."
        )
        if s.baseline_nanos is not None:
            saved = s.baseline_saved_nanos or 0
            routed += (
                f' Against {s.baseline_model} for every call (the usual "everything on the strongest '
                f'model" baseline), the month would have cost {usd(s.baseline_nanos)}: {usd(saved)} '
                f"({percent(saved, s.baseline_nanos)}) less, from routing and the models callers chose. "
                "Both comparisons price the same tokens."
            )
        sections.append(
            Section(
                "Routing savings",
                routed,
                "routing-savings",
                Table(
                    ("rule", "routed calls", "saved"),
                    tuple((r.name, f"{r.requests:,}", usd(r.cost_nanos)) for r in s.by_rule),
                    (1, 2),
                ),
            )
        )
    period = month + (f" (to {report.until:%d %B %H:%M} UTC, in progress)" if report.partial else "")
    return Document(
        "finance",
        f"Spendgate finance report: {month}",
        period,
        _generated(report.generated_at),
        tuple(figures),
        tuple(sections),
    )


def _cost_per_pr_section(report: FinanceReport) -> Section:
    rows = []
    for team in report.cost_per_pr:
        current = team.at(report.month)
        if current is None:
            continue
        exact = current.cost_per_pr
        change = "" if current.change_pct is None else f"{current.change_pct:+}%"
        trend = (
            ""
            if team.slope_usd_per_month is None
            else _signed_usd(round_cents(team.slope_usd_per_month)) + "/mo"
        )
        rows.append(
            (
                team.team,
                usd(current.spend_nanos),
                f"{current.merged_prs:,}",
                "no PRs" if exact is None else f"${round_cents(exact):,}",
                change,
                trend,
            )
        )
    return Section(
        "Cost per merged PR",
        "A team's spend in the month divided by the pull requests it merged that month: what a shipped "
        "change costs. Change is against the team's month before; trend is the slope of the dashed "
        "line (least squares over the months shown). `unmapped` counts PRs whose author is mapped to "
        "no team (`spendgate prs unmapped`).",
        "cost-per-pr",
        Table(
            ("team", "spend", "merged PRs", "cost per PR", "change", "trend"), tuple(rows), (1, 2, 3, 4, 5)
        ),
    )


def _forecast_section(report: FinanceReport) -> Section:
    f = report.forecast
    if f.kind == "month-end":
        text = (
            f"Where {month_label(f.month)} will end at the current pace: spend so far plus the average "
            f"daily spend of the last 7 complete UTC days times the {float(f.days_left):.1f} days left."
        )
    else:
        text = (
            f"{month_label(f.month)} at the pace the month ended on: the average daily spend of its last "
            f"7 days times the {float(f.days_left):.0f} days of {month_label(f.month)}. Compare with "
            "each team's monthly budget."
        )
    rows = tuple(
        (
            p.name or "(no team)",
            usd(p.run_rate_nanos),
            usd(p.projected_nanos),
            "-" if p.budget_nanos is None else usd(p.budget_nanos),
            "-" if p.percent_of_budget is None else f"{float(p.percent_of_budget):.1f}%",
        )
        for p in f.projections
    )
    return Section(
        "Forecast",
        text,
        "forecast",
        Table(("team", "per day", "projected", "budget", "of budget"), rows, (1, 2, 3, 4)),
    )


def governance_document(report: GovernanceReport) -> Document:
    total = report.total_nanos
    open_anomalies = sum(1 for a in report.anomalies if a.status == "open")
    figures = (
        Figure("Total spend", usd(total), f"exactly ${usd_exact(total)}"),
        Figure("Calls", f"{report.requests:,}"),
        Figure("Teams", f"{len(report.teams):,}", "with spend"),
        Figure("Alerts", f"{len(report.anomalies):,}", f"{open_anomalies} still open"),
    )
    sections = [
        Section("Spend by day", "Every UTC day of the period.", "daily-spend"),
        Section("Teams", "Spend by team.", "teams", _slice_table("team", report.teams, total)),
        Section(
            "Use cases",
            "Spend by the use case calls were tagged with, or that Spendgate inferred when they "
            "declared none (`inferred`: that part of the row's spend).",
            "use-cases",
            _use_case_table(report.use_cases, total),
        ),
        Section(
            "Models",
            "Spend by the model that served the call.",
            "models",
            _slice_table("model", report.models, total),
        ),
        Section(
            "Top keys", "The virtual keys that spent most.", "keys", _slice_table("key", report.keys, total)
        ),
        Section("Top users", "The users who spent most.", "users", _slice_table("user", report.users, total)),
        Section(
            "Anomalies and alerts",
            "Alerts opened in the period: spend spikes against the baseline, budget tiers crossed and "
            "month-end forecasts over budget (`spendgate alerts list` for the detail).",
            None,
            Table(
                ("opened", "kind", "group", "status", "summary"),
                tuple(
                    (a.opened_at[:16].replace("T", " "), a.kind, a.group, a.status, a.summary)
                    for a in report.anomalies
                ),
            ),
        ),
    ]
    if report.budget_events:
        sections.append(
            Section(
                "Budget tiers crossed",
                "Each tier (alert, amber, hard) a budget crossed in the period.",
                None,
                Table(
                    ("crossed", "budget", "tier", "spend", "limit"),
                    tuple(
                        (
                            str(e.crossed_at)[:16].replace("T", " "),
                            str(e.budget),
                            f"{e.tier} ({e.percent}%)",
                            usd(int(e.spend_nanos)),
                            usd(int(e.limit_nanos)),
                        )
                        for e in report.budget_events
                    ),
                    (3, 4),
                ),
            )
        )
    return Document(
        "governance",
        f"Spendgate governance report: {report.label}",
        f"{report.since:%Y-%m-%d} to {report.until:%Y-%m-%d %H:%M} UTC",
        _generated(report.generated_at),
        figures,
        tuple(sections),
    )
