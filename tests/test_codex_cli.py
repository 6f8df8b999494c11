"""The real Codex CLI (npm @openai/codex) through Spendgate, set up as docs/codex.md says.

Codex, Spendgate and the fake provider run inside `unshare -n` (loopback only; see
tests/codex_session.py). CI installs Codex and sets SPENDGATE_TEST_CODEX to it (.ci/run), which
makes this test fail rather than skip when Codex or the namespace is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate.store import open_store
from tests.netns import netns_cli

CODEX_ENV = "SPENDGATE_TEST_CODEX"
# gpt-5 on the price sheet (shared/reference/pricing.md): USD per million tokens.
GPT5 = {"input": 1.25, "cached": 0.125, "output": 10}
USAGE = {
    "input_tokens": 12_000,
    "input_tokens_details": {"cached_tokens": 8_000},
    "output_tokens": 900,
    "output_tokens_details": {"reasoning_tokens": 500},
}
# nano-dollars = tokens x USD/MTok x 1000
EXPECTED_NANOS = round((4_000 * GPT5["input"] + 8_000 * GPT5["cached"] + 900 * GPT5["output"]) * 1000)


def codex_binary() -> str:
    return netns_cli(CODEX_ENV, "codex", "npm install @openai/codex")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    codex = codex_binary()
    out = tmp_path_factory.mktemp("codex")
    runs = [
        # no use case declared: Spendgate names it from Codex's own headers (use-case inference)
        {"prompt": "say hi", "headers": {"x-fake-usage": json.dumps(USAGE)}},
        {
            "prompt": "say hi again",
            "headers": {"x-spendgate-tags": "use_case=codex", "x-fake-mode": "stream-cut"},
        },
    ]
    repo = Path(__file__).resolve().parents[1]
    argv = ["unshare", "-n", sys.executable, "-m", "tests.codex_session", str(out), codex]
    done = subprocess.run(
        [*argv, *map(json.dumps, runs)], cwd=repo, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "session.json").read_text())


def rows_of(out: Path) -> list[dict[str, Any]]:
    store = open_store(f"sqlite:///{out}/spendgate.db")
    try:
        return store.ledger_rows()
    finally:
        store.close()


def test_codex_call_is_metered_exactly_with_its_session(session: tuple[Path, dict[str, Any]]) -> None:
    out, report = session
    first = report["runs"][0]
    assert first["returncode"] == 0, first["stderr"]
    assert "deterministic reply" in first["stdout"]  # the fake's answer reached Codex through Spendgate
    sent = [r for r in report["requests"] if r["path"] == "/v1/responses"]
    assert sent and all(r["method"] == "POST" for r in sent)
    # What Codex sent upstream: its own headers, not Spendgate's or the virtual key.
    headers = sent[0]["headers"]
    assert headers["accept"] == "text/event-stream" and headers["originator"] == "codex_exec"
    assert headers["authorization"] == "Bearer sk-openai-provider-secret-codex"
    assert "x-spendgate-tags" not in headers
    ok = [r for r in rows_of(out) if r["status"] == "ok"]
    assert len(ok) == 1
    [row] = ok
    assert row["session_id"] == headers["session-id"]
    assert (row["team_id"], row["user_id"], row["key_id"]) == (
        report["team_id"],
        report["user_id"],
        report["key_id"],
    )
    assert (row["use_case_source"], row["use_case_evidence"]) == (
        "inferred:codex",
        "client codex (user-agent: " + headers["user-agent"] + ")",
    )
    assert (row["use_case"], row["endpoint"], row["provider"], row["upstream_model"]) == (
        "codex",
        "/v1/responses",
        "openai",
        "gpt-5",
    )
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (
        4_000,
        8_000,
        900,
        500,
    )
    assert row["cost_nanos"] == EXPECTED_NANOS and not row["estimated"] and row["streamed"]


def test_cut_codex_stream_is_estimated_never_zero(session: tuple[Path, dict[str, Any]]) -> None:
    out, report = session
    assert report["runs"][1]["returncode"] != 0  # Codex saw the cut
    cut = [r for r in rows_of(out) if r["status"] != "ok"]
    assert cut, "the cut call is missing from the ledger"
    assert all(r["estimated"] and r["cost_nanos"] > 0 and r["input_tokens"] > 0 for r in cut)


@pytest.mark.parametrize("by", ["model", "session", "use_case"])
def test_codex_spend_in_the_cli(session: tuple[Path, dict[str, Any]], by: str) -> None:
    out, _ = session
    env = {**os.environ, "SPENDGATE_DATABASE_URL": f"sqlite:///{out}/spendgate.db"}
    done = subprocess.run(
        [sys.executable, "-m", "spendgate", "spend", "--by", by, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    groups = {row[by]: row for row in json.loads(done.stdout)}
    rows = rows_of(out)
    ok = next(r for r in rows if r["status"] == "ok")
    if by == "session":  # each `codex exec` is its own session
        assert Decimal(groups[ok["session_id"]]["cost_usd"]) * 10**9 == EXPECTED_NANOS
        return
    group = groups["gpt-5" if by == "model" else "codex"]
    assert group["requests"] == len(rows) >= 2
    assert Decimal(group["cost_usd"]) * 10**9 == sum(r["cost_nanos"] for r in rows)
