"""The OpenAI Chat Completions API through Spendgate, driven by the official SDK."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from spendgate.fake_upstream import FakeUpstream
from tests.conftest import PROVIDER_OPENAI_KEY, RunningGateway

USAGE = {
    "prompt_tokens": 10_000,
    "completion_tokens": 2000,
    "prompt_tokens_details": {"cached_tokens": 4000},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
# gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per MTok; prompt_tokens INCLUDES cached.
MINI_NANOS = (6000 * 0.15 + 4000 * 0.075 + 2000 * 0.60) * 1000


def client(gateway: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.openai_url, api_key=gateway.key, max_retries=0, default_headers=headers or None
    )


def test_json_call_splits_cached_tokens_out_of_prompt_tokens(gateway: RunningGateway) -> None:
    reply = client(gateway, **{"x-fake-usage": json.dumps(USAGE)}).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "summarise"}]
    )
    assert reply.choices[0].message.content
    [row] = gateway.rows()
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (6000, 4000, 2000)
    assert row["cost_nanos"] == MINI_NANOS == 2_400_000
    assert row["provider"] == "openai" and row["endpoint"] == "/v1/chat/completions"
    assert "gpt-4o-mini" in row["price_ref"]


def test_reasoning_tokens_are_recorded_and_billed_as_output(gateway: RunningGateway) -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 900,
        "completion_tokens_details": {"reasoning_tokens": 700},
    }
    client(gateway, **{"x-fake-usage": json.dumps(usage)}).chat.completions.create(
        model="o3", messages=[{"role": "user", "content": "think"}]
    )
    [row] = gateway.rows()
    assert (row["output_tokens"], row["reasoning_tokens"]) == (900, 700)
    assert row["cost_nanos"] == (100 * 2 + 900 * 8) * 1000  # o3: $2 in, $8 out


def test_stream_with_usage_requested(gateway: RunningGateway) -> None:
    stream = client(gateway, **{"x-fake-usage": json.dumps(USAGE)}).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 10_000
    [row] = gateway.rows()
    assert row["streamed"] == 1 and row["estimated"] == 0 and row["cost_nanos"] == MINI_NANOS


def _raw_chunks(url: str, key: str, body: dict[str, Any], headers: dict[str, str]) -> list[dict[str, Any]]:
    with httpx.stream(
        "POST", f"{url}/chat/completions", json=body, headers={"authorization": f"Bearer {key}", **headers}
    ) as response:
        text = response.read().decode()
    frames = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    out = []
    for frame in frames[:-1]:
        chunk = json.loads(frame)
        for volatile in ("id", "created", "system_fingerprint"):
            chunk.pop(volatile, None)
        out.append(chunk)
    return out


def test_stream_without_usage_request_is_metered_yet_unchanged_for_the_client(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}
    headers = {"x-fake-usage": json.dumps(USAGE)}
    via_gateway = _raw_chunks(gateway.openai_url, gateway.key, body, headers)
    direct = _raw_chunks(fake.openai_url, PROVIDER_OPENAI_KEY, body, headers)
    assert via_gateway == direct
    assert all("usage" not in chunk for chunk in via_gateway)
    # ...yet the gateway asked upstream for usage and metered it exactly.
    sent = json.loads(fake.requests[-2].body)
    assert sent["stream_options"] == {"include_usage": True}
    [row] = gateway.rows()
    assert row["cost_nanos"] == MINI_NANOS and row["estimated"] == 0


def test_sdk_stream_without_usage_sees_no_usage_chunk(gateway: RunningGateway) -> None:
    stream = client(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True
    )
    chunks = list(stream)
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    [row] = gateway.rows()
    assert row["output_tokens"] > 0 and row["estimated"] == 0


@pytest.mark.parametrize(
    ("mode", "status", "exc"),
    [
        ("error-429", 429, openai.RateLimitError),
        ("error-500", 500, openai.InternalServerError),
        ("error-400", 400, openai.BadRequestError),
    ],
)
def test_upstream_errors_come_back_unchanged(
    gateway: RunningGateway, fake: FakeUpstream, mode: str, status: int, exc: type[Exception]
) -> None:
    with pytest.raises(exc):
        client(gateway, **{"x-fake-mode": mode}).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    via = httpx.post(
        f"{gateway.openai_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {gateway.key}", "x-fake-mode": mode},
    )
    direct = httpx.post(
        f"{fake.openai_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {PROVIDER_OPENAI_KEY}", "x-fake-mode": mode},
    )
    assert via.status_code == direct.status_code == status
    assert via.json() == direct.json()
    rows = gateway.rows()
    assert len(rows) == 2 and all(r["status"] == "upstream_error" and r["cost_nanos"] == 0 for r in rows)


def test_cut_stream_is_estimated_from_the_prompt_never_zero(gateway: RunningGateway) -> None:
    with pytest.raises(Exception) as cut:
        stream = client(gateway, **{"x-fake-mode": "stream-cut"}).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "word " * 400}], stream=True
        )
        for _ in stream:
            pass
    assert isinstance(cut.value, openai.APIError | httpx.HTTPError) or "incomplete" in str(cut.value)
    [row] = gateway.rows()
    assert row["estimated"] == 1 and row["input_tokens"] >= 400 and row["cost_nanos"] > 0


def test_metadata_tags_attribute_the_call(gateway: RunningGateway) -> None:
    client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        metadata={"use_case": "autocomplete", "tags": "repo=web"},
        store=True,
    )
    [row] = gateway.rows()
    assert row["use_case"] == "autocomplete" and row["tags"] == {"repo": "web"}


def test_models_list_in_openai_format(gateway: RunningGateway) -> None:
    ids = [m.id for m in client(gateway).models.list()]
    assert "gpt-4o-mini" in ids
