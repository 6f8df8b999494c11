"""The OpenAI Responses API and embeddings through Spendgate, driven by the official `openai` SDK.

Expected costs come from the price sheet (shared/reference/pricing.md), in USD per million tokens;
nano-dollars = tokens x USD/MTok x 1000.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from spendgate.fake_upstream import FakeUpstream
from tests.conftest import RunningGateway
from tests.test_routing import policy_gateway

GPT5 = {"input": 1.25, "cached": 0.125, "output": 10}
GPT5_MINI = {"input": 0.25, "cached": 0.025, "output": 2}
EMBEDDING_SMALL = 0.02
USAGE = {
    "input_tokens": 10_000,
    "input_tokens_details": {"cached_tokens": 4_000},
    "output_tokens": 2_000,
    "output_tokens_details": {"reasoning_tokens": 1_500},
}


def nanos(price: dict[str, float], uncached: int, cached: int, output: int) -> int:
    return round((uncached * price["input"] + cached * price["cached"] + output * price["output"]) * 1000)


USAGE_NANOS = nanos(GPT5, 6_000, 4_000, 2_000)  # 28,000,000: $0.028


def client(gateway: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.openai_url, api_key=gateway.key, max_retries=0, default_headers=headers or None
    )


def usage_headers(**extra: str) -> dict[str, str]:
    return {"x-fake-usage": json.dumps(USAGE), **extra}


def test_json_response_metered_exactly(gateway: RunningGateway) -> None:
    reply = client(gateway, **usage_headers()).responses.create(model="gpt-5", input="summarise the diff")
    assert reply.output_text and reply.usage is not None and reply.usage.input_tokens == 10_000
    [row] = gateway.rows()
    assert (row["provider"], row["endpoint"], row["upstream_model"]) == ("openai", "/v1/responses", "gpt-5")
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (
        6_000,
        4_000,
        2_000,
        1_500,
    )
    assert row["cost_nanos"] == USAGE_NANOS == 28_000_000
    assert not row["estimated"] and not row["streamed"] and row["status"] == "ok"
    assert (row["team_id"], row["user_id"], row["key_id"]) == (
        gateway.team_id,
        gateway.user_id,
        gateway.key_id,
    )


def test_stream_metered_from_the_final_event_with_session_and_use_case(gateway: RunningGateway) -> None:
    headers = usage_headers(**{"session-id": "sess-42", "x-spendgate-tags": "use_case=codex,repo=api"})
    stream = client(gateway, **headers).responses.create(model="gpt-5", input="hello", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    [row] = gateway.rows()
    assert row["session_id"] == "sess-42" and row["use_case"] == "codex" and row["tags"] == {"repo": "api"}
    assert row["cost_nanos"] == USAGE_NANOS and row["streamed"] and not row["estimated"]


def test_thread_id_is_the_session_when_no_session_id(gateway: RunningGateway) -> None:
    client(gateway, **{"thread-id": "thread-7"}).responses.create(model="gpt-5", input="x")
    assert gateway.rows()[0]["session_id"] == "thread-7"


def test_stream_helper_and_incomplete_response(gateway: RunningGateway) -> None:
    gpt = client(gateway, **usage_headers())
    with gpt.responses.stream(model="gpt-5", input="hi") as stream:
        final = stream.get_final_response()
    assert final.usage is not None and final.usage.output_tokens == 2_000
    events = list(gpt.responses.create(model="gpt-5", input="hi", stream=True, max_output_tokens=16))
    assert events[-1].type == "response.incomplete"
    rows = gateway.rows()
    assert [r["cost_nanos"] for r in rows] == [USAGE_NANOS, USAGE_NANOS]  # usage as the provider said
    assert not any(r["estimated"] for r in rows)


@pytest.mark.parametrize(
    ("mode", "status", "error_type"),
    [
        ("stream-cut", "upstream_cut", "ClientPayloadError"),
        ("stream-error", "stream_error", "server_error"),
        ("stream-failed", "stream_error", "server_error"),
    ],
)
def test_cut_error_or_failed_stream_is_estimated_never_zero(
    gateway: RunningGateway, mode: str, status: str, error_type: str
) -> None:
    gpt = client(gateway, **{"x-fake-mode": mode})
    prompt = "a long prompt " * 200
    try:
        for _ in gpt.responses.create(model="gpt-5", input=prompt, stream=True):
            pass
    except openai.APIConnectionError:
        assert mode == "stream-cut"
    [row] = gateway.rows()
    assert row["estimated"] and row["status"] == status and row["error_type"] == error_type
    assert row["input_tokens"] >= len(prompt) // 4  # the prompt, estimated from the body
    assert row["output_tokens"] > 0  # the two text deltas that arrived
    assert row["cost_nanos"] >= nanos(GPT5, row["input_tokens"], 0, row["output_tokens"]) > 0


def test_relayed_endpoints_are_not_metered(gateway: RunningGateway, fake: FakeUpstream) -> None:
    gpt = client(gateway)
    reply = gpt.responses.create(model="gpt-5", input="keep this")
    assert gpt.responses.retrieve(reply.id).output_text == reply.output_text
    assert gpt.responses.input_tokens.count(model="gpt-5", input="hello world").input_tokens == 3
    gpt.responses.delete(reply.id)
    with pytest.raises(openai.NotFoundError):
        gpt.responses.retrieve(reply.id)
    with pytest.raises(openai.BadRequestError, match="background"):
        gpt.responses.create(model="gpt-5", input="later", background=True)
    assert len(gateway.rows()) == 1  # only the create
    relayed = [r for r in fake.requests if r.path.startswith("/v1/responses/")]
    assert relayed and all(
        r.headers["authorization"] == "Bearer sk-openai-provider-secret-0001" for r in relayed
    )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.openai_url, api_key="sk-sg-wrong", max_retries=0).responses.retrieve(
            reply.id
        )


def test_cancel_is_relayed(gateway: RunningGateway) -> None:
    gpt = client(gateway)
    reply = gpt.responses.create(model="gpt-5", input="now")
    with pytest.raises(openai.BadRequestError, match="background"):
        gpt.responses.cancel(reply.id)  # the provider's answer for a foreground response


def test_budget_refuses_in_openai_format(gateway: RunningGateway) -> None:
    gateway.gw.store.create_budget(
        name="tiny", scope_type="team", scope_value=gateway.team_id, amount_nanos=1000
    )
    gateway.gw.budgets.reload()
    with pytest.raises(openai.RateLimitError) as caught:
        client(gateway).responses.create(model="gpt-5", input="x", stream=True)
    assert caught.value.response.headers["x-spendgate-budget"] == "tiny"
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "insufficient_quota"
    [row] = gateway.rows()
    assert row["status"] == "budget_blocked" and row["endpoint"] == "/v1/responses"


def test_unknown_model_refused_before_it_leaves(gateway: RunningGateway, fake: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError, match="no price"):
        client(gateway).responses.create(model="gpt-unknown-9", input="x")
    assert not [r for r in fake.requests if r.path == "/v1/responses"]


@pytest.fixture
def routed(tmp_path: Path, fake: FakeUpstream) -> Iterator[tuple[str, str, Any]]:
    policy = '[tiers.openai]\nfast = "gpt-5-mini"\n'
    policy += '[[rules]]\nname = "responses-to-fast"\nmatch.endpoint = "/v1/responses"\ntier = "fast"\n'
    yield from policy_gateway(tmp_path, fake, policy)


def test_routing_rules_apply(routed: tuple[str, str, Any]) -> None:
    url, key, gw = routed
    gpt = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, default_headers=usage_headers())
    raw = gpt.responses.with_raw_response.create(model="gpt-5", input="x")
    assert raw.headers["x-spendgate-model"] == "gpt-5-mini" and raw.parse().model == "gpt-5-mini"
    assert gw.ledger.wait_idle(10)
    [row] = gw.store.ledger_rows()
    assert (row["requested_model"], row["upstream_model"], row["route_rule"]) == (
        "gpt-5",
        "gpt-5-mini",
        "responses-to-fast",
    )
    assert row["cost_nanos"] == nanos(GPT5_MINI, 6_000, 4_000, 2_000)
    assert row["counterfactual_cost_nanos"] == USAGE_NANOS


def test_embeddings_metered_at_the_input_price(gateway: RunningGateway) -> None:
    gpt = client(gateway, **{"x-spendgate-tags": "use_case=search"})
    reply = gpt.embeddings.create(model="text-embedding-3-small", input=["first text", "the second"])
    assert [len(d.embedding) for d in reply.data] == [1536, 1536]  # base64 on the wire, decoded by the SDK
    big = client(gateway, **{"x-fake-usage": json.dumps({"prompt_tokens": 50_000})})
    big.embeddings.create(model="text-embedding-3-small", input="x")
    first, second = gateway.rows()
    assert first["input_tokens"] == reply.usage.prompt_tokens and first["use_case"] == "search"
    assert first["endpoint"] == "/v1/embeddings" and first["output_tokens"] == 0
    assert second["cost_nanos"] == round(50_000 * EMBEDDING_SMALL * 1000) == 1_000_000


def test_unknown_v1_paths_get_a_json_404_in_the_callers_format(gateway: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(gateway).completions.create(model="gpt-5", prompt="x")
    body = caught.value.body
    assert (
        isinstance(body, dict)
        and body["type"] == "invalid_request_error"
        and "/v1/completions" in body["message"]
    )
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.models.retrieve("claude-haiku-4-5")  # GET /v1/models/{id}: not served
    assert isinstance(missing.value.body, dict) and missing.value.body["error"]["type"] == "not_found_error"
    wrong_method = httpx.get(f"{gateway.openai_url}/chat/completions")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "invalid_request_error"
