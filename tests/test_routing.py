"""Model routing through the gateway, driven by the official SDKs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.servethread import ServerThread
from tests.conftest import RunningGateway, gateway_settings

USAGE = {"input_tokens": 1000, "output_tokens": 1000}


def claude(
    gateway: RunningGateway | tuple[str, str], use_case: str | None = None, **headers: str
) -> anthropic.Anthropic:
    url, key = (gateway.url, gateway.key) if isinstance(gateway, RunningGateway) else gateway
    if use_case:
        headers["x-spendgate-tags"] = f"use_case={use_case}"
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, default_headers=headers or None)


def ask(client: anthropic.Anthropic, model: str = "claude-opus-4-6", **kwargs: Any) -> Any:
    return client.messages.with_raw_response.create(
        model=model, max_tokens=1024, messages=[{"role": "user", "content": "hello"}], **kwargs
    )


TASK_TABLE = [
    ("autocomplete", "claude-haiku-4-5"),
    ("code-explanation", "claude-haiku-4-5"),
    ("code-review", "claude-sonnet-4-6"),
    ("test-generation", "claude-sonnet-4-6"),
    ("refactor", "claude-sonnet-4-6"),
    ("architecture", "claude-opus-4-6"),
    ("autonomous-agent", "claude-opus-4-6"),
    ("batch-summarization", "claude-haiku-4-5"),
]


@pytest.mark.parametrize(("use_case", "expected"), TASK_TABLE)
def test_default_policy_routes_the_task_table(
    gateway: RunningGateway, fake: FakeUpstream, use_case: str, expected: str
) -> None:
    raw = ask(claude(gateway, use_case), model="claude-sonnet-4-6")
    assert raw.parse().model == expected  # the fake answers with the model it was sent
    assert json.loads(fake.requests[-1].body)["model"] == expected
    [row] = gateway.rows()
    assert (row["requested_model"], row["upstream_model"]) == ("claude-sonnet-4-6", expected)
    assert row["route_rule"] is not None
    if expected != "claude-sonnet-4-6":
        assert raw.headers["x-spendgate-model"] == expected


def test_untagged_calls_keep_their_model(gateway: RunningGateway) -> None:
    ask(claude(gateway), model="claude-sonnet-4-6")
    [row] = gateway.rows()
    assert row["upstream_model"] == "claude-sonnet-4-6" and row["route_rule"] is None
    assert row["counterfactual_cost_nanos"] == row["cost_nanos"]


def test_routing_stays_within_the_openai_format(gateway: RunningGateway) -> None:
    client = openai.OpenAI(
        base_url=gateway.openai_url,
        api_key=gateway.key,
        max_retries=0,
        default_headers={"x-spendgate-tags": "use_case=autocomplete"},
    )
    reply = client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x"}])
    assert reply.model == "gpt-4o-mini"
    [row] = gateway.rows()
    assert (row["requested_model"], row["upstream_model"]) == ("gpt-4.1", "gpt-4o-mini")


def test_savings_are_exact(gateway: RunningGateway) -> None:
    ask(claude(gateway, "autocomplete", **{"x-fake-usage": json.dumps(USAGE)}), model="claude-opus-4-6")
    [row] = gateway.rows()
    assert row["cost_nanos"] == (1000 * 1 + 1000 * 5) * 1000  # Haiku 4.5, as used
    assert row["counterfactual_cost_nanos"] == (1000 * 5 + 1000 * 25) * 1000  # Opus 4.6, as asked
    assert row["route_rule"] == "inline-and-batch-to-fast"


def policy_gateway(tmp_path: Path, fake: FakeUpstream, policy: str) -> Iterator[tuple[str, str, Any]]:
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    app = create_app(gateway_settings(tmp_path, fake, routing_policy_file=path))
    gw = app.state.gateway
    gw.store.create_org("o")
    gw.store.create_team("o", "platform", "CC")
    _, secret = create_key(gw.store, name="k", team="platform")
    gw.keyring.reload()
    with ServerThread(app) as server:
        yield server.url, secret, gw


TIERS = """
[tiers.anthropic]
fast = "claude-haiku-4-5"
standard = "claude-sonnet-4-6"
deep = "claude-opus-4-6"
"""


@pytest.fixture
def fallback_gateway(tmp_path: Path, fake: FakeUpstream) -> Iterator[tuple[str, str, Any]]:
    yield from policy_gateway(
        tmp_path,
        fake,
        TIERS
        + """
