"""Cost per merged PR: a group's spend in a UTC month divided by the PRs it merged that month.

Pure functions over rows the store returns; money stays integer nanos until the one division,
which is done in `Decimal` (28 significant digits), never in float.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Protocol

from spendgate.pricing import NANOS_PER_USD, format_usd
from spendgate.store.finance import FinanceStore
from spendgate.store.principals import NameStore
from spendgate.store.spend import SpendByMonth, SpendStore, TaggedSpend


class PRSpend(FinanceStore, SpendStore, NameStore, Protocol):
    """Merged PRs and the spend to divide among them."""


UNMAPPED = "unmapped"
GROUPS = ("team", "repo", "use_case")
CENT = Decimal("0.01")
_PR_REF = re.compile(r"^(?:https?://github\.com/)?(?:([\w.-]+/[\w.-]+)(?:#|/pull/))?#?(\d+)/?$")


@dataclass(frozen=True)
class CostPerPR:
    group: str
    month: str  # UTC month, '2026-11'
    spend_nanos: int
    merged_prs: int
    change_pct: Decimal | None = None  # cost per PR against the group's previous month

    @property
    def cost_per_pr(self) -> Decimal | None:
        return usd_per_pr(self.spend_nanos, self.merged_prs)

    def view(self, by: str) -> dict[str, Any]:
        exact = self.cost_per_pr
        return {
            by: self.group,
            "month": self.month,
            "spend_usd": format_usd(self.spend_nanos),
            "merged_prs": self.merged_prs,
            "cost_per_pr_usd": None if exact is None else str(exact),
            "cost_per_pr_usd_rounded": None if exact is None else str(round_cents(exact)),
            "change_pct": None if self.change_pct is None else str(self.change_pct),
        }


def usd_per_pr(spend_nanos: int, merged_prs: int) -> Decimal | None:
    """Exact dollars per PR (28 significant digits); None when nothing was merged."""
    if merged_prs <= 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 28
        return Decimal(spend_nanos) / (Decimal(NANOS_PER_USD) * merged_prs)


def round_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def month_window(months: int, last: str | None = None) -> list[str]:
    """The `months` UTC months ending with `last` ('2026-11'; default: this month), oldest first."""
    if months < 1:
        raise ValueError("--months must be at least 1")
    if last is None:
        last = datetime.now(UTC).strftime("%Y-%m")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", last):
        raise ValueError(f"a month is YYYY-MM, not {last!r}")
    year, month = int(last[:4]), int(last[5:])
    index = year * 12 + month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - months + 1, index + 1)]


def window_bounds(months: Sequence[str]) -> tuple[str, str]:
    """[since, until) in the ledger's UTC timestamp format for a run of months."""
    year, month = int(months[-1][:4]), int(months[-1][5:])
    after = f"{year + month // 12:04d}-{month % 12 + 1:02d}"
    return f"{months[0]}-01T00:00:00.000000Z", f"{after}-01T00:00:00.000000Z"


def cost_per_pr(
    spend: Mapping[tuple[str, str], int], prs: Mapping[tuple[str, str], int], months: Sequence[str]
) -> list[CostPerPR]:
    """One row per group and month of the window (zeros included, so gaps show), with the change
    in cost per PR from the group's previous month; groups by name, months in order."""
    groups = sorted({g for g, _ in spend} | {g for g, _ in prs}, key=lambda g: (g == UNMAPPED, g))
    rows = []
    for group in groups:
        previous: Decimal | None = None
        for month in months:
            nanos, count = spend.get((group, month), 0), prs.get((group, month), 0)
            current = usd_per_pr(nanos, count)
            rows.append(CostPerPR(group, month, nanos, count, _change(previous, current)))
            previous = current
    return rows


