"""Latency of the routing step alone: Router.route on the default policy (and a longer one), and of
use-case inference (attribute_call on the built-in rules) for calls that declare no use case.

    python bench/routing_bench.py [--iterations 20000]

Bounded loop, in process; prints p50/p99 in microseconds per decision.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from spendgate.attribution import attribute_call
from spendgate.inference.infer import Inferrer
from spendgate.inference.rules import load_rules
from spendgate.models import Principal
from spendgate.providers import offline_provider
from spendgate.routing.policy import load_policy, parse_policy
from spendgate.routing.router import Held, Router, RouteRequest

LONG_POLICY = (
    """
[tiers.anthropic]
fast = "claude-haiku-4-5"
standard = "claude-sonnet-4-6"
deep = "claude-opus-4-6"
"""
    + "".join(
        f"""
[[rules]]
name = "rule-{i}"
match.use_case = ["use-case-{i}"]
match.model = ["claude-*"]
match.max_input_tokens = {1000 * (i + 1)}
tier = "fast"
"""
        for i in range(20)
    )
    + """
[allow.teams.platform]
models = ["claude-*"]
"""
)


def measure(step: Callable[[], Any], iterations: int) -> tuple[float, float]:
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


# Calls without a declared use case, as clients send them (headers and a body of the same shape).
INFERENCE_CASES: list[tuple[str, str, dict[str, str], dict[str, Any]]] = [
    (
        "Claude Code main loop (rule 3 of 14)",
        "anthropic",
        {"user-agent": "claude-cli/2.1.332 (external, cli)", "x-app": "cli", "x-claude-code-session-id": "s"},
        {
            "model": "claude-opus-4-6",
            "max_tokens": 32000,
            "stream": True,
            "tools": [{"name": f"tool{i}", "input_schema": {}} for i in range(12)],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 2000}]}] * 8,
        },
    ),
    (
        "SDK chat call (rule 14 of 14)",
        "openai",
        {"user-agent": "OpenAI/Python 1.99.0"},
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x" * 2000}]},
    ),
    (
        "unknown client, no rule matches",
        "anthropic",
        {"user-agent": "curl/8.5.0"},
        {"model": "claude-haiku-4-5", "max_tokens": 2000, "messages": [{"role": "user", "content": "x"}]},
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    base = dict(
        provider="anthropic",
        model="claude-sonnet-4-6",
        tags={"repo": "api"},
        team="platform",
        key="k",
        input_tokens=3000,
        tools=True,
        thinking=False,
        stream=True,
        messages=6,
    )
    cases = [
        (
            "default policy, tagged (rule 2 matches)",
            Router(load_policy(None)),
            RouteRequest(use_case="code-review", **base),
        ),  # type: ignore[arg-type]
        (
            "default policy, untagged (no rule matches)",
            Router(load_policy(None)),
            RouteRequest(use_case="untagged", **base),
        ),  # type: ignore[arg-type]
        (
            "default policy, sticky session (held decision)",
            Router(load_policy(None)),
            RouteRequest(use_case="autocomplete", session="s1", **base),
        ),  # type: ignore[arg-type]
        (
            "20 rules + allowlist, none match",
            Router(parse_policy(LONG_POLICY, "bench")),
            RouteRequest(use_case="untagged", **base),
        ),  # type: ignore[arg-type]
    ]
    held = Held("claude-haiku-4-5", "inline-and-batch-to-fast")
    for name, router, req in cases:
        kept = held if req.session else None
        p50, p99 = measure(lambda r=router, q=req, h=kept: r.route(q, held=h), args.iterations)  # type: ignore[misc]
        print(f"{name:<45} p50 {p50:6.2f} us   p99 {p99:6.2f} us")
    inferrer = Inferrer(load_rules(None))
    principal = Principal("k", "ada-laptop", "o", "t", None, "CC", None, {}, None, team_name="platform")
    tagged = {**INFERENCE_CASES[0][2], "x-spendgate-tags": "use_case=code-review"}
    provider = offline_provider("anthropic")
    raw = orjson.dumps(INFERENCE_CASES[0][3])
    info = provider.parse(raw, provider.path)
    features = provider.route_features(info)
    declared = functools.partial(
        attribute_call, principal, tagged, "anthropic", info, features, len(raw), inferrer
    )
    p50, p99 = measure(declared, args.iterations)
    print(f"{'attribute, declared (no inference)':<45} p50 {p50:6.2f} us   p99 {p99:6.2f} us")
    for name, provider_name, headers, body in INFERENCE_CASES:
        provider = offline_provider(provider_name)
        raw = orjson.dumps(body)
        info = provider.parse(raw, provider.path)
        features = provider.route_features(info)

        def infer(
            h: dict[str, str] = headers,
            p: str = provider_name,
            i: Any = info,
            f: Any = features,
            n: int = len(raw),
        ) -> Any:
            return attribute_call(principal, h, p, i, f, n, inferrer)

        p50, p99 = measure(infer, args.iterations)
        print(f"{'attribute + infer: ' + name:<45} p50 {p50:6.2f} us   p99 {p99:6.2f} us")


if __name__ == "__main__":
    main()
