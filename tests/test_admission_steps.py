"""Admission's shortcuts (admission.py) decide what the plain steps decide: a call that declares its
use case is attributed without its route features, and a routing rule that reads them still sees
them; the body is read as `read_body` reads it."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from spendgate.admin.service import create_key
from spendgate.admission import Admitted, read_body
from spendgate.app import build_endpoint, build_gateway
from spendgate.attribution import TAGS_HEADER, attribute_call, attribute_features
from spendgate.auth import Keyring, hash_key, presented_key
from spendgate.errors import InvalidRequest, RequestTooLarge
from spendgate.gateway import Gateway
from spendgate.inference.infer import Inferrer
from spendgate.inference.rules import load_rules
from spendgate.models import Principal
from spendgate.providers.anthropic import AnthropicProvider
from spendgate.providers.base import RouteFeatures, last_turn
from spendgate.proxy import HeaderNames
from spendgate.settlement import Settlement
from tests.conftest import gateway_settings

PRINCIPAL = Principal("kid", "key", "o", "t", None, "CC", None, {}, None, team_name="team")
TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]
POLICY = """
[tiers.anthropic]
fast = "claude-haiku-4-5"
standard = "claude-sonnet-4-6"
deep = "claude-opus-4-6"

[[rules]]
name = "review-tools-to-deep"
match = { use_case = "code-review", tools = true }
tier = "deep"

[[rules]]
name = "review-to-standard"
match.use_case = "code-review"
tier = "standard"

