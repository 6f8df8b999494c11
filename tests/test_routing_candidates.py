"""Routing's hot path against its plain reading.

The router tries only the rules a call's use case can match (router.py `candidates_by_use_case`)
and builds a rule's route once per API; `route explain` walks every rule. Both must pick the same
rule, model and reason for every call, the first time and the next: declared and inferred use
cases, named and unnamed ones, rules with and without `use_inferred`, rules that name no use
case, disabled rules, refusals, a tier with no model for the API. And the request routing sees
carries each of the call's values in its own field.
"""

from __future__ import annotations

import random
from importlib.resources import files

import pytest

from spendgate.attribution import Attribution
from spendgate.errors import PermissionDenied
from spendgate.models import Principal
from spendgate.providers.anthropic import AnthropicProvider
from spendgate.providers.base import RequestInfo, RouteFeatures
from spendgate.routing.explain import route_request_for
from spendgate.routing.policy import Policy, parse_policy
from spendgate.routing.router import Route, Router, RouteRequest

DEFAULT = (files("spendgate.routing") / "default_policy.toml").read_text()

MIXED = """
[tiers.anthropic]
fast = "claude-haiku-4-5"
standard = "claude-sonnet-4-6"

[[rules]]
name = "untagged-big-to-standard"
match = { use_case = "untagged", min_input_tokens = 1000 }
tier = "standard"

[[rules]]
name = "refuse-opus-for-chat"
match = { use_case = ["chat", "untagged"], model = "claude-opus-*" }
use_inferred = true
refuse = "chat does not need Opus"

[[rules]]
name = "tools-to-standard"
match = { tools = true }
tier = "standard"

[[rules]]
name = "off"
match = { use_case = "batch" }
tier = "fast"
enabled = false

[[rules]]
name = "inferred-batch-to-fast"
match = { use_case = ["batch", "autocomplete"] }
use_inferred = true
tier = "fast"

[[rules]]
name = "declared-review"
match = { use_case = "code-review", tags = { repo = "api" } }
model = "claude-sonnet-4-6"

[[rules]]
name = "anything-streamed"
match = { stream = true }
tier = "fast"
"""


def outcome(router: Router, req: RouteRequest, explain: bool) -> tuple[str, str | None, str] | str:
    try:
        route: Route = router.route(req, explain=explain)
    except PermissionDenied as exc:
        return f"refused: {exc.message}"
    return route.model, route.rule, route.reason


@pytest.mark.parametrize(
    "policy",
    [
        parse_policy(DEFAULT, "default"),
        parse_policy(DEFAULT.replace("enabled = false", "enabled = true"), "default, all on"),
        parse_policy(MIXED, "mixed"),
    ],
    ids=lambda p: p.source if isinstance(p, Policy) else "",
)
def test_the_candidates_pick_what_walking_every_rule_picks(policy: Policy) -> None:
    router = Router(policy)
    rng = random.Random(7)
    use_cases = ["untagged", "chat", "batch", "autocomplete", "code-review", "architecture", "other"]
    sources = ["none", "header", "metadata", "key", "inferred:autocomplete-shaped", "inferred:x"]
    fired = set()
    router.MAX_AS_ASKED = 3  # small: the as-asked routes are remembered anew many times
    shortcuts = by_rule = 0
    for _ in range(3000):
        req = RouteRequest(
            provider=rng.choice(["anthropic", "openai"]),  # MIXED has no openai tiers
            model=rng.choice(["claude-opus-4-6", "claude-haiku-4-5", "claude-sonnet-4-6", "m1", "m2"]),
            use_case=rng.choice(use_cases),
            tags=rng.choice([{}, {"repo": "api"}]),
            team="t",
            key="k",
            input_tokens=rng.choice([10, 999, 1000, 50_000]),
            tools=rng.random() < 0.4,
            thinking=rng.random() < 0.2,
            stream=rng.random() < 0.3,
            messages=rng.choice([1, 5, 80]),
            endpoint="/v1/messages",
            use_case_source=rng.choice(sources),
        )
        fast, walked = outcome(router, req, False), outcome(router, req, True)
        assert fast == walked, req
        assert outcome(router, req, False) == fast, req  # a rule's route, once remembered, is the same
        # The route by the use case alone, without a RouteRequest, when it is decided by it.
        shortcut = router.route_by_use_case(req.provider, req.model, req.use_case, req.use_case_source)
        if shortcut is not None:
            assert (shortcut.model, shortcut.rule, shortcut.reason) == fast, req
            shortcuts += 1
            by_rule += shortcut.rule is not None
        fired.add(fast[1] if isinstance(fast, tuple) else fast[:8])
    assert len(fired) >= 3, fired  # the calls reached several rules, a refusal and no rule at all
    # The default policy's rules all name use cases; MIXED has rules for any use case.
    assert shortcuts > 100 if policy.source.startswith("default") else shortcuts == 0
    assert by_rule > 100 if policy.source.startswith("default") else by_rule == 0
    assert len(router._as_asked_routes) <= 3


def test_an_allowlist_routes_every_call() -> None:
    router = Router(parse_policy(DEFAULT + '\n[allow.teams.t]\nmodels = ["claude-haiku-*"]\n', "allow"))
    # No rule names "other", but the team's allowlist refuses Opus: only the full request tells.
    assert router.route_by_use_case("anthropic", "claude-opus-4-6", "other", "none") is None
    with pytest.raises(PermissionDenied):
        router.route(
            RouteRequest("anthropic", "claude-opus-4-6", "other", {}, "t", "k", 1, False, False, False)
        )


@pytest.mark.parametrize("flags", [(True, False, False), (False, True, False), (False, False, True)])
def test_the_route_request_carries_each_field_of_the_call(flags: tuple[bool, bool, bool]) -> None:
    # route_request_for builds it positionally (cheaper on the hot path): each value in its place.
    tools, thinking, stream = flags
    info = RequestInfo("claude-opus-4-6", stream, 64, path="/v1/messages")
    principal = Principal("kid", "key-name", "o", "t", None, "CC", None, {}, None, team_name="team-name")
    who = Attribution("review", {"repo": "api"}, "sess", "agent", None, None, None, "header")
    features = RouteFeatures(tools, thinking, 9, "user", False)
    req = route_request_for(AnthropicProvider(None), info, b"x" * 400, principal, who, features)
    assert req == RouteRequest(
        provider="anthropic",
        model="claude-opus-4-6",
        use_case="review",
        tags={"repo": "api"},
        team="team-name",
        key="key-name",
        input_tokens=100,
        tools=tools,
        thinking=thinking,
        stream=stream,
        messages=9,
        endpoint="/v1/messages",
        session="sess",
        agent="agent",
        use_case_source="header",
    )
