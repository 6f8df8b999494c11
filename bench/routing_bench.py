"""Latency of the routing step alone: Router.route on the default policy (and a longer one).

    python bench/routing_bench.py [--iterations 20000]

Bounded loop, in process; prints p50/p99 in microseconds per decision.
"""

from __future__ import annotations

import argparse
import statistics
import time

from spendgate.routing.policy import load_policy, parse_policy
from spendgate.routing.router import Router, RouteRequest

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


def measure(router: Router, req: RouteRequest, iterations: int) -> tuple[float, float]:
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        router.route(req)
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


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
            "default policy, sticky session",
            Router(load_policy(None)),
            RouteRequest(use_case="autocomplete", session="s1", **base),
        ),  # type: ignore[arg-type]
        (
            "20 rules + allowlist, none match",
            Router(parse_policy(LONG_POLICY, "bench")),
            RouteRequest(use_case="untagged", **base),
        ),  # type: ignore[arg-type]
    ]
    for name, router, req in cases:
        p50, p99 = measure(router, req, args.iterations)
        print(f"{name:<45} p50 {p50:6.2f} us   p99 {p99:6.2f} us")


if __name__ == "__main__":
    main()
