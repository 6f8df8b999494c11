"""Merged pull requests, GitHub deliveries and identities, part of the shared SQL store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from spendgate.clock import utc_now_iso
from spendgate.dimensions import MONTHLY_BY, SPEND_BY
from spendgate.store.base import Conflict
from spendgate.store.finance import (
    GithubIdentity,
    LoginMapping,
    MergedPR,
    RepoMapping,
    RepoTeam,
    UnmappedAuthor,
    normalise_repo,
)
from spendgate.store.spend import SpendByDay, SpendByMonth, TaggedSpend
from spendgate.store.sql_rollups import WORK_TAGS, RollupQueries

_PROGRESS_EVERY = 500  # PRs between two progress reports
_PR_FIELDS = ("author", "merged_at", "title", "base_ref", "head_ref", "url", "additions", "deletions")


class FinanceQueries(RollupQueries):  # reads the rollups through sum_grouped
    # --- pull requests ---
    def upsert_pull_requests(
        self, prs: Sequence[MergedPR], source: str, on_progress: Callable[[int, int], None] | None = None
    ) -> dict[str, int]:
        """Store merged PRs keyed by (repo, number): counts of new, updated and unchanged.

        A known PR is only updated where a field now has a different non-empty value, so a
        backfill without additions/deletions never erases what a webhook stored.
        """
        counts = {"new": 0, "updated": 0, "unchanged": 0}
        for done, pr in enumerate(prs):
            if on_progress is not None and done % _PROGRESS_EVERY == 0:
                on_progress(done, len(prs))
            rows = self._query(
                "SELECT * FROM pull_requests WHERE repo = ? AND number = ?", (pr.repo, pr.number)
            )
            if not rows:
                try:
                    self._write(
                        "INSERT INTO pull_requests (repo, number, author, merged_at, title, base_ref,"
                        " head_ref, url, additions, deletions, source, stored_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (pr.repo, pr.number, *(getattr(pr, f) for f in _PR_FIELDS), source, utc_now_iso()),
                    )
                    counts["new"] += 1
                    continue
                except Conflict:  # stored by a concurrent writer since the SELECT
                    rows = self._query(
                        "SELECT * FROM pull_requests WHERE repo = ? AND number = ?", (pr.repo, pr.number)
                    )
            changed = {
                f: getattr(pr, f)
                for f in _PR_FIELDS
                if getattr(pr, f) is not None and getattr(pr, f) != rows[0][f]
            }
            if not changed:
                counts["unchanged"] += 1
                continue
            sets = ", ".join(f"{f} = ?" for f in changed)
            self._write(
                f"UPDATE pull_requests SET {sets} WHERE repo = ? AND number = ?",
                (*changed.values(), pr.repo, pr.number),
            )
            counts["updated"] += 1
        if on_progress is not None:
            on_progress(len(prs), len(prs))
        return counts

    def merged_pull_requests(
        self, since: str | None = None, until: str | None = None
    ) -> list[dict[str, Any]]:
        """Merged PRs (oldest first) with the team they count for: the author's mapped user's team,
        else the repository's team; team_id None (mapped_by 'unmapped') when neither is known."""
        clauses, params = [], []
        if since:
            clauses.append("p.merged_at >= ?")
            params.append(since)
        if until:
            clauses.append("p.merged_at < ?")
            params.append(until)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._query(
            "SELECT p.*, COALESCE(u.team_id, r.team_id) AS team_id, u.id AS user_id,"
            " CASE WHEN u.team_id IS NOT NULL THEN 'author' WHEN r.team_id IS NOT NULL THEN 'repo'"
            " ELSE 'unmapped' END AS mapped_by"
            " FROM pull_requests p LEFT JOIN github_identities g ON g.login = p.author"
            " LEFT JOIN users u ON u.id = g.user_id LEFT JOIN repo_teams r ON r.repo = p.repo"
            f" {where} ORDER BY p.merged_at, p.repo, p.number",
            params,
        )

    def unmapped_pr_authors(self) -> list[UnmappedAuthor]:
        """Authors of merged PRs that count for no team (no login mapping, no repository team)."""
        rows = self._query(
            "SELECT p.author AS login, COUNT(*) AS merged_prs, MIN(p.merged_at) AS first_merged_at,"
            " MAX(p.merged_at) AS last_merged_at FROM pull_requests p"
            " LEFT JOIN github_identities g ON g.login = p.author"
            " LEFT JOIN repo_teams r ON r.repo = p.repo"
            " WHERE g.login IS NULL AND r.repo IS NULL GROUP BY p.author ORDER BY merged_prs DESC, login"
        )
        return [UnmappedAuthor(**{**r, "merged_prs": int(r["merged_prs"])}) for r in rows]

    # --- deliveries ---
    def github_delivery_seen(self, delivery_id: str) -> bool:
        return bool(
            self._query("SELECT 1 AS seen FROM github_deliveries WHERE delivery_id = ?", (delivery_id,))
        )

    def record_github_delivery(self, delivery_id: str, event: str) -> bool:
        """Remember a processed delivery; False when it was already recorded."""
        try:
            self._write(
                "INSERT INTO github_deliveries (delivery_id, event, received_at) VALUES (?, ?, ?)",
                (delivery_id, event, utc_now_iso()),
            )
        except Conflict:
            return False
        return True

    # --- identities ---
    def map_github_login(self, login: str, user: str) -> LoginMapping:
        """Map a GitHub login to a user (replacing any earlier mapping); returns login, user, team."""
        user_row = self._resolve("users", user, "user")
        name = login.strip().lstrip("@").lower()
        if not name:
            raise ValueError("a GitHub login is needed")
        self._write("DELETE FROM github_identities WHERE login = ?", (name,))
        self._write(
            "INSERT INTO github_identities (login, user_id, mapped_at) VALUES (?, ?, ?)",
            (name, user_row["id"], utc_now_iso()),
        )
        return LoginMapping(name, user_row["id"], user_row["team_id"])

    def map_repo_team(self, repo: str, team: str) -> RepoMapping:
        """Map a repository to a team: the fallback for its PRs whose author is not mapped."""
        team_row = self._resolve("teams", team, "team")
        name = normalise_repo(repo)
        self._write("DELETE FROM repo_teams WHERE repo = ?", (name,))
        self._write(
            "INSERT INTO repo_teams (repo, team_id, mapped_at) VALUES (?, ?, ?)",
            (name, team_row["id"], utc_now_iso()),
        )
        return RepoMapping(name, team_row["id"])

    def list_github_identities(self) -> list[GithubIdentity]:
        rows = self._query(
            "SELECT g.login, g.user_id, u.name AS user_name, u.team_id, t.name AS team, g.mapped_at"
            " FROM github_identities g JOIN users u ON u.id = g.user_id JOIN teams t ON t.id = u.team_id"
            " ORDER BY g.login"
        )
        return [GithubIdentity(**r) for r in rows]

    def list_repo_teams(self) -> list[RepoTeam]:
        rows = self._query(
            "SELECT r.repo, r.team_id, t.name AS team, r.mapped_at FROM repo_teams r"
            " JOIN teams t ON t.id = r.team_id ORDER BY r.repo"
        )
        return [RepoTeam(**r) for r in rows]

    # --- spend for cost per PR (from the daily rollups) ---
    def spend_by_month(self, by: str, since: str, until: str) -> list[SpendByMonth]:
        """Ledger spend per group value (team id or use case) and UTC month ('2026-11')."""
        column = MONTHLY_BY[by].column
        months: dict[tuple[Any, str], list[int]] = {}
        for row in self.sum_grouped([column, "day"], ["requests", "cost_nanos"], since, until):
            total = months.setdefault((row[column], row["day"][:7]), [0, 0])
            total[0] += row["requests"]
            total[1] += row["cost_nanos"]
        return [
            SpendByMonth(value, month, requests, cost)
            for (value, month), (requests, cost) in sorted(
                months.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))
            )
        ]

    def spend_daily(self, by: str, since: str, until: str) -> list[SpendByDay]:
        """Spend per group value (any `spend --by` group but session) and UTC day ('2026-11-28'):
        rows of value, day, requests, cost_nanos, oldest day first."""
        if by not in SPEND_BY or not SPEND_BY[by].rollup:
            raise ValueError(f"cannot give daily spend by {by!r}")
        column = SPEND_BY[by].column
        rows = self.sum_grouped([column, "day"], ["requests", "cost_nanos"], since, until)
        out = [SpendByDay(r[column], r["day"], r["requests"], r["cost_nanos"]) for r in rows]
        return sorted(out, key=lambda r: (r.day, str(r.value)))

    def tagged_spend(self, keys: Sequence[str], since: str, until: str) -> list[TaggedSpend]:
        """Spend of calls carrying any of these tags (repo, pr, branch: the tags the work rollup
        keeps) per month and team: rows of tags (a dict), team_id, month, requests, cost_nanos."""
        unknown = set(keys) - set(WORK_TAGS)
        if unknown:
            raise ValueError(f"only {', '.join(WORK_TAGS)} tags are summed, not {', '.join(sorted(unknown))}")
        # A repository alone is summed per repository; a PR or branch match needs all three tags.
        keep = ("repo",) if set(keys) == {"repo"} else WORK_TAGS
        return [
            TaggedSpend(r["month"], r["team_id"], r["requests"], r["cost_nanos"], r["tags"])
            for r in self.work_spend(since, until, keep)
            if any(k in r["tags"] for k in keys)
        ]
