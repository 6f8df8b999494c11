"""The inferrer remembers its answers (infer.py): a remembered answer must be the one trying the
rules in order gives, for calls that differ in anything a rule reads (a header, the key, a tag, a
size), and a new rule set must not see the old one's answers.

The oracle below tries every rule in file order with nothing remembered; the inferrer under test
sees thousands of varied calls, each twice, in an order that mixes them.
"""

from __future__ import annotations

import random
from typing import Any

from spendgate.inference.infer import Inferred, Inferrer
from spendgate.inference.rules import UseCaseRules, load_rules, parse_rules
from spendgate.inference.shape import CallShape
from spendgate.models import Principal
from spendgate.providers.base import RequestInfo, RouteFeatures

# Every kind of condition a rule file can hold, against the values the calls below take.
EVERY_CONDITION = """
[clients.tool]
headers = { "user-agent" = "tool/*", "x-tool" = "yes" }

[clients.other]
headers = { "user-agent" = "other/*" }

[[rules]]
name = "by-header"
use_case = "h"
match.header = { "x-job" = ["nightly*", "weekly"] }

[[rules]]
name = "by-tag-and-team"
use_case = "t"
match = { tags = { repo = "api" }, team = "platform" }

[[rules]]
name = "tool-thinking"
use_case = "tt"
match = { client = "tool", thinking = true, stream = false }

[[rules]]
name = "by-model-provider"
use_case = "mp"
match = { model = "claude-opus-*", provider = ["anthropic", "bedrock"], max_tokens_at_least = 1000 }

[[rules]]
name = "by-endpoint-role"
use_case = "er"
match = { endpoint = "/v1/chat/*", last_role = ["tool", "system"], min_messages = 3 }

[[rules]]
name = "disabled"
use_case = "never"
enabled = false

[[rules]]
name = "big-input"
use_case = "big"
match = { min_input_tokens = 5000, max_input_tokens = 20000, key = "ci-*" }

[[rules]]
name = "tool-rest"
use_case = "tool"
match.client = "tool"

[[rules]]
name = "small"
use_case = "small"
match = { max_messages = 2, max_tokens_at_most = 256, tools = false, tool_results = false }
"""

HEADERS: list[dict[str, str]] = [
    {},
    {"user-agent": "wrk"},
    {"user-agent": "claude-cli/2.0.1 (external, cli)", "x-app": "cli"},
    {"user-agent": "claude-cli/2.0.1 (external, sdk-py)"},
    {"x-app": "cli", "x-claude-code-agent-id": "agent-7"},
    {"user-agent": "codex_exec/0.40", "originator": "codex_exec"},
    {"user-agent": "OpenAI/Python 1.99", "x-stainless-raw-response": "true"},
    {"user-agent": "Anthropic/Python 0.60"},
    {"user-agent": "tool/1"},
    {"user-agent": "other/1", "x-tool": "yes"},
    {"x-job": "nightly-build"},
    {"x-job": "weekly", "user-agent": "tool/2"},
    {"x-client-request-id": "a-different-id-every-call"},
]


def oracle(rules: UseCaseRules, shape: CallShape) -> Inferred | None:
    for rule in rules.rules:
        if rule.enabled and rule.mismatch(shape) is None:
            return Inferred(rule.use_case, rule.source, rule.evidence(shape))
    return None


def random_call(rng: random.Random) -> dict[str, Any]:
    return {
        "provider": rng.choice(["anthropic", "openai", "bedrock"]),
        "path": rng.choice(["/v1/messages", "/v1/chat/completions", "/v1/embeddings", "/v1/batches"]),
        "model": rng.choice(["claude-opus-4-6", "claude-haiku-4-5", "gpt-4o-mini"]),
        "stream": rng.random() < 0.5,
        "max_tokens": rng.choice([None, 64, 256, 257, 999, 1000, 32000]),
        "features": RouteFeatures(
            tools=rng.random() < 0.5,
            thinking=rng.random() < 0.3,
            messages=rng.choice([0, 1, 2, 3, 4, 40]),
            last_role=rng.choice(["", "user", "assistant", "tool", "system"]),
            tool_results=rng.random() < 0.3,
        ),
        "key": rng.choice(["ada", "ci", "ci-nightly", "build-ci", "x-ci-y"]),
        "team": rng.choice(["platform", "web"]),
        "tags": rng.choice([{}, {"repo": "api"}, {"repo": "web"}, {"env": "prod"}]),
        "headers": rng.choice(HEADERS),
        "body_bytes": 4 * rng.choice([10, 250, 4000, 4001, 4999, 5000, 20000, 20001]) + rng.choice([0, 3]),
    }