def _change(previous: Decimal | None, current: Decimal | None) -> Decimal | None:
    if previous is None or current is None or previous == 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 28
        return ((current - previous) / previous * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def count_prs(
    pr_rows: Iterable[Mapping[str, Any]], key: str, names: Mapping[str, str]
) -> dict[tuple[str, str], int]:
    """Merged PRs per (group, month) from `merged_pull_requests` rows; key: team_id, repo or None
    (all PRs in one group '*'). Team ids become names; PRs of no team count as 'unmapped'."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for pr in pr_rows:
        if key == "team_id":
            group = names.get(pr["team_id"], pr["team_id"]) if pr["team_id"] else UNMAPPED
        else:
            group = pr[key]
        counts[(group, pr["merged_at"][:7])] += 1
    return dict(counts)


def sum_spend(
    spend_rows: Iterable[SpendByMonth], names: Mapping[str, str] | None = None
) -> dict[tuple[str, str], int]:
    """`spend_by_month` rows -> nanos per (group, month); ids become names, no value -> 'unmapped'."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for row in spend_rows:
        group = (names or {}).get(row.value, row.value) if row.value else UNMAPPED
        sums[(group, row.month)] += row.cost_nanos
    return dict(sums)


def repo_spend(tagged_calls: Iterable[TaggedSpend]) -> dict[tuple[str, str], int]:
    """Spend per (repository, month) from calls tagged repo=OWNER/NAME."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for call in tagged_calls:
        repo = str(call.tags.get("repo", "")).strip().lower().removeprefix("https://github.com/")
        if repo:
            sums[(repo.strip("/"), call.month)] += call.cost_nanos
    return dict(sums)


def spend_per_pr(
    tagged_calls: Iterable[TaggedSpend], prs: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], int, int]:
    """Attribute calls tagged `pr` (12, #12, owner/name#12 or the PR's url) or `branch` (the PR's
    head branch) to merged PRs; a `repo` tag narrows the match. Returns (per-PR rows, most
    expensive first; unmatched nanos; unmatched calls). Ambiguous references stay unmatched."""
    by_number: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    by_branch: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for pr in prs:
        by_number[int(pr["number"])].append(pr)
        if pr.get("head_ref"):
            by_branch[pr["head_ref"]].append(pr)
    totals: dict[tuple[str, int], list[int]] = {}
    unmatched_nanos = unmatched_calls = 0
    for call in tagged_calls:
        match = _match(call.tags, by_number, by_branch)
        nanos = call.cost_nanos
        calls = call.requests  # rollup lines sum several calls
        if match is None:
            unmatched_nanos += nanos
            unmatched_calls += calls
            continue
        entry = totals.setdefault((match["repo"], int(match["number"])), [0, 0])
        entry[0] += nanos
        entry[1] += calls
    index = {(pr["repo"], int(pr["number"])): pr for pr in prs}
    rows = []
    for key, (nanos, calls) in sorted(totals.items(), key=lambda item: (-item[1][0], item[0])):
        pr = index[key]
        rows.append(
            {
                "repo": pr["repo"],
                "number": pr["number"],
                "title": pr.get("title"),
                "author": pr["author"],
                "team": pr.get("team") or UNMAPPED,
                "merged_at": pr["merged_at"],
                "calls": calls,
                "spend_usd": format_usd(nanos),
            }
        )
    return rows, unmatched_nanos, unmatched_calls


def _match(
    tags: Mapping[str, Any],
    by_number: Mapping[int, list[Mapping[str, Any]]],
    by_branch: Mapping[str, list[Mapping[str, Any]]],
) -> Mapping[str, Any] | None:
    repo = str(tags.get("repo", "")).strip().lower().removeprefix("https://github.com/").strip("/") or None
    candidates: list[Mapping[str, Any]] = []
    if "pr" in tags:
        ref = _PR_REF.match(str(tags["pr"]).strip())
        if ref is None:
            return None
        repo = ref.group(1).lower() if ref.group(1) else repo
        candidates = by_number.get(int(ref.group(2)), [])
    elif "branch" in tags:
        candidates = by_branch.get(str(tags["branch"]).strip().removeprefix("refs/heads/"), [])
    if repo is not None:
        candidates = [pr for pr in candidates if pr["repo"] == repo]
    return candidates[0] if len(candidates) == 1 else None


def report(store: PRSpend, by: str, months: Sequence[str]) -> list[CostPerPR]:
    """The report's rows: spend from the ledger and merged PRs, per group and UTC month."""
    since, until = window_bounds(months)
    prs = store.merged_pull_requests(since, until)
    names = store.names("team")
    if by == "team":
        spend = sum_spend(store.spend_by_month("team", since, until), names)
        counts = count_prs(prs, "team_id", names)
    elif by == "repo":
        spend = repo_spend(store.tagged_spend(["repo"], since, until))
        counts = count_prs(prs, "repo", names)
    elif by == "use_case":
        # A use case has no PRs of its own: its spend is divided by every PR merged that month.
        spend = sum_spend(store.spend_by_month("use_case", since, until))
        totals = count_prs(prs, "repo", names)
        merged = {m: sum(n for (_, month), n in totals.items() if month == m) for m in months}
        counts = {(g, m): merged[m] for g in {g for g, _ in spend} for m in months}
    else:
        raise ValueError(f"--by must be one of {'|'.join(GROUPS)}")
    return cost_per_pr(spend, counts, months)