[fallbacks]
retries = 2
backoff_ms = 5
[fallbacks.models]
"claude-opus-4-6" = ["claude-sonnet-4-6"]
""",
    )


def test_fallback_after_bounded_retries(fallback_gateway: tuple[str, str, Any], fake: FakeUpstream) -> None:
    url, key, gw = fallback_gateway
    fake.clear()
    client = claude((url, key), **{"x-fake-mode": "error-529", "x-fake-mode-models": "claude-opus-4-6"})
    message = ask(client).parse()
    assert message.model == "claude-sonnet-4-6"
    sent = [json.loads(r.body)["model"] for r in fake.requests]
    assert sent == ["claude-opus-4-6"] * 3 + ["claude-sonnet-4-6"]
    assert gw.ledger.wait_idle(10)
    [row] = gw.store.ledger_rows()
    assert (row["upstream_model"], row["fallback_from"], row["attempts"]) == (
        "claude-sonnet-4-6",
        "claude-opus-4-6",
        4,
    )


def test_when_every_fallback_fails_the_last_error_comes_back(
    fallback_gateway: tuple[str, str, Any], fake: FakeUpstream
) -> None:
    url, key, gw = fallback_gateway
    with pytest.raises(anthropic.RateLimitError):
        ask(claude((url, key), **{"x-fake-mode": "error-429"}))
    assert gw.ledger.wait_idle(10)
    [row] = gw.store.ledger_rows()
    # three tries (two retries) on Opus, then three on its fallback, Sonnet
    assert row["attempts"] == 6 and row["status"] == "upstream_error" and row["cost_nanos"] == 0


def test_no_retry_once_a_stream_has_started(
    fallback_gateway: tuple[str, str, Any], fake: FakeUpstream
) -> None:
    url, key, gw = fallback_gateway
    fake.clear()
    client = claude((url, key), **{"x-fake-mode": "stream-cut"})
    with (
        pytest.raises(Exception),  # noqa: B017 - the SDK's own transport error class
        client.messages.stream(
            model="claude-opus-4-6", max_tokens=64, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert len(fake.requests) == 1
    assert gw.ledger.wait_idle(10)
    assert [r["attempts"] for r in gw.store.ledger_rows()] == [1]


@pytest.fixture
def allowlist_gateway(tmp_path: Path, fake: FakeUpstream) -> Iterator[tuple[str, str, Any]]:
    yield from policy_gateway(
        tmp_path,
        fake,
        TIERS
        + """
[[rules]]
name = "no-opus-4-1"
match.model = "claude-opus-4-1*"
refuse = "Opus 4.1 costs 3x Opus 4.6; ask for claude-opus-4-6"

[allow.teams.platform]
models = ["claude-haiku-*", "claude-sonnet-*"]
on_violation = "tier:standard"
""",
    )


def test_refusals_and_allowlists(allowlist_gateway: tuple[str, str, Any]) -> None:
    url, key, gw = allowlist_gateway
    with pytest.raises(anthropic.PermissionDeniedError, match=r"Opus 4\.1 costs 3x"):
        ask(claude((url, key)), model="claude-opus-4-1")
    assert ask(claude((url, key)), model="claude-opus-4-6").parse().model == "claude-sonnet-4-6"
    assert gw.ledger.wait_idle(10)
    [row] = gw.store.ledger_rows()
    assert row["route_rule"] == "allowlist:team:platform"


@pytest.fixture
def cache_gateways(tmp_path: Path, fake: FakeUpstream) -> Iterator[dict[bool, tuple[str, str, Any]]]:
    rule = """
