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

from spendgate.cli import present as p
from spendgate.cli.common import cli_store
from spendgate.cli.present import FORMAT_OPTION, Col, Format, emit, emit_one, print_table
from spendgate.finance import cost_per_pr as cpp
from spendgate.finance.github import normalise_repo, parse_csv, parse_gh_json
from spendgate.pricing import format_usd
from spendgate.store.principals import NameStore

REPORT_COLUMNS = ["month", "spend_usd", "merged_prs", "cost_per_pr_usd", "cost_per_pr_usd_rounded"]
PER_PR_COLUMNS = ["repo", "number", "title", "author", "team", "merged_at", "calls", "spend_usd"]
PER_PR_TABLE = [*(p.text(c) for c in ("repo", "number", "title", "author", "team")), p.times("merged_at")]
PER_PR_TABLE += [p.counts("calls"), p.money("spend_usd", "spend")]
IDENTITY_FIELDS = ["kind", "login", "user_id", "user_name", "repo", "team_id", "team", "mapped_at"]
PRS_TABLE = [p.text("repo"), p.token("number"), p.text("author"), p.times("merged_at", "merged")]
PRS_TABLE += [p.text("team"), p.text("mapped_by", "mapped by"), p.text("title")]
UNMAPPED_TABLE = [p.text("login"), p.counts("merged_prs", "merged PRs")]
UNMAPPED_TABLE += [p.times("first_merged_at", "first merged"), p.times("last_merged_at", "last merged")]


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
            with p.progress(f"Importing {p.count(len(prs))} merged PRs", len(prs), fmt) as bar:
                counts = store.upsert_pull_requests(prs, source, on_progress=bar)
        result = {**counts, "skipped_not_merged": skipped}
        if fmt is not Format.table:
            emit_one(result, fmt)
            return
        line = f"{p.count(counts['new'])} new, {p.count(counts['unchanged'])} unchanged"
        if counts["updated"]:
            line += f", {p.count(counts['updated'])} updated"
        if skipped:
            line += f", {p.count(skipped)} skipped (not merged)"
        typer.echo(line)

    @group.command("unmapped")
    def unmapped(fmt: Format = FORMAT_OPTION) -> None:
        """PR authors that count for no team: map them with `identities map` or `identities repo`."""
        with cli_store() as store:
            rows = [asdict(r) for r in store.unmapped_pr_authors()]
        fix = (
            "Their PRs show as 'unmapped' in reports. Fix: spendgate identities map --github "
            "LOGIN --user USER (or identities repo --repo OWNER/NAME --team TEAM)."
        )
        emit(rows, fmt, UNMAPPED_TABLE, "Unmapped PR authors", notes=[fix] if rows else [])

    @group.command("list")
    def list_(
        since: str | None = typer.Option(None, "--since", help="Merged from this ISO date (UTC)."),
        until: str | None = typer.Option(None, "--until", help="Merged before this ISO date (UTC)."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Merged PRs with the team each counts for (and whether by author or repository)."""
        with cli_store() as store:
            rows = _with_team_names(store, store.merged_pull_requests(since, until))
        emit(rows, fmt, PRS_TABLE)

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
        emit_one(row, fmt)

    @group.command("repo")
    def repo(
        repo: str = typer.Option(..., "--repo", help="OWNER/NAME."),
        team: str = typer.Option(..., "--team", help="Team name or id."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Per-repository fallback: PRs here by unmapped authors count for this team."""
        with cli_store() as store:
            row = asdict(store.map_repo_team(repo, team))
        emit_one(row, fmt)

    @group.command("list")
    def list_(fmt: Format = FORMAT_OPTION) -> None:
        """Login mappings and repository teams."""
        with cli_store() as store:
            logins = [asdict(r) for r in store.list_github_identities()]
            repos = [asdict(r) for r in store.list_repo_teams()]
        document = {"logins": logins, "repos": repos}
        # CSV: one list, each line saying which kind of mapping it is.
        lines = [{"kind": "login", **r} for r in logins] + [{"kind": "repo", **r} for r in repos]
        if fmt is not Format.table:
            emit(lines, fmt, [], document=document, fields=IDENTITY_FIELDS)
            return
        print_table(logins, [p.text("login"), p.text("user_name", "user"), p.text("team")], "GitHub logins")
        print_table(repos, [p.text("repo"), p.text("team")], "Repository teams")

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
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Cost per merged PR per team (or repo, use case) and UTC month, with month-over-month change."""
    with cli_store() as store:
        window = cpp.month_window(months, last)
        if per_pr:
            _per_pr(store, window, fmt)
            return
        rows = [r.view(by) for r in cpp.report(store, by, window)]
    columns = [
        p.text(by),
        p.token("month"),
        p.money("spend_usd", "spend"),
        p.counts("merged_prs", "merged PRs"),
        Col("cost_per_pr_usd_rounded", "cost per PR", "money", 2, missing="no PRs"),
        p.change("change_pct", "change"),
    ]
    title = f"Cost per merged PR by {by}, {window[0]} .. {window[-1]} (UTC months)"
    emit(rows, fmt, columns, title, fields=[by, *REPORT_COLUMNS, "change_pct"])


def register(app: typer.Typer) -> None:
    app.add_typer(_prs(), name="prs")
    app.add_typer(_identities(), name="identities")


def _per_pr(store: cpp.PRSpend, window: Sequence[str], fmt: Format) -> None:
    since, until = cpp.window_bounds(window)
    prs = _with_team_names(store, store.merged_pull_requests(since, None))
    calls = store.tagged_spend(["pr", "branch"], since, until)
    rows, unmatched_nanos, unmatched_calls = cpp.spend_per_pr(calls, prs)
    document = {"prs": rows, "unmatched_calls": unmatched_calls, "unmatched_usd": format_usd(unmatched_nanos)}
    note = (
        f"{p.count(unmatched_calls)} tagged calls ({p.usd_nanos(unmatched_nanos)}) match no single merged "
        "PR (not merged yet, merged before the window, or ambiguous)."
    )
    emit(
        rows,
        fmt,
        PER_PR_TABLE,
        "Spend per merged PR",
        fields=PER_PR_COLUMNS,
        document=document,
        notes=[note] if unmatched_calls else [],
    )
