"""The figures of the two reports, gathered through the Store into plain dataclasses.

Money stays integer nano-dollars here; `usd()` and `usd_exact()` format it for people. Months are
UTC calendar months, as in every other finance view (cost per PR, chargeback, forecast).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Protocol

from spendgate.clock import iso
from spendgate.dimensions import SCOPE_BY
from spendgate.finance import cost_per_pr as cpp
from spendgate.finance import forecast as fc
from spendgate.finance.focus import month_bounds
from spendgate.inference.share import split_by_source
from spendgate.pricing import NANOS_PER_USD, format_usd
from spendgate.routing.baseline import Baseline, baseline_costs, default_baseline
from spendgate.store.alerts import AlertStore
from spendgate.store.budgets import BudgetStore, CrossedTier
from spendgate.store.finance import FinanceStore
from spendgate.store.principals import NameStore
from spendgate.store.spend import SavingsByGroup, SpendByDay, SpendByGroup, SpendStore


class ReportSource(SpendStore, BudgetStore, AlertStore, FinanceStore, NameStore, Protocol):
    """What the finance and governance reports read."""


TREND_MONTHS = 6
TOP = 10


def usd(nanos: int) -> str:
    """'$3,200.00': rounded half-up to the cent, for tables and charts."""
    cents = (Decimal(nanos) / NANOS_PER_USD).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"-${-cents:,.2f}" if cents < 0 else f"${cents:,.2f}"


def usd_exact(nanos: int) -> str:
    """The ledger's exact figure, '3200.123456789' (pricing.format_usd)."""
    return format_usd(nanos)


def percent(part: int | Fraction, whole: int) -> str:
    return f"{float(Fraction(part) * 100 / whole):.1f}%" if whole else "-"


def month_label(month: str) -> str:
    return datetime.strptime(month, "%Y-%m").strftime("%B %Y")


@dataclass(frozen=True, slots=True)
class Slice:
    """One group's spend in the period (a team, use case, model, key or user)."""

    id: str | None
    name: str
    requests: int
    cost_nanos: int
    inferred_nanos: int = 0  # use cases: the part of cost_nanos whose use case Spendgate inferred


@dataclass(frozen=True, slots=True)
class DaySpend:
    day: str  # '2026-11-28' (UTC)
    cost_nanos: int
    requests: int


@dataclass(frozen=True, slots=True)
class TeamCostPerPR:
    team: str
    rows: tuple[cpp.CostPerPR, ...]  # one per month of the trend window, oldest first
    slope_usd_per_month: Decimal | None  # least-squares trend of cost per PR; None under 2 points

    def at(self, month: str) -> cpp.CostPerPR | None:
        return next((r for r in self.rows if r.month == month), None)


@dataclass(frozen=True, slots=True)
class BudgetLine:
    name: str
    scope: str  # 'team:platform'
    amount_nanos: int
    actual_nanos: int

    @property
    def used(self) -> str:
        return percent(self.actual_nanos, self.amount_nanos)


@dataclass(frozen=True, slots=True)
class Forecast:
    """Month-end projection for a month in progress; for a past month, the next month at the
    run-rate of the month's last 7 days."""

    month: str  # the month projected
    kind: str  # 'month-end' or 'next-month'
    days_left: Fraction
    projections: tuple[fc.Projection, ...]

    @property
    def projected_nanos(self) -> int:
        return sum(p.projected_nanos for p in self.projections)

    @property
    def budget_nanos(self) -> int:
        return sum(p.budget_nanos or 0 for p in self.projections)


@dataclass(frozen=True, slots=True)
class Savings:
    """The month's saving two ways: against the models the calls asked for (what routing did) and
    against one baseline model for every call (the brief's "vs. Opus": what model choice did)."""

    cost_nanos: int
    counterfactual_nanos: int
    routed_requests: int
    by_rule: tuple[Slice, ...]  # Slice.cost_nanos = nanos saved by the rule
    baseline_model: str | None = None
    baseline_nanos: int | None = None  # every call of the month on the baseline model

    @property
    def saved_nanos(self) -> int:
        return self.counterfactual_nanos - self.cost_nanos

    @property
    def baseline_saved_nanos(self) -> int | None:
        return None if self.baseline_nanos is None else self.baseline_nanos - self.cost_nanos