[[rules]]
name = "short-prompts-to-fast"
match.max_input_tokens = 1200
tier = "fast"
sticky = {sticky}
"""
    sticky = policy_gateway(tmp_path / "a", fake, TIERS + rule.format(sticky="true"))
    flippy = policy_gateway(tmp_path / "b", fake, TIERS + rule.format(sticky="false"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    yield {True: next(sticky), False: next(flippy)}
    for gen in (sticky, flippy):
        next(gen, None)


def conversation(url: str, key: str, session: str) -> list[dict[str, Any]]:
    """Eight turns of one growing, cached conversation in one session."""
    client = claude((url, key), **{"x-claude-code-session-id": session})
    system = [
        {
            "type": "text",
            "text": f"[{session}] " + "You are a careful engineer. " * 120,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    messages: list[dict[str, Any]] = []
    for turn in range(8):
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": f"turn {turn}: " + "context line\n" * 40,
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            }
        )
        reply = client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=64,
            system=system,  # type: ignore[arg-type]
            messages=messages,
        )  # type: ignore[arg-type]
        for block in messages[-1]["content"]:
            block.pop("cache_control", None)
        messages.append({"role": "assistant", "content": reply.content[0].text})  # type: ignore[union-attr]
    return messages


def test_stickiness_keeps_the_prompt_cache(cache_gateways: dict[bool, tuple[str, str, Any]]) -> None:
    costs, reads, models = {}, {}, {}
    for sticky, (url, key, gw) in cache_gateways.items():
        conversation(url, key, session=f"cache-test-{sticky}")
        assert gw.ledger.wait_idle(10)
        rows = gw.store.ledger_rows()
        costs[sticky] = sum(r["cost_nanos"] for r in rows)
        reads[sticky] = sum(r["cache_read_tokens"] for r in rows)
        models[sticky] = [r["upstream_model"] for r in rows]
    assert set(models[True]) == {"claude-haiku-4-5"}  # one model all session long
    assert "claude-sonnet-4-6" in models[False] and "claude-haiku-4-5" in models[False]  # flipped mid-way
    assert reads[True] > reads[False]
    assert costs[True] < costs[False]
    print(
        f"stickiness kept {reads[True] - reads[False]} cache-read tokens; cost ${costs[True] / 1e9:.6f} "
        f"(sticky) vs ${costs[False] / 1e9:.6f} (flipping)"
    )


def test_budget_at_amber_downgrades_instead_of_refusing(gateway: RunningGateway) -> None:
    from spendgate.budgets.model import Tier

    call_nanos = (1000 * 3 + 1000 * 15) * 1000  # Sonnet 4.6
    gateway.gw.store.create_budget(
        name="amber",
        scope_type="team",
        scope_value="platform",
        amount_nanos=call_nanos,
        tiers=[Tier("alert", 50), Tier("amber", 100, "downgrade:fast"), Tier("hard", 1000)],
    )
    gateway.gw.budgets.reload()
    client = claude(gateway, **{"x-fake-usage": json.dumps(USAGE)})
    first = ask(client, model="claude-sonnet-4-6").parse()
    second = ask(client, model="claude-sonnet-4-6").parse()
    assert (first.model, second.model) == ("claude-sonnet-4-6", "claude-haiku-4-5")
    rows = gateway.rows()
    assert rows[1]["route_rule"] == "budget-amber:fast"
    assert rows[1]["counterfactual_cost_nanos"] == call_nanos


def test_policy_matches_on_endpoint() -> None:
    from spendgate.routing.policy import parse_policy
    from spendgate.routing.router import Router, RouteRequest

    router = Router(
        parse_policy(
            TIERS
            + """
[tiers.openai]
fast = "gpt-4o-mini"
[[rules]]
name = "chat-completions-to-fast"
match.endpoint = "/v1/chat/completions"
tier = "fast"
""",
            "test",
        )
    )
    base = dict(
        use_case="untagged",
        tags={},
        team="t",
        key="k",
        input_tokens=10,
        tools=False,
        thinking=False,
        stream=False,
    )
    chat = RouteRequest(provider="openai", model="gpt-4.1", endpoint="/v1/chat/completions", **base)  # type: ignore[arg-type]
    messages = RouteRequest(provider="anthropic", model="claude-opus-4-6", endpoint="/v1/messages", **base)  # type: ignore[arg-type]
    assert router.route(chat).model == "gpt-4o-mini"
    assert router.route(messages).model == "claude-opus-4-6"


def test_alternate_deployment_when_the_primary_is_down(tmp_path: Path, fake: FakeUpstream) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        TIERS
        + f"""
[fallbacks]
retries = 1
backoff_ms = 5
[fallbacks.deployments]
anthropic = ["{fake.url}"]
"""
    )
    # The primary deployment is a port where nothing listens.
    settings = gateway_settings(
        tmp_path, fake, routing_policy_file=path, anthropic_base_url="http://127.0.0.1:9"
    )
    app = create_app(settings)
    gw = app.state.gateway
    gw.store.create_org("o")
    gw.store.create_team("o", "platform", "CC")
    _, key = create_key(gw.store, name="k", team="platform")
    gw.keyring.reload()
    with ServerThread(app) as server:
        message = ask(claude((server.url, key)), model="claude-haiku-4-5").parse()
        assert message.content
        assert gw.ledger.wait_idle(10)
    [row] = open_rows(settings.database_url)  # the gateway closed its store on shutdown
    assert (row["status"], row["attempts"], row["upstream_model"]) == ("ok", 3, "claude-haiku-4-5")


def open_rows(database_url: str) -> list[dict[str, Any]]:
    from spendgate.store import open_store

    store = open_store(database_url)
    try:
        return store.ledger_rows()
    finally:
        store.close()