def shape_of(inferrer: Inferrer, call: dict[str, Any]) -> CallShape:
    info = RequestInfo(call["model"], call["stream"], call["max_tokens"], path=call["path"])
    principal = Principal("k", call["key"], "o", "t", None, "CC", None, {}, None, team_name=call["team"])
    return inferrer.shape_of(
        call["provider"], info, call["features"], principal, call["tags"], call["headers"], call["body_bytes"]
    )


def neighbours(rng: random.Random, call: dict[str, Any]) -> list[dict[str, Any]]:
    """The call, and calls like it but for one value each: what a memo keyed too coarsely mixes up."""
    other = random_call(rng)
    return [call, *({**call, name: other[name]} for name in call)]


def test_a_remembered_answer_is_the_rules_answer() -> None:
    rng = random.Random(16)
    for rules in (load_rules(None), parse_rules(EVERY_CONDITION, "every-condition.toml")):
        inferrer = Inferrer(rules)
        calls = [near for _ in range(300) for near in neighbours(rng, random_call(rng))]
        named = set()
        for call in [*calls, *rng.sample(calls, len(calls))]:
            shape = shape_of(inferrer, call)
            assert (shape.client, shape.client_via) == rules.client_of(call["headers"])
            found = inferrer.infer(shape)
            assert found == oracle(rules, shape), call
            named.add(found.source if found else None)
        # the calls reached most rules, so the check above covers each kind of condition
        assert len(named) >= len([r for r in rules.rules if r.enabled]) - 2, named


def infer_call(inferrer: Inferrer, call: dict[str, Any]) -> Inferred | None:
    info = RequestInfo(call["model"], call["stream"], call["max_tokens"], path=call["path"])
    principal = Principal("k", call["key"], "o", "t", None, "CC", None, {}, None, team_name=call["team"])
    return inferrer.infer_call(
        call["provider"], info, call["features"], principal, call["tags"], call["headers"], call["body_bytes"]
    )


def test_a_call_remembered_by_its_values_gets_the_rules_answer() -> None:
    # infer_call remembers by the values the shape is built from, before any shape is built: the
    # same neighbours (one value changed, a header no rule reads included) must not be mixed up.
    rng = random.Random(17)
    for rules in (load_rules(None), parse_rules(EVERY_CONDITION, "every-condition.toml")):
        for limit in (Inferrer.MAX_REMEMBERED, 8):
            inferrer = Inferrer(rules)
            inferrer.MAX_REMEMBERED = limit  # type: ignore[misc]
            oracle_shapes = Inferrer(rules)  # shapes only: nothing of it is remembered here
            calls = [near for _ in range(200) for near in neighbours(rng, random_call(rng))]
            for call in [*calls, *rng.sample(calls, len(calls))]:
                assert infer_call(inferrer, call) == oracle(rules, shape_of(oracle_shapes, call)), call


def test_a_full_memo_starts_over_and_still_answers_right() -> None:
    rng = random.Random(18)
    rules = parse_rules(EVERY_CONDITION, "every-condition.toml")
    inferrer = Inferrer(rules)
    inferrer.MAX_REMEMBERED = 8  # type: ignore[misc]
    for _ in range(500):
        shape = shape_of(inferrer, random_call(rng))
        assert inferrer.infer(shape) == oracle(rules, shape)


def test_the_evidence_shows_this_call_s_sizes() -> None:
    # Two calls alike but for their size name the same rule; each row's evidence has its own size.
    inferrer = Inferrer(load_rules(None))
    small = {"provider": "anthropic", "path": "/v1/messages", "model": "claude-haiku-4-5", "stream": False,
             "max_tokens": 64, "features": RouteFeatures(False, False, 1, "user", False), "key": "ada",
             "team": "platform", "tags": {}, "headers": {"user-agent": "wrk"}}  # fmt: skip
    first = inferrer.infer(shape_of(inferrer, {**small, "body_bytes": 400}))
    second = inferrer.infer(shape_of(inferrer, {**small, "body_bytes": 800}))
    assert first is not None and second is not None
    assert first.source == second.source == "inferred:autocomplete-shaped"
    assert first.evidence.endswith("max_input_tokens 100")
    assert second.evidence.endswith("max_input_tokens 200")


def test_a_new_rule_set_answers_with_its_own_rules() -> None:
    call = random_call(random.Random(1)) | {"headers": {"user-agent": "tool/3"}}
    before = Inferrer(parse_rules(EVERY_CONDITION, "before.toml"))
    found = before.infer(shape_of(before, call))
    assert found is not None and found.use_case in {"tool", "tt", "h"}
    after_rules = parse_rules(EVERY_CONDITION.replace('"tool/*"', '"nothing/*"'), "after.toml")
    after = Inferrer(after_rules)
    shape = shape_of(after, call)
    assert shape.client is None and after.infer(shape) == oracle(after_rules, shape)
    assert before.infer(shape_of(before, call)) == found  # the old one is unchanged