@dataclass(frozen=True, slots=True)
class Anomaly:
    opened_at: str
    kind: str  # anomaly, budget, forecast
    group: str  # 'team:platform'
    summary: str
    status: str


@dataclass(frozen=True, slots=True)
class FinanceReport:
    month: str
    since: datetime
    until: datetime  # exclusive; the month's end, or `as_of` for a month in progress
    generated_at: datetime
    partial: bool
    total_nanos: int
    requests: int
    previous_nanos: int
    monthly: tuple[tuple[str, int], ...]  # (month, nanos), the trend window, oldest first
    daily: tuple[DaySpend, ...]
    teams: tuple[Slice, ...]
    cost_per_pr: tuple[TeamCostPerPR, ...]
    merged_prs: int
    budgets: tuple[BudgetLine, ...]
    forecast: Forecast
    use_cases: tuple[Slice, ...]
    savings: Savings | None
    title: str = "Finance report"

    @property
    def cost_per_pr_usd(self) -> Decimal | None:
        """The whole organisation's spend divided by every PR merged in the month (exact)."""
        return cpp.usd_per_pr(self.total_nanos, self.merged_prs)


@dataclass(frozen=True, slots=True)
class GovernanceReport:
    label: str
    since: datetime
    until: datetime
    generated_at: datetime
    total_nanos: int
    requests: int
    daily: tuple[DaySpend, ...]
    teams: tuple[Slice, ...]
    use_cases: tuple[Slice, ...]
    models: tuple[Slice, ...]
    keys: tuple[Slice, ...]
    users: tuple[Slice, ...]
    anomalies: tuple[Anomaly, ...]
    budget_events: tuple[CrossedTier, ...] = field(default=())
    title: str = "Governance report"


# --- gathering -----------------------------------------------------------------------------------
def finance_report(
    store: ReportSource, month: str, now: datetime | None = None, baseline: Baseline | None = None
) -> FinanceReport:
    """Everything the finance report shows for one UTC month; `now` cuts a month in progress;
    savings are also stated against `baseline` (default: claude-opus-4-6 for every call)."""
    now = now or datetime.now(UTC)
    start, end = month_bounds(month)
    if start > now:
        raise ValueError(f"{month} has not started yet")
    until = min(end, now)
    since_s, until_s = iso(start), iso(until)
    team_names = store.names("team")

    teams = _slices(store.spend("team", since_s, until_s))
    total = sum(s.cost_nanos for s in teams)
    window = cpp.month_window(TREND_MONTHS, month)
    monthly = _monthly(store, window, until)
    previous = dict(monthly).get(window[-2], 0) if len(window) > 1 else 0

    rows = cpp.report(store, "team", window)
    per_team = _cost_per_pr_by_team(rows)
    prs_in_month = sum(r.merged_prs for r in rows if r.month == month)

    savings_rows = store.savings("rule", since_s, until_s)
    return FinanceReport(
        month=month,
        since=start,
        until=until,
        generated_at=now,
        partial=until < end,
        total_nanos=total,
        requests=sum(s.requests for s in teams),
        previous_nanos=previous,
        monthly=tuple(monthly),
        daily=tuple(_daily(store.spend_daily("team", since_s, until_s), start, until)),
        teams=teams,
        cost_per_pr=per_team,
        merged_prs=prs_in_month,
        budgets=tuple(_budget_lines(store, team_names, start, end, until)),
        forecast=_forecast(store, team_names, start, end, now),
        use_cases=_use_cases(store, since_s, until_s)[:TOP],
        savings=_savings(savings_rows, store, since_s, until_s, baseline or default_baseline()),
    )


