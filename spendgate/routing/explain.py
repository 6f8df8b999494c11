"""What routing sees of a call, shared by the proxy and `spendgate route explain`.

Building the `RouteRequest` in one place keeps `route explain` honest: it routes exactly
the request the gateway would.
"""

from __future__ import annotations

from spendgate.attribution import Attribution
from spendgate.models import Principal
from spendgate.providers.base import Provider, RequestInfo, RouteFeatures
from spendgate.routing.policy import Policy, Rule
from spendgate.routing.router import RouteRequest, complexity_parts, mismatch

__all__ = ["complexity_parts", "fallback_models", "first_match", "route_request_for"]


def route_request_for(
    provider: Provider,
    info: RequestInfo,
    body: bytes,
    principal: Principal,
    who: Attribution,
    features: RouteFeatures | None = None,
) -> RouteRequest:
    """The routing view of one parsed, attributed request (`features`: the provider's, when the
    caller has them already)."""
    if features is None:
        features = provider.route_features(info)
    # In RouteRequest's field order: keyword arguments cost twice as much, on every call.
    return RouteRequest(
        provider.name,
        info.model,
        who.use_case,
        who.tags,
        principal.team_name,  # team
        principal.key_name,  # key
        len(body) // 4,  # input_tokens: ~4 bytes a token, cheap and good enough to route on
        features.tools,
        features.thinking,
        info.stream,
        features.messages,
        info.path,  # endpoint
        who.session_id,  # session
        who.agent_id,  # agent
        who.use_case_source,
    )


def first_match(policy: Policy, req: RouteRequest) -> tuple[Rule | None, tuple[str, ...]]:
    """The rule that fires and one line per rule evaluated, as `Router.route(explain=True)` traces
    them; usable when routing refuses the call (the router raises, so its trace is lost)."""
    trace: list[str] = []
    for rule in policy.rules:
        if not rule.enabled:
            trace.append(f"{rule.name}: disabled")
            continue
        failed = mismatch(rule.match, req)
        trace.append(f"{rule.name}: " + ("MATCH" if failed is None else f"no ({failed})"))
        if failed is None:
            return rule, tuple(trace)
    return None, tuple(trace)


def fallback_models(policy: Policy, model: str) -> tuple[str, ...]:
    """The models a call to `model` may be tried with, in order (one level, as forward.py plans)."""
    return (model, *policy.fallbacks.models.get(model, ()))
