"""Use-case inference (issue #16): calls that declare no use case are named from their headers and
shape, each ledger row says where its use case came from, and `ledger explain-use-case` says why.

The replay check sends the requests recorded from the real CLIs (tests/client_shapes.json: Claude
Code, Codex, llm, aider; prompt text redacted) through a running gateway to the fake provider, as
the clients sent them, and reads the ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from spendgate.cli import build_app
from spendgate.inference.infer import Inferrer
from spendgate.inference.rules import RulesError, load_rules, parse_rules
from spendgate.models import Principal
from spendgate.pricing import format_usd
from spendgate.providers import offline_provider
from spendgate.providers.base import Provider
from spendgate.providers.bedrock import BedrockProvider
from spendgate.providers.openai_embeddings import OpenAIEmbeddingsProvider
from spendgate.providers.vertex import VertexProvider
from tests.conftest import RunningGateway

SHAPES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "client_shapes.json").read_text())[
    "shapes"
]


def send(gateway: RunningGateway, path: str, headers: dict[str, str], body: Any, query: str = "") -> str:
    """One call as a client sends it; returns Spendgate's request id."""
    url = f"{gateway.url}{path}" + (f"?{query}" if query else "")
    sent = {**headers, "authorization": f"Bearer {gateway.key}"}
    response = httpx.post(url, headers=sent, content=json.dumps(body).encode(), timeout=30)
    assert response.status_code == 200, response.text
    return response.headers["x-spendgate-request-id"]


def row_of(gateway: RunningGateway, request_id: str) -> dict[str, Any]:
    (row,) = gateway.rows(request_id=request_id)
    return row


@pytest.mark.parametrize("shape", SHAPES, ids=[s["name"] for s in SHAPES])
def test_recorded_client_calls_are_named_as_a_person_would(
    gateway: RunningGateway, shape: dict[str, Any]
) -> None:
    request_id = send(gateway, shape["path"], shape["headers"], shape["body"], shape["query"])
    row = row_of(gateway, request_id)
    assert row["use_case"] == shape["expected_use_case"], row["use_case_evidence"]
    assert row["use_case_source"] == f"inferred:{shape['expected_rule']}"
    assert row["use_case_evidence"]  # what the call had for each condition of its rule
    assert row["status"] == "ok" and row["cost_nanos"] > 0


def test_a_declared_use_case_wins_and_says_where_it_came_from(gateway: RunningGateway) -> None:
    claude = next(s for s in SHAPES if s["name"] == "claude-code-print-main-turn")
    tagged = {**claude["headers"], "x-spendgate-tags": "use_case=code-review"}
    assert (
        row_of(gateway, send(gateway, "/v1/messages", tagged, claude["body"]))["use_case_source"] == "header"
    )
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"use_case": "triage"},
    }
    row = row_of(gateway, send(gateway, "/v1/chat/completions", {"user-agent": "OpenAI/Python 1.0"}, body))
    assert (row["use_case"], row["use_case_source"], row["use_case_evidence"]) == ("triage", "metadata", None)
    key = gateway.mint_key(name="reviewer", team="platform", use_case="code-review")
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        headers={"x-api-key": key, **claude["headers"]},
        content=json.dumps(claude["body"]).encode(),
        timeout=30,
    )
    row = row_of(gateway, response.headers["x-spendgate-request-id"])
    assert (row["use_case"], row["use_case_source"]) == ("code-review", "key")


def test_a_call_no_rule_names_stays_untagged(gateway: RunningGateway) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}]}
    row = row_of(gateway, send(gateway, "/v1/messages", {"user-agent": "curl/8.5.0"}, body))
    assert (row["use_case"], row["use_case_source"], row["use_case_evidence"]) == ("untagged", "none", None)


def test_explain_use_case_and_ledger_tail(gateway: RunningGateway) -> None:
    shape = next(s for s in SHAPES if s["name"] == "claude-code-permission-check")
    request_id = send(gateway, shape["path"], shape["headers"], shape["body"], shape["query"])
    gateway.rows()
    runner = CliRunner(env={"SPENDGATE_DATABASE_URL": gateway.gw.settings.database_url})
    app = build_app()
    result = runner.invoke(app, ["ledger", "explain-use-case", request_id, "--format", "json"])
    assert result.exit_code == 0, result.output
    why = json.loads(result.stdout)
    assert (why["use_case"], why["kind"]) == ("claude-code-background", "inferred")
    assert why["rule"]["name"] == "claude-code-background" and why["rule"]["in_current_rules"]
    assert why["rule"]["conditions"] == ["client = claude-code", "tools = false"]
    assert why["evidence"].startswith("client claude-code (") and why["evidence"].endswith("; tools no")
    text = runner.invoke(app, ["ledger", "explain-use-case", request_id]).stdout
    assert "inferred by rule 'claude-code-background'" in text and "evidence" in text
    tail = json.loads(runner.invoke(app, ["ledger", "tail", "--format", "json"]).stdout)
    assert tail[-1]["use_case_source"] == "inferred:claude-code-background"
    missing = runner.invoke(app, ["ledger", "explain-use-case", "sg-nope"])
    assert missing.exit_code == 1 and "no ledger row" in missing.stderr