def governance_report(
    store: ReportSource, since: datetime, until: datetime, label: str, now: datetime | None = None
) -> GovernanceReport:
    """The engineering view of [since, until): who spends, on what, and what went wrong."""
    now = now or datetime.now(UTC)
    until = min(until, now)
    since_s, until_s = iso(since), iso(until)
    teams = _slices(store.spend("team", since_s, until_s))
    alerts = [a for a in store.list_alerts(since=since_s) if a.opened_at < until_s]
    events = [e for e in store.list_budget_events(since_s) if e.crossed_at < until_s]
    return GovernanceReport(
        label=label,
        since=since,
        until=until,
        generated_at=now,
        total_nanos=sum(s.cost_nanos for s in teams),
        requests=sum(s.requests for s in teams),
        daily=tuple(_daily(store.spend_daily("team", since_s, until_s), since, until)),
        teams=teams,
        use_cases=_use_cases(store, since_s, until_s),
        models=_slices(store.spend("model", since_s, until_s)),
        keys=_slices(store.spend("key", since_s, until_s))[:TOP],
        users=_slices(store.spend("user", since_s, until_s))[:TOP],
        anomalies=tuple(
            Anomaly(
                opened_at=a.opened_at,
                kind=a.kind,
                group=f"{a.group_by}:{a.group_value}",
                summary=a.summary,
                status=a.status,
            )
            for a in alerts
        ),
        budget_events=tuple(events),
    )


def _slices(rows: Iterable[SpendByGroup]) -> tuple[Slice, ...]:
    out = [
        Slice(id=r.id, name=str(r.name or r.id or "(none)"), requests=r.requests, cost_nanos=r.cost_nanos)
        for r in rows
    ]
    out.sort(key=lambda s: (-s.cost_nanos, s.name))
    return tuple(out)


def _use_cases(store: SpendStore, since: str, until: str) -> tuple[Slice, ...]:
    """Spend by use case, each with the part of it whose use case was inferred, not declared."""
    split = split_by_source(store, "use_case", since, until)
    return tuple(
        replace(s, inferred_nanos=split[s.id].inferred_nanos) if s.id in split else s
        for s in _slices(store.spend("use_case", since, until))
    )


def _daily(rows: Iterable[SpendByDay], since: datetime, until: datetime) -> list[DaySpend]:
    """One entry per UTC day of [since, until), days without spend included."""
    nanos: dict[str, int] = defaultdict(int)
    requests: dict[str, int] = defaultdict(int)
    for row in rows:
        nanos[row.day] += row.cost_nanos
        requests[row.day] += row.requests
    out, day = [], since.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < until:
        key = day.strftime("%Y-%m-%d")
        out.append(DaySpend(key, nanos.get(key, 0), requests.get(key, 0)))
        day += timedelta(days=1)
    return out


def _monthly(store: ReportSource, window: Sequence[str], until: datetime) -> list[tuple[str, int]]:
    since, end = cpp.window_bounds(window)
    sums: dict[str, int] = defaultdict(int)
    for row in store.spend_by_month("team", since, min(end, iso(until))):
        sums[row.month] += row.cost_nanos
    return [(m, sums.get(m, 0)) for m in window]


def _cost_per_pr_by_team(rows: Sequence[cpp.CostPerPR]) -> tuple[TeamCostPerPR, ...]:
    by_team: dict[str, list[cpp.CostPerPR]] = defaultdict(list)
    for row in rows:
        by_team[row.group].append(row)
    out = []
    for team, team_rows in by_team.items():
        points = [(i, r.cost_per_pr) for i, r in enumerate(team_rows) if r.cost_per_pr is not None]
        out.append(TeamCostPerPR(team, tuple(team_rows), slope([(x, y) for x, y in points if y is not None])))
    return tuple(out)


