"""GitHub input: webhook signature checks and payloads, `gh pr list --json` output and CSV backfills.

Everything here is pure (bytes and text in, `MergedPR` out); storing is the store's job (the row
type and `normalise_repo` are the store's, `store/finance.py`, re-exported here).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
from datetime import UTC, datetime
from typing import Any

from spendgate.clock import iso
from spendgate.store.finance import MergedPR as MergedPR
from spendgate.store.finance import normalise_repo as normalise_repo

_PR_URL = re.compile(r"github\.com/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)/pull/(\d+)")
CSV_COLUMNS = ("repo", "number", "author", "merged_at")


def sign(secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 header GitHub sends for this body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """HMAC-SHA256 of the raw body, compared in constant time."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def normalise_time(value: str) -> str:
    """ISO date or datetime (offset or Z; none means UTC) -> the ledger's UTC format."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(f"not an ISO date or datetime: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment)


def merged_pr_from_event(event: str, payload: dict[str, Any]) -> MergedPR | None:
    """The merged PR a webhook delivery reports, or None when it reports no merge."""
    if event != "pull_request" or payload.get("action") != "closed":
        return None
    pr = payload.get("pull_request")
    if not isinstance(pr, dict) or pr.get("merged") is not True:
        return None
    base = pr.get("base") or {}
    repo = (base.get("repo") or {}).get("full_name") or (payload.get("repository") or {}).get("full_name")
    if not repo or not pr.get("merged_at") or not isinstance(pr.get("number"), int):
        raise ValueError("a merged pull_request payload needs number, merged_at and the repository")
    return MergedPR(
        repo=normalise_repo(repo),
        number=pr["number"],
        author=_login(pr.get("user")),
        merged_at=normalise_time(pr["merged_at"]),
        title=pr.get("title"),
        base_ref=base.get("ref"),
        head_ref=(pr.get("head") or {}).get("ref"),
        url=pr.get("html_url"),
        additions=_int_or_none(pr.get("additions")),
        deletions=_int_or_none(pr.get("deletions")),
    )


def parse_gh_json(text: str, repo: str | None) -> tuple[list[MergedPR], int]:
    """`gh pr list --state merged --json number,title,author,mergedAt,headRefName,baseRefName,url`.

    The repository comes from --repo, else from each PR's url. Returns (merged PRs, items skipped
    because they have no mergedAt).
    """
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON from gh pr list: {exc}") from None
    if not isinstance(items, list):
        raise ValueError("expected the JSON list `gh pr list --json ...` prints")
    prs, skipped = [], 0
    for index, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("number"), int):
            raise ValueError(f"item {index}: not a pull request with a number")
        if not item.get("mergedAt"):
            skipped += 1
            continue
        url = item.get("url")
        where = repo
        if where is None:
            match = _PR_URL.search(url or "")
            if not match:
                raise ValueError(f"item {index}: no --repo given and no GitHub PR url to take it from")
            where = match.group(1)
        prs.append(
            MergedPR(
                repo=normalise_repo(where),
                number=item["number"],
                author=_login(item.get("author")),
                merged_at=normalise_time(item["mergedAt"]),
                title=item.get("title"),
                base_ref=item.get("baseRefName"),
                head_ref=item.get("headRefName"),
                url=url,
                additions=_int_or_none(item.get("additions")),
                deletions=_int_or_none(item.get("deletions")),
            )
        )
    return prs, skipped


def parse_csv(text: str) -> list[MergedPR]:
    """CSV with a header: repo,number,author,merged_at[,title,head_ref]."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"CSV needs the columns {','.join(CSV_COLUMNS)}[,title,head_ref]; missing {missing}")
    prs = []
    for line, row in enumerate(reader, 2):
        try:
            number = int(row["number"].strip().lstrip("#"))
            if not row["author"].strip():
                raise ValueError("empty author")
            prs.append(
                MergedPR(
                    repo=normalise_repo(row["repo"]),
                    number=number,
                    author=row["author"].strip().lower(),
                    merged_at=normalise_time(row["merged_at"]),
                    title=(row.get("title") or "").strip() or None,
                    head_ref=(row.get("head_ref") or "").strip() or None,
                )
            )
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"CSV line {line}: {exc}") from None
    return prs


def _login(user: Any) -> str:
    login = user.get("login") if isinstance(user, dict) else None
    # A deleted account shows as "ghost" on GitHub; keep the PR, attributed to nobody.
    return str(login).lower() if login else "ghost"


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
