"""`spendgate prs ...`, `spendgate identities ...` and the `cost-per-pr` command of `spendgate report`.

Merged PRs come in by webhook (`POST /webhooks/github`) or by the backfill here; identities say
which team a PR counts for; the report divides each team's ledger spend by its merged PRs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from spendgate.cli.common import (
    FORMAT_OPTION,
    Format,
    ReportFormat,
    cli_store,
    print_json,
    print_table,
    show_one,
    to_csv,
)
from spendgate.finance import cost_per_pr as cpp
from spendgate.finance.github import normalise_repo, parse_csv, parse_gh_json
from spendgate.pricing import format_usd
from spendgate.store.principals import NameStore

REPORT_COLUMNS = ["month", "spend_usd", "merged_prs", "cost_per_pr_usd", "cost_per_pr_usd_rounded"]
PER_PR_COLUMNS = ["repo", "number", "title", "author", "team", "merged_at", "calls", "spend_usd"]


def _read(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"cannot read {file}: {exc.strerror}") from None


def _prs() -> typer.Typer:
    group = typer.Typer(help="Merged pull requests: backfill and check attribution.", no_args_is_help=True)

    @group.command("import")
    def import_(
        file: str = typer.Argument(..., help="The file ('-' for stdin)."),
        repo: str | None = typer.Option(None, "--repo", help="OWNER/NAME the gh JSON is from."),
        is_csv: bool = typer.Option(False, "--csv", help="FILE is CSV: repo,number,author,merged_at[,…]."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Backfill merged PRs from `gh pr list --state merged --json number,title,author,mergedAt,
        headRefName,baseRefName,url` output (with --repo) or a CSV; re-importing changes nothing."""
        with cli_store() as store:
            text = _read(file)
            skipped = 0
            if is_csv:
                prs, source = parse_csv(text), "csv"
            else:
                prs, skipped = parse_gh_json(text, normalise_repo(repo) if repo else None)
                source = "gh-json"
            counts = store.upsert_pull_requests(prs, source)
        result = {**counts, "skipped_not_merged": skipped}
        if fmt is Format.json:
            print_json(result)
            return
        line = f"{counts['new']} new, {counts['unchanged']} unchanged"
        if counts["updated"]:
            line += f", {counts['updated']} updated"
        if skipped:
            line += f", {skipped} skipped (not merged)"
        typer.echo(line)

    @group.command("unmapped")
    def unmapped(fmt: Format = FORMAT_OPTION) -> None:
        """PR authors that count for no team: map them with `identities map` or `identities repo`."""
        with cli_store() as store:
            rows = [asdict(r) for r in store.unmapped_pr_authors()]
        if fmt is Format.json:
            print_json(rows)
            return
        columns = ["login", "merged_prs", "first_merged_at", "last_merged_at"]
        print_table(columns, [[r[c] for c in columns] for r in rows], "Unmapped PR authors")
        if rows:
            typer.echo(
                "Their PRs show as 'unmapped' in reports. Fix: spendgate identities map --github "
                "LOGIN --user USER (or identities repo --repo OWNER/NAME --team TEAM)."
            )

    @group.command("list")
    def list_(
        since: str | None = typer.Option(None, "--since", help="Merged from this ISO date (UTC)."),
        until: str | None = typer.Option(None, "--until", help="Merged before this ISO date (UTC)."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Merged PRs with the team each counts for (and whether by author or repository)."""
        with cli_store() as store:
            rows = _with_team_names(store, store.merged_pull_requests(since, until))
        if fmt is Format.json:
            print_json(rows)
            return
        columns = ["repo", "number", "author", "merged_at", "team", "mapped_by", "title"]
        print_table(columns, [[r[c] for c in columns] for r in rows])

    return group


def _identities() -> typer.Typer:
    group = typer.Typer(help="Who a GitHub login is, and which team owns a repository.", no_args_is_help=True)

    @group.command("map")
    def map_(
        github: str = typer.Option(..., "--github", help="GitHub login."),
        user: str = typer.Option(..., "--user", help="Spendgate user (name or id); their team gets the PRs."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Map a GitHub login to a user: their merged PRs count for the user's team."""
        with cli_store() as store:
            row = asdict(store.map_github_login(github, user))
        show_one(row, fmt)

    @group.command("repo")
    def repo(
        repo: str = typer.Option(..., "--repo", help="OWNER/NAME."),
        team: str = typer.Option(..., "--team", help="Team name or id."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Per-repository fallback: PRs here by unmapped authors count for this team."""
        with cli_store() as store:
            row = asdict(store.map_repo_team(repo, team))
        show_one(row, fmt)

    @group.command("list")
    def list_(fmt: Format = FORMAT_OPTION) -> None:
        """Login mappings and repository teams."""
        with cli_store() as store:
            logins = [asdict(r) for r in store.list_github_identities()]
            repos = [asdict(r) for r in store.list_repo_teams()]
        if fmt is Format.json:
            print_json({"logins": logins, "repos": repos})
            return
        print_table(["login", "user", "team"], [[r["login"], r["user_name"], r["team"]] for r in logins])
        print_table(["repo", "team"], [[r["repo"], r["team"]] for r in repos])

    return group


def _with_team_names(store: NameStore, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    names = store.names("team")
    return [
        {**r, "team": names.get(r["team_id"], r["team_id"]) if r["team_id"] else cpp.UNMAPPED} for r in rows
    ]


def cost_per_pr(
    months: int = typer.Option(6, "--months", help="The last N UTC months, this one included."),
    by: str = typer.Option("team", "--by", help="|".join(cpp.GROUPS) + "."),
    last: str | None = typer.Option(None, "--month", help="Last month of the window (YYYY-MM)."),
    per_pr: bool = typer.Option(False, "--per-pr", help="Spend per merged PR from calls tagged pr/branch."),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", help="Output format."),
) -> None:
    """Cost per merged PR per team (or repo, use case) and UTC month, with month-over-month change."""
    with cli_store() as store:
        window = cpp.month_window(months, last)
        if per_pr:
            _per_pr(store, window, fmt)
            return
        rows = [r.view(by) for r in cpp.report(store, by, window)]
    columns = [by, *REPORT_COLUMNS, "change_pct"]
    if fmt is ReportFormat.json:
        print_json(rows)
    elif fmt is ReportFormat.csv:
        typer.echo(to_csv(rows, columns), nl=False)
    else:
        print_table(
            [by, "month", "spend_usd", "merged_prs", "cost_per_pr_usd", "change"],
            [_table_row(r, by) for r in rows],
            f"Cost per merged PR by {by}, {window[0]} .. {window[-1]} (UTC months)",
        )


def register(app: typer.Typer) -> None:
    app.add_typer(_prs(), name="prs")
    app.add_typer(_identities(), name="identities")


def _table_row(row: dict[str, Any], by: str) -> list[Any]:
    change = row["change_pct"]
    return [
        row[by],
        row["month"],
        row["spend_usd"],
        row["merged_prs"],
        row["cost_per_pr_usd_rounded"] or "no PRs",
        "" if change is None else (f"+{change}%" if not change.startswith("-") else f"{change}%"),
    ]


def _per_pr(store: cpp.PRSpend, window: Sequence[str], fmt: ReportFormat) -> None:
    since, until = cpp.window_bounds(window)
    prs = _with_team_names(store, store.merged_pull_requests(since, None))
    calls = store.tagged_spend(["pr", "branch"], since, until)
    rows, unmatched_nanos, unmatched_calls = cpp.spend_per_pr(calls, prs)
    if fmt is ReportFormat.json:
        print_json(
            {"prs": rows, "unmatched_calls": unmatched_calls, "unmatched_usd": format_usd(unmatched_nanos)}
        )
    elif fmt is ReportFormat.csv:
        typer.echo(to_csv(rows, PER_PR_COLUMNS), nl=False)
    else:
        print_table(PER_PR_COLUMNS, [[r[c] for c in PER_PR_COLUMNS] for r in rows], "Spend per merged PR")
        if unmatched_calls:
            typer.echo(
                f"{unmatched_calls} tagged calls (${format_usd(unmatched_nanos)}) match no single merged PR "
                "(not merged yet, merged before the window, or ambiguous)."
            )