def shape_of(
    provider: str, path: str, headers: dict[str, str], body: dict[str, Any], key: str = "ada"
) -> Any:
    adapter: Provider
    if provider == "bedrock":
        adapter = BedrockProvider("us-east-1", None)
    elif provider == "vertex":
        adapter = VertexProvider(None)
    elif path == "/v1/embeddings":
        adapter = OpenAIEmbeddingsProvider(None, "http://127.0.0.1:1/v1")
    else:
        adapter = offline_provider(provider)
    raw = json.dumps(body).encode()
    info = adapter.parse(raw, path)
    principal = Principal("k", key, "o", "t", None, "CC", None, {}, None, team_name="platform")
    inferrer = Inferrer(load_rules(None))
    features = adapter.route_features(info)
    return inferrer, inferrer.shape_of(adapter.name, info, features, principal, {}, headers, len(raw))


MESSAGES = {"model": "claude-sonnet-4-6", "max_tokens": 32000, "messages": [{"role": "user", "content": "x"}]}
TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


@pytest.mark.parametrize(
    ("name", "provider", "path", "headers", "body", "expected"),
    [
        # claude-code.md / clients.md: Bedrock and Vertex modes send x-app: cli with their own paths
        (
            "claude-code-bedrock",
            "bedrock",
            "/bedrock/model/us.anthropic.claude-sonnet-4-6/invoke-with-response-stream",
            {"x-app": "cli", "anthropic-beta": "claude-code-20250219", "x-claude-code-session-id": "s"},
            {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 32000, "tools": TOOLS, "messages": []},
            ("claude-code", "claude-code-main-loop"),
        ),
        (
            "claude-code-vertex-background",
            "vertex",
            "/vertex_ai/v1/projects/p/locations/r/publishers/anthropic/models/claude-haiku-4-5:rawPredict",
            {"x-app": "cli", "x-claude-code-session-id": "s"},
            {
                "anthropic_version": "vertex-2023-10-16",
                "max_tokens": 512,
                "messages": [{"role": "user", "content": "x"}],
            },
            ("claude-code-background", "claude-code-background"),
        ),
        (
            "claude-code-nested-agent",
            "anthropic",
            "/v1/messages",
            {
                "user-agent": "claude-cli/2.1.0 (external, cli)",
                "x-claude-code-agent-id": "a2",
                "x-claude-code-parent-agent-id": "a1",
            },
            {**MESSAGES, "tools": TOOLS},
            ("claude-code-subagent", "claude-code-subagent"),
        ),
        (
            "agent-sdk-app",
            "anthropic",
            "/v1/messages",
            {"user-agent": "claude-cli/2.1.0 (external, sdk-py)", "x-app": "cli"},
            {**MESSAGES, "tools": TOOLS},
            ("agent", "claude-agent-sdk"),
        ),
        (
            "sdk-tool-loop",
            "openai",
            "/v1/chat/completions",
            {"user-agent": "OpenAI/Python 1.99.0"},
            {
                "model": "gpt-4.1",
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": []},
                    {"role": "tool", "tool_call_id": "1", "content": "x"},
                ],
            },
            ("agent", "tool-loop"),
        ),
        (
            "anthropic-tool-loop",
            "anthropic",
            "/v1/messages",
            {"user-agent": "Anthropic/Python 0.70.0"},
            {
                **MESSAGES,
                "tools": TOOLS,
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}],
                    },
                ],
            },
            ("agent", "tool-loop"),
        ),
        (
            "autocomplete",
            "openai",
            "/v1/chat/completions",
            {"user-agent": "OpenAI/JS 5.0.0"},
            {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": "def f("}]},
            ("autocomplete", "autocomplete-shaped"),
        ),
        (
            "ci-summary",
            "anthropic",
            "/v1/messages",
            {"user-agent": "Anthropic/Python 0.70.0"},
            {**MESSAGES, "max_tokens": 4000},
            ("batch", "ci-key-batch"),
        ),
        (
            "embeddings",
            "openai",
            "/v1/embeddings",
            {"user-agent": "OpenAI/Python 1.99.0"},
            {"model": "text-embedding-3-small", "input": ["a", "b"]},
            ("embeddings", "embeddings"),
        ),
    ],
)
def test_reference_shapes(
    name: str,
    provider: str,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    key = "ci-nightly" if name == "ci-summary" else "ada-laptop"
    inferrer, shape = shape_of(provider, path, headers, body, key)
    found = inferrer.infer(shape)
    assert found is not None and (found.use_case, found.source) == (expected[0], f"inferred:{expected[1]}")


def test_rule_files_are_checked() -> None:
    with pytest.raises(RulesError, match=r"x\.toml: rules\.0\.match\.tool: Extra inputs"):
        parse_rules('[[rules]]\nname = "a"\nuse_case = "b"\nmatch.tool = true\n', "x.toml")
    with pytest.raises(RulesError, match=r"rules\.0\.match\.tools: Input should be a valid boolean"):
        parse_rules('[[rules]]\nname = "a"\nuse_case = "b"\nmatch.tools = "yes"\n', "x.toml")
    with pytest.raises(RulesError, match="carries a credential"):
        parse_rules(
            '[[rules]]\nname = "a"\nuse_case = "b"\nmatch.header = { Authorization = "*" }\n', "x.toml"
        )
    with pytest.raises(RulesError, match=r"client \['nope'\] is not defined"):
        parse_rules('[[rules]]\nname = "a"\nuse_case = "b"\nmatch.client = "nope"\n', "x.toml")
    with pytest.raises(RulesError, match="another rule has this name"):
        parse_rules(
            '[[rules]]\nname = "a"\nuse_case = "b"\n[[rules]]\nname = "a"\nuse_case = "c"\n', "x.toml"
        )
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(Path("/nonexistent/rules.toml"))
    off = Inferrer(parse_rules("", "empty.toml"))
    assert not off.active
    disabled = Inferrer(parse_rules('[[rules]]\nname = "a"\nuse_case = "b"\nenabled = false\n', "x.toml"))
    assert not disabled.active and [
        s.rule.name
        for s in disabled.explain(
            shape_of("openai", "/v1/chat/completions", {}, {"model": "gpt-4o-mini", "messages": []})[1]
        )
    ] == ["a"]


def test_empty_rules_file_turns_inference_off(tmp_path: Path, fake: Any) -> None:
    from tests.seeded import serve_seeded

    rules = tmp_path / "rules.toml"
    rules.write_text("# no rules: calls that declare no use case stay untagged\n")
    llm = next(s for s in SHAPES if s["name"] == "llm-prompt")
    for url, gw, key in serve_seeded(tmp_path, fake, use_case_rules_file=rules):
        response = httpx.post(
            f"{url}/v1/chat/completions",
            headers={**llm["headers"], "authorization": f"Bearer {key}"},
            content=json.dumps(llm["body"]).encode(),
            timeout=30,
        )
        assert response.status_code == 200
        assert gw.ledger.wait_idle(10)
        (row,) = gw.store.ledger_rows()
    assert (row["use_case"], row["use_case_source"]) == ("untagged", "none")


ROUTE_INFERRED = """
[tiers.anthropic]
fast = "claude-haiku-4-5"

[[rules]]
name = "background-to-fast"
match.use_case = "claude-code-background"
use_inferred = {use_inferred}
tier = "fast"
sticky = false
"""


@pytest.mark.parametrize("use_inferred", [False, True])
def test_routing_acts_on_inferred_use_cases_only_where_the_policy_says(
    tmp_path: Path, fake: Any, use_inferred: bool
) -> None:
    from tests.test_routing import policy_gateway

    policy = ROUTE_INFERRED.format(use_inferred=str(use_inferred).lower())
    gateway = policy_gateway(tmp_path, fake, policy)
    url, key, gw = next(gateway)
    title = next(s for s in SHAPES if s["name"] == "claude-code-session-title")
    main = next(s for s in SHAPES if s["name"] == "claude-code-interactive-main-turn")
    for shape in (title, main):  # the same session: the title call must not pin the main loop
        response = httpx.post(
            f"{url}{shape['path']}?{shape['query']}",
            headers={**shape["headers"], "x-api-key": key},
            content=json.dumps(shape["body"]).encode(),
            timeout=30,
        )
        assert response.status_code == 200, response.text
    assert gw.ledger.wait_idle(10)
    rows = {r["use_case"]: r for r in gw.store.ledger_rows()}
    next(gateway, None)
    background, loop = rows["claude-code-background"], rows["claude-code"]
    assert background["use_case_source"] == "inferred:claude-code-background"
    routed = "claude-haiku-4-5" if use_inferred else title["body"]["model"]
    assert background["upstream_model"] == routed
    assert background["route_rule"] == ("background-to-fast" if use_inferred else None)
    assert loop["upstream_model"] == main["body"]["model"] and loop["route_rule"] is None


def test_route_explain_shows_the_inferred_use_case(tmp_path: Path) -> None:
    from tests.test_routing_cli import Cli

    cli = Cli(tmp_path)
    cli.seed()
    shape = next(s for s in SHAPES if s["name"] == "claude-code-permission-check")
    headers = [arg for k, v in shape["headers"].items() for arg in ("--header", f"{k}: {v}")]
    result = cli.explain("ada-laptop", shape["body"], *headers)
    assert (result["use_case"], result["use_case_source"]) == (
        "claude-code-background",
        "inferred:claude-code-background",
    )
    assert (
        result["use_case_evidence"]
        == "client claude-code (user-agent: claude-cli/2.1.332 (external, cli)); tools no"
    )
    # the built-in policy's rules for inferred use cases ship disabled: the call keeps its model
    assert result["outcome"] == "unchanged"
    assert "inferred-claude-code-background-to-fast: disabled" in result["trace"]
    text = cli.ok("route", "explain", "--key", "ada-laptop", *headers, body=json.dumps(shape["body"]))
    assert "claude-code-background (inferred:claude-code-background)" in text


def test_reports_tell_declared_from_inferred(gateway: RunningGateway) -> None:
    claude = next(s for s in SHAPES if s["name"] == "claude-code-print-main-turn")
    tagged = {**claude["headers"], "x-spendgate-tags": "use_case=claude-code"}
    declared = row_of(gateway, send(gateway, "/v1/messages", tagged, claude["body"], claude["query"]))
    inferred = row_of(
        gateway, send(gateway, "/v1/messages", claude["headers"], claude["body"], claude["query"])
    )
    assert (declared["use_case"], inferred["use_case"]) == ("claude-code", "claude-code")
    runner = CliRunner(env={"SPENDGATE_DATABASE_URL": gateway.gw.settings.database_url})
    result = runner.invoke(build_app(), ["spend", "--by", "use_case", "--format", "json"])
    [row] = json.loads(result.stdout)
    assert (row["requests"], row["inferred_requests"]) == (2, 1)
    assert (row["declared_usd"], row["inferred_usd"]) == (
        format_usd(declared["cost_nanos"]),
        format_usd(inferred["cost_nanos"]),
    )
    by_source = json.loads(
        runner.invoke(build_app(), ["spend", "--by", "use_case_source", "--format", "json"]).stdout
    )
    assert {r["use_case_source"]: r["requests"] for r in by_source} == {
        "header": 1,
        "inferred:claude-code-main-loop": 1,
    }
    pytest.importorskip("matplotlib")
    from datetime import UTC, datetime

    from spendgate.reports.data import percent
    from spendgate.reports.produce import produce

    now = datetime.now(UTC)
    month = now.strftime("%Y-%m")
    html = produce(gateway.gw.store, "governance", month=month, formats=("html",), now=now).outputs[0]
    page = html.content.decode()
    table = page[page.find("<h2>Use cases</h2>") :]
    table = table[table.find("<table") : table.find("</table>")]
    share = percent(inferred["cost_nanos"], inferred["cost_nanos"] + declared["cost_nanos"])
    assert ">inferred</th>" in table and f'<td class="num">{share}</td></tr>' in table, table


def test_the_chargeback_tells_declared_from_inferred(gateway: RunningGateway) -> None:
    codex = next(s for s in SHAPES if s["name"] == "codex-exec-turn")
    tagged = {**codex["headers"], "x-spendgate-tags": "use_case=codex"}
    declared = row_of(gateway, send(gateway, codex["path"], tagged, codex["body"]))
    inferred = row_of(gateway, send(gateway, codex["path"], codex["headers"], codex["body"]))
    runner = CliRunner(env={"SPENDGATE_DATABASE_URL": gateway.gw.settings.database_url})
    month = declared["started_at"][:7]
    result = runner.invoke(build_app(), ["chargeback", "--month", month, "--format", "json"])
    assert result.exit_code == 0, result.output
    [center] = json.loads(result.stdout)["cost_centers"]
    [case] = center["teams"][0]["use_cases"]
    assert (case["use_case"], case["requests"]) == ("codex", 2)
    assert case["cost_usd"] == format_usd(declared["cost_nanos"] + inferred["cost_nanos"])
    assert case["inferred_usd"] == format_usd(inferred["cost_nanos"])
    csv_text = runner.invoke(build_app(), ["chargeback", "--month", month, "--format", "csv"]).stdout
    assert csv_text.splitlines()[0].endswith(",inferred_usd")