def slope(points: Sequence[tuple[int, Decimal]]) -> Decimal | None:
    """Least-squares slope of y over x (dollars per month), in Decimal; None under two points."""
    if len(points) < 2:
        return None
    n = Decimal(len(points))
    mean_x = sum(Decimal(x) for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((Decimal(x) - mean_x) * (y - mean_y) for x, y in points)
    den = sum((Decimal(x) - mean_x) ** 2 for x, _ in points)
    return num / den if den else None


def trend_line(points: Sequence[tuple[int, Decimal]]) -> tuple[float, float] | None:
    """(slope, intercept) of the least-squares line, for drawing."""
    m = slope(points)
    if m is None:
        return None
    n = Decimal(len(points))
    mean_x = sum(Decimal(x) for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    return float(m), float(mean_y - m * mean_x)


def _budget_lines(
    store: ReportSource, team_names: Mapping[str, str], start: datetime, end: datetime, until: datetime
) -> list[BudgetLine]:
    """Each live monthly budget against the spend in its scope this UTC month."""
    since, stop = iso(start), iso(min(end, until))
    grouped: dict[str, dict[Any, int]] = {}
    out = []
    for budget in store.list_budgets():
        if budget.period != "month" or budget.scope_type == "session":
            continue
        scope = SCOPE_BY.get(budget.scope_type)
        if scope is None:  # a free-form tag: its own query
            actual = store.budget_spend(budget.scope_type, budget.scope_value, since, stop)
        else:
            column = scope.column
            if column not in grouped:
                rows = store.sum_grouped([column], ["cost_nanos"], since, stop)
                grouped[column] = {r[column]: int(r["cost_nanos"]) for r in rows}
            actual = grouped[column].get(budget.scope_value, 0)
        value = team_names.get(budget.scope_value, budget.scope_value)
        out.append(BudgetLine(budget.name, f"{budget.scope_type}:{value}", budget.amount_nanos, actual))
    out.sort(key=lambda b: (-b.actual_nanos, b.name))
    return out


def _forecast(
    store: ReportSource, team_names: Mapping[str, str], start: datetime, end: datetime, now: datetime
) -> Forecast:
    budgets = fc.monthly_budgets(store.list_budgets(), "team")
    if now < end:  # the month is in progress: project its end
        mtd = store.spend_totals("team", iso(start), iso(now))
        rate_start, rate_end = fc.run_rate_window(now)
        recent = store.spend_totals("team", iso(rate_start), iso(rate_end))
        left = fc.days_left(now, end)
        projections = fc.forecast(mtd, recent, budgets, team_names, left)
        return Forecast(start.strftime("%Y-%m"), "month-end", left, tuple(projections))
    # A past month: the next month at the run-rate of this month's last 7 days.
    rate_start, rate_end = fc.run_rate_window(end)
    recent = store.spend_totals("team", iso(rate_start), iso(rate_end))
    next_end = month_bounds(end.strftime("%Y-%m"))[1]
    days = fc.days_left(end, next_end)
    projections = fc.forecast({}, recent, budgets, team_names, days)
    return Forecast(end.strftime("%Y-%m"), "next-month", days, tuple(projections))


def _savings(
    rows: Sequence[SavingsByGroup], store: SpendStore, since: str, until: str, baseline: Baseline
) -> Savings | None:
    """Routing savings by rule, and the month against the baseline model; None when no call was
    routed (the section is then left out)."""
    routed = sum(r.routed_requests for r in rows)
    cost = sum(r.cost_nanos for r in rows)
    counterfactual = sum(r.counterfactual_nanos for r in rows)
    if not routed or counterfactual <= cost:
        return None
    by_rule = [
        Slice(
            id=r.id,
            name=str(r.name or r.id),
            requests=r.routed_requests,
            cost_nanos=r.counterfactual_nanos - r.cost_nanos,
        )
        for r in rows
        if r.id is not None
    ]
    by_rule = [s for s in by_rule if s.cost_nanos]
    by_rule.sort(key=lambda s: (-s.cost_nanos, s.name))
    try:
        priced = baseline_costs(store, "rule", since, until, baseline.model, baseline.pricer)
    except ValueError:  # a baseline with no price: the comparison is left out, not the report
        return Savings(cost, counterfactual, routed, tuple(by_rule))
    on_baseline = sum(r.baseline_nanos for r in priced)
    if not on_baseline:  # no tokens recorded: nothing to compare
        return Savings(cost, counterfactual, routed, tuple(by_rule))
    return Savings(cost, counterfactual, routed, tuple(by_rule), baseline.model, on_baseline)
