"""The real Claude Code CLI (npm @anthropic-ai/claude-code) in Bedrock mode and in Vertex mode, through
Spendgate to the fake clouds, inside a loopback-only network namespace (`unshare -n`).

Each call must land in the ledger with the key's team, the use case (from ANTHROPIC_CUSTOM_HEADERS,
or the key's default), Claude Code's session id, the model id the CLI sent, and the exact cost,
computed here from the price sheet. CI installs the CLI (.ci/run) and sets SPENDGATE_TEST_CLAUDE,
so there a missing CLI or namespace fails; elsewhere these tests skip with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendgate.admin.service import create_key
from spendgate.store import open_store
from tests.netns import netns_cli

ROOT = Path(__file__).resolve().parent.parent
CLAUDE_ENV = "SPENDGATE_TEST_CLAUDE"
# Pinned through the fake (x-fake-usage), so the cost can be worked out by hand.
USAGE = {
    "input_tokens": 3000,
    "cache_read_input_tokens": 20000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 400},
    "output_tokens": 24,
}
# Claude Sonnet 4.6 list prices, USD per million tokens (pricing.md): input, 5-minute cache write,
# 1-hour cache write, cache read, output. Bedrock bills its regional (us.) profiles 10% above list.
SONNET_4_6 = {
    "input": Decimal(3),
    "write_5m": Decimal("3.75"),
    "write_1h": Decimal(6),
    "read": Decimal("0.30"),
}
SONNET_4_6_OUTPUT = Decimal(15)
BEDROCK_REGIONAL = Decimal("1.1")


def expected_nanos(factor: Decimal) -> int:
    usd_per_mtok = (
        USAGE["input_tokens"] * SONNET_4_6["input"]
        + 1000 * SONNET_4_6["write_5m"]
        + 400 * SONNET_4_6["write_1h"]
        + USAGE["cache_read_input_tokens"] * SONNET_4_6["read"]
        + USAGE["output_tokens"] * SONNET_4_6_OUTPUT
    ) * factor
    return int(usd_per_mtok * 1000)  # USD per million tokens -> nano-dollars per token


def run_claude(
    tmp_path: Path, mode: str, model: str, key: str, custom_headers: dict[str, str]
) -> dict[str, Any]:
    home = tmp_path / "home"
    home.mkdir()
    config = {
        "mode": mode,
        "model": model,
        "key": key,
        "custom_headers": custom_headers,
        "claude": netns_cli(CLAUDE_ENV, "claude", "npm install @anthropic-ai/claude-code"),
        "prompt": "Say hello in five words.",
        "home": str(home),
        "workdir": str(tmp_path),
        "database_url": f"sqlite:///{tmp_path}/spendgate.db",
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.claude_netns", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["returncode"] == 0, result["stderr"]
    assert "deterministic reply" in result["stdout"]  # the fake's answer reached the CLI's output
    return result


def prepare(tmp_path: Path, use_case: str | None = None) -> tuple[str, str]:
    """A database with team 'platform' and a key for it: (the key, the team id)."""
    store = open_store(f"sqlite:///{tmp_path}/spendgate.db")
    store.migrate()
    org = store.create_org("acme")
    team = store.create_team(org.name, "platform", "CC-100")
    user = store.create_user(team.name, "ada", "ada@example.com")
    _, secret = create_key(store, name="ada-laptop", team=team.name, user=user.name, use_case=use_case)
    store.close()
    return secret, team.id


def ledger(tmp_path: Path) -> list[dict[str, Any]]:
    store = open_store(f"sqlite:///{tmp_path}/spendgate.db")
    try:
        return store.ledger_rows()
    finally:
        store.close()


def check_no_secrets(result: dict[str, Any], rows: list[dict[str, Any]], key: str) -> None:
    text = json.dumps(rows, default=str) + result["gateway_log"] + result["stdout"] + result["stderr"]
    for secret in [*result["secrets"], key]:
        assert secret not in text
    upstream = json.dumps(result["fake_requests"])
    assert key not in upstream  # the virtual key never leaves for the provider


def metered(rows: list[dict[str, Any]], provider: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["provider"] == provider]


def test_claude_code_in_bedrock_mode(tmp_path: Path) -> None:
    model = "us.anthropic.claude-sonnet-4-6"
    key, team_id = prepare(tmp_path)
    headers = {"X-Spendgate-Tags": "use_case=code-review", "x-fake-usage": json.dumps(USAGE)}
    result = run_claude(tmp_path, "bedrock", model, key, headers)
    calls = [r for r in result["fake_requests"] if r["path"].endswith("/invoke-with-response-stream")]
    assert calls, result["fake_requests"]
    assert all(r["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ") for r in calls)  # signed
    rows = metered(ledger(tmp_path), "bedrock")
    assert len(rows) == len(calls)
    for row, call in zip(rows, calls, strict=True):
        assert row["team_id"] == team_id and row["use_case"] == "code-review"
        assert row["use_case_source"] == "header"
        assert row["session_id"] == call["headers"]["x-claude-code-session-id"]
        assert row["requested_model"] == model and row["upstream_model"] == model
        assert row["status"] == "ok" and row["streamed"] and not row["estimated"]
        assert row["cost_nanos"] == expected_nanos(BEDROCK_REGIONAL)
    check_no_secrets(result, rows, key)


def test_claude_code_in_vertex_mode(tmp_path: Path) -> None:
    model = "claude-sonnet-4-6"
    key, team_id = prepare(tmp_path, use_case="autonomous-agent")  # no tag header: the key's default
    result = run_claude(tmp_path, "vertex", model, key, {"x-fake-usage": json.dumps(USAGE)})
    calls = [r for r in result["fake_requests"] if r["path"].endswith(":streamRawPredict")]
    assert calls, result["fake_requests"]
    assert all(r["headers"]["authorization"].startswith("Bearer ya29.fake-") for r in calls)  # Google's token
    rows = metered(ledger(tmp_path), "vertex")
    assert len(rows) == len(calls)
    for row, call in zip(rows, calls, strict=True):
        assert row["team_id"] == team_id and row["use_case"] == "autonomous-agent"
        assert row["use_case_source"] == "key"
        assert row["session_id"] == call["headers"]["x-claude-code-session-id"]
        assert row["requested_model"] == model
        assert row["status"] == "ok" and row["streamed"] and not row["estimated"]
        assert row["cost_nanos"] == expected_nanos(Decimal(1))
    check_no_secrets(result, rows, key)


def test_claude_code_direct_without_a_tag_is_named_by_inference(tmp_path: Path) -> None:
    """ANTHROPIC_BASE_URL pointed at Spendgate, no use case declared anywhere: the main loop's calls
    are inferred from Claude Code's own headers (docs/attribution.md#use-case-inference)."""
    key, team_id = prepare(tmp_path)
    result = run_claude(tmp_path, "direct", "claude-sonnet-4-6", key, {"x-fake-usage": json.dumps(USAGE)})
    calls = [r for r in result["fake_requests"] if r["path"] == "/v1/messages"]
    assert calls, result["fake_requests"]
    rows = metered(ledger(tmp_path), "anthropic")
    assert len(rows) == len(calls)
    for row, call in zip(rows, calls, strict=True):
        assert row["team_id"] == team_id and row["session_id"] == call["headers"]["x-claude-code-session-id"]
        assert (row["use_case"], row["use_case_source"]) == ("claude-code", "inferred:claude-code-main-loop")
        assert row["use_case_evidence"].startswith("client claude-code (")
        assert row["cost_nanos"] == expected_nanos(Decimal(1))
    check_no_secrets(result, rows, key)