[[rules]]
name = "background-to-fast"
match = { use_case = "claude-code-background" }
use_inferred = true
tier = "fast"
"""


def body(tools: bool) -> dict[str, Any]:
    call: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return {**call, "tools": TOOLS} if tools else call


CLAUDE_CODE = {"x-app": "cli", "user-agent": "claude-cli/2.0 (x, cli)"}
PRINCIPALS = [
    PRINCIPAL,
    Principal("kid", "key", "o", "t", None, "CC", "triage", {}, None, team_name="team"),
    Principal("kid", "key", "o", "t", None, "CC", None, {"repo": "web", "env": "x"}, None, team_name="t"),
    Principal("kid", "key", "o", "t", None, "CC", None, {"use_case": "ops"}, None, team_name="team"),
]


@pytest.mark.parametrize(
    "headers",
    [
        {TAGS_HEADER: "use_case=code-review"},
        {TAGS_HEADER: "repo=api,use_case=code-review,team=x", **CLAUDE_CODE},
        {TAGS_HEADER: "repo=api", **CLAUDE_CODE},
        {TAGS_HEADER: " , "},
        {TAGS_HEADER: ""},
        CLAUDE_CODE,
        {},
    ],
)
@pytest.mark.parametrize("metadata", [None, {"use_case": "meta"}, {"tags": "repo=meta"}])
@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("tools", [False, True])
def test_attribute_features_attributes_as_attribute_call(
    headers: dict[str, str], metadata: dict[str, Any] | None, principal: Principal, tools: bool
) -> None:
    provider, inferrer = AnthropicProvider(None), Inferrer(load_rules(None))
    raw = orjson.dumps(body(tools) if metadata is None else {**body(tools), "metadata": metadata})
    info = provider.parse(raw, "/v1/messages")
    features = provider.route_features(info)
    expected = attribute_call(principal, headers, provider.name, info, features, len(raw), inferrer)
    who, read = attribute_features(principal, headers, provider, info, len(raw), inferrer)
    assert who == expected
    # A declared use case needs no features; inference read them (and hands them on to routing).
    assert read == (None if expected.use_case_source in ("header", "metadata", "key") else features)


def test_one_calls_tags_are_its_own_in_attribute_features() -> None:
    provider, inferrer = AnthropicProvider(None), Inferrer(load_rules(None))
    raw = orjson.dumps(body(False))
    info = provider.parse(raw, "/v1/messages")
    headers = {TAGS_HEADER: "use_case=review,repo=api"}
    first, _ = attribute_features(PRINCIPAL, headers, provider, info, len(raw), inferrer)
    first.tags["repo"] = "changed"
    second, _ = attribute_features(PRINCIPAL, headers, provider, info, len(raw), inferrer)
    assert (second.use_case, second.tags) == ("review", {"repo": "api"})


def admit(
    gw: Gateway, key: str, headers: dict[str, str], call: dict[str, Any], split: int = 0, receive: Any = None
) -> Admitted:
    """`split` > 0: the body arrives in that many messages; `receive`: these messages instead."""
    endpoint = build_endpoint(gw, gw.anthropic, Settlement(gw.budgets, gw.ledger, gw.metrics))
    raw = orjson.dumps(call)
    sent = {"x-api-key": key, "content-length": str(len(raw)), **headers}
    scope = {"type": "http", "path": "/v1/messages", "query_string": b"", "headers": []}
    size = -(-len(raw) // split) if split else len(raw)
    chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    receive = receive or messages(*[part(chunk, i < len(chunks) - 1) for i, chunk in enumerate(chunks)])
    return asyncio.run(endpoint.admission.admit("sg-test", 0.0, scope, sent, receive))


def test_a_rule_that_reads_the_shape_routes_a_declared_call(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = gateway_settings(tmp_path, _Fake(), routing_policy_file=policy)  # type: ignore[arg-type]
    gw = build_gateway(settings)
    gw.store.create_org("acme")
    gw.store.create_team("acme", "platform", "CC-1")
    _, key = create_key(gw.store, name="k", team="platform")
    gw.keyring.reload()
    try:
        review = {TAGS_HEADER: "use_case=code-review"}
        claude_code = CLAUDE_CODE
        for _ in range(2):  # the first call builds each rule's route; the next finds it
            with_tools, without = admit(gw, key, review, body(True)), admit(gw, key, review, body(False))
            assert (with_tools.model, with_tools.route_rule) == ("claude-opus-4-6", "review-tools-to-deep")
            assert (without.model, without.route_rule) == ("claude-sonnet-4-6", "review-to-standard")
            inferred = admit(gw, key, claude_code, body(False))
            assert inferred.who.use_case_source == "inferred:claude-code-background"
            assert (inferred.model, inferred.route_rule) == ("claude-haiku-4-5", "background-to-fast")
            assert admit(gw, key, claude_code, body(True)).who.use_case == "claude-code"
        whole, parts = admit(gw, key, review, body(True)), admit(gw, key, review, body(True), split=3)
        assert parts.request.body == whole.request.body and parts.model == whole.model == "claude-opus-4-6"
        with pytest.raises(RequestTooLarge):
            admit(gw, key, review, {**body(False), "pad": "x" * settings.max_body_bytes}, split=2)
        big = b"x" * (settings.max_body_bytes + 1)
        for parts in ([part(big)], [part(b"{", True), part(big)]):  # no content-length says so first
            with pytest.raises(RequestTooLarge):
                admit(gw, key, {**review, "content-length": ""}, {}, receive=messages(*parts))
        for parts in ([GONE], [part(b"{", True), GONE]):
            with pytest.raises(InvalidRequest, match="disconnected"):
                admit(gw, key, review, {}, receive=messages(*parts))
        empty = messages(part(b"", False))
        with pytest.raises(InvalidRequest, match="not valid JSON"):  # an empty body is read, then refused
            admit(gw, key, review, {}, receive=empty)
    finally:
        gw.store.close()


class _Fake:
    url = openai_url = "http://127.0.0.1:9"  # never called: admission sends nothing


def messages(*parts: dict[str, Any]) -> Any:
    queue = list(parts)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def part(body: bytes | None = None, more: bool | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "http.request"}
    if body is not None:
        message["body"] = body
    if more is not None:
        message["more_body"] = more
    return message


GONE = {"type": "http.disconnect"}


@pytest.mark.parametrize(
    ("parts", "declared", "expected"),
    [
        ([part(b"abc")], None, b"abc"),
        ([part(b"abc", False)], "3", b"abc"),
        ([part()], None, b""),
        ([part(b"ab", True), part(b"c")], None, b"abc"),
        ([part(b"a", True), part(more=True), part(b"bc", False)], None, b"abc"),
        ([part(b"abcdefghij")], "10", b"abcdefghij"),
        ([part(b"abcdefghijk")], None, RequestTooLarge),
        ([part(b"abc")], "11", RequestTooLarge),
        ([part(b"abcdef", True), part(b"ghijk")], None, RequestTooLarge),
        ([GONE], None, InvalidRequest),
        ([part(b"ab", True), GONE], None, InvalidRequest),
    ],
)
def test_read_body(parts: list[dict[str, Any]], declared: str | None, expected: Any) -> None:
    if isinstance(expected, bytes):
        assert asyncio.run(read_body(messages(*parts), declared, 10)) == expected
    else:
        with pytest.raises(expected):
            asyncio.run(read_body(messages(*parts), declared, 10))


@pytest.mark.parametrize("secret", ["sk-sg-" + "a" * 43, "", "ключ", "x" * 1000])
def test_a_key_hashes_to_its_sha256(secret: str) -> None:
    assert hash_key(secret) == hashlib.sha256(secret.encode()).hexdigest()


@pytest.mark.parametrize(
    ("headers", "found"),
    [
        ({"x-api-key": " sk-good "}, True),
        ({"authorization": "Bearer sk-good"}, True),
        ({"authorization": "bearer  sk-good "}, True),
        ({"x-api-key": "", "authorization": "Bearer sk-good"}, True),
        ({"x-api-key": "   ", "authorization": "Bearer sk-good"}, False),  # x-api-key wins, and is blank
        ({"x-api-key": "sk-bad", "authorization": "Bearer sk-good"}, False),
        ({"authorization": "Basic sk-good"}, False),
        ({}, False),
    ],
)
def test_a_known_key_is_found_where_authenticate_finds_it(headers: dict[str, str], found: bool) -> None:
    keyring = Keyring(lambda key_hash=None: {hash_key("sk-good"): PRINCIPAL}, refresh_s=60)
    keyring.reload()
    assert (keyring.known(headers) is PRINCIPAL) is found
    assert presented_key(headers) == ("sk-good" if found else presented_key(headers))
    if found:
        assert asyncio.run(keyring.authenticate(headers)) is PRINCIPAL


def test_remembered_header_names_decode_as_decoding_afresh() -> None:
    rng = random.Random(7)
    names = HeaderNames()
    pool = [f"x-h{i}".encode() for i in range(HeaderNames.MAX_NAMES * 2)] + [b"x-\xe9t\xe9", b"host"]
    for _ in range(300):  # past the bound: the memo starts over meanwhile
        raw = [(rng.choice(pool), bytes(rng.choices(b"ab\xe9 ", k=3))) for _ in range(rng.randint(0, 12))]
        expected = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}  # the last value wins
        assert names.decode(raw) == expected
        assert len(names._names) <= HeaderNames.MAX_NAMES


def test_parse_refuses_what_it_refused_before() -> None:
    provider = AnthropicProvider(None)
    ok = {"model": "m", "max_tokens": 5, "messages": []}
    for bad, reason in [
        (b"{", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'"x"', "must be a JSON object"),
        (orjson.dumps({**ok, "max_tokens": 0}), "max_tokens: must be a whole number"),
        (orjson.dumps({**ok, "max_tokens": True}), "max_tokens: must be a whole number"),
        (orjson.dumps({**ok, "max_tokens": 2.0}), "max_tokens: must be a whole number"),
        (orjson.dumps({**ok, "max_tokens": 10**10}), "max_tokens: must be a whole number"),
        (orjson.dumps({**ok, "max_tokens": None}), "max_tokens: Field required"),
        (orjson.dumps({"model": "m", "messages": []}), "max_tokens: Field required"),
    ]:
        with pytest.raises(InvalidRequest, match=reason):
            provider.parse(bad, "/v1/messages")
    assert provider.parse(orjson.dumps({**ok, "max_tokens": 10**9}), "/v1/messages").max_tokens == 10**9
    assert (
        provider.parse(orjson.dumps({**ok, "max_tokens": None}), "/v1/messages/count_tokens").max_tokens
        is None
    )


def features_by_last_turn(body: dict[str, Any]) -> RouteFeatures:
    """Anthropic's route features as `last_turn` reads them (what route_features inlines)."""
    messages, thinking = body.get("messages"), body.get("thinking")
    role, results = last_turn(messages, "tool_result")
    return RouteFeatures(
        bool(body.get("tools")),
        isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
        len(messages) if isinstance(messages, list) else 0,
        role,
        results,
    )


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": "hi"}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text"}]}],
        [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}],
        [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "tool_result"}]}],
        [{"role": 7, "content": "x"}],
        [{"content": "x"}],
        [{"role": "u" * 50, "content": None}],
        ["not an object"],
        [{"role": "user", "content": "x"}, 3],
    ],
)
@pytest.mark.parametrize("extra", [{}, {"tools": TOOLS, "thinking": {"type": "enabled"}}, {"thinking": "on"}])
def test_route_features_read_the_last_turn_as_it_does(messages: list[Any], extra: dict[str, Any]) -> None:
    provider = AnthropicProvider(None)
    call = {"model": "m", "max_tokens": 5, "messages": messages, **extra}
    info = provider.parse(orjson.dumps(call), "/v1/messages")
    assert provider.route_features(info) == features_by_last_turn(call)
