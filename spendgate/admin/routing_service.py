"""Routing operations for people: explain a request's route, show a policy, report savings.

Shared by the CLI (and any admin endpoint that wants them); nothing here calls a provider.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any

from spendgate.admin.service import normalize_time
from spendgate.attribution import attribute_call
from spendgate.auth import KEY_PREFIX, hash_key
from spendgate.clock import utc_now_iso
from spendgate.dimensions import SAVINGS_BY, column_of
from spendgate.errors import ModelNotPriced, Refused
from spendgate.inference.infer import Inferrer
from spendgate.models import Principal
from spendgate.pricing import NANOS_PER_USD, ModelPrice, Pricer, format_usd
from spendgate.providers import PROVIDERS, offline_provider
from spendgate.providers.base import Provider
from spendgate.routing.baseline import REQUESTED, baseline_costs
from spendgate.routing.explain import complexity_parts, fallback_models, first_match, route_request_for
from spendgate.routing.policy import Policy, Rule, load_policy
from spendgate.routing.router import Route, Router, RouteRequest
from spendgate.store.base import Conflict, NotFound
from spendgate.store.principals import PrincipalStore
from spendgate.store.spend import SpendStore

SAVINGS_COLUMNS = ("id", "requests", "routed_requests", "cost_usd", "counterfactual_usd", "savings_usd")


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    policy: Policy
    raw: dict[str, Any]  # the TOML as written: globs read better than their compiled regexes


def load(path: Path | None) -> LoadedPolicy:
    """The policy at `path` (None: the built-in one); PolicyError when it is missing or invalid."""
    policy = load_policy(path)
    text = (
        path.read_text()
        if path is not None
        else (files("spendgate.routing") / "default_policy.toml").read_text()
    )
    return LoadedPolicy(policy, tomllib.loads(text))


def policy_view(loaded: LoadedPolicy) -> dict[str, Any]:
    """The policy in force, in evaluation order, as plain data."""
    policy, raw_rules = loaded.policy, loaded.raw.get("rules", [])
    rules = []
    for rule, raw in zip(policy.rules, raw_rules, strict=True):
        if rule.refuse is not None:
            action = f"refuse: {rule.refuse}"
        elif rule.model is not None:
            action = f"model {rule.model}"
        else:
            action = f"tier {rule.tier}"
        resolved = {p: rule.model or policy.tier_model(p, rule.tier or "") for p in policy.tiers}
        rules.append(
            {
                "name": rule.name,
                "match": raw.get("match", {}),
                "action": action,
                "models": {} if rule.refuse is not None else {p: m for p, m in resolved.items() if m},
                "sticky": rule.sticky,
                "use_inferred": rule.match.use_inferred,
                "enabled": rule.enabled,
                "why": rule.why,
            }
        )
    fallbacks = policy.fallbacks
    return {
        "source": policy.source,
        "tiers": policy.tiers,
        "rules": rules,
        "allow": {scope: _allowlists(loaded, scope) for scope in ("teams", "keys")},
        "fallbacks": {
            "retries": fallbacks.retries,
            "backoff_ms": fallbacks.backoff_ms,
            "max_retry_after_ms": fallbacks.max_retry_after_ms,
            "on_status": sorted(fallbacks.on_status),
            "models": {m: list(chain) for m, chain in fallbacks.models.items()},
            "deployments": {p: list(urls) for p, urls in fallbacks.deployments.items()},
        },
    }


def _allowlists(loaded: LoadedPolicy, scope: str) -> dict[str, dict[str, Any]]:
    compiled = loaded.policy.allow_teams if scope == "teams" else loaded.policy.allow_keys
    raw = loaded.raw.get("allow", {}).get(scope, {})
    out = {}
    for name, allow in compiled.items():
        models = raw[name]["models"]
        out[name] = {
            "models": [models] if isinstance(models, str) else [str(m) for m in models],
            "on_violation": allow.on_violation,
        }
    return out


# --- explain ---


def resolve_principal(store: PrincipalStore, ref: str) -> Principal:
    """A usable key by its secret, id, name or display prefix (as the gateway would accept it)."""
    active = store.active_principals()
    principal = active.get(hash_key(ref))
    if principal is None:
        matches = [k for k in store.list_keys(include_revoked=True) if ref in (k.id, k.name, k.key_prefix)]
        if not matches:
            # Never echo what may be a secret.
            looks_secret = ref.startswith(KEY_PREFIX) and len(ref) > len(KEY_PREFIX) + 6
            raise NotFound("no usable key has that secret" if looks_secret else f"no key named {ref!r}")
        if len(matches) > 1:
            raise Conflict(f"{len(matches)} keys match {ref!r}; use the id")
        key = matches[0]
        principal = next((p for p in active.values() if p.key_id == key.id), None)
        if principal is None:
            raise NotFound(
                f"key {key.name!r} is revoked (or its team, org or user is): the gateway answers 401"
            )
    if principal.expires_at is not None and principal.expires_at <= utc_now_iso():
        raise ValueError(
            f"key {principal.key_name!r} expired at {principal.expires_at}: the gateway answers 401"
        )
    return principal


def parse_headers(pairs: Sequence[str]) -> dict[str, str]:
    """`--header 'Name: value'` options as the lower-cased mapping the gateway reads."""
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header must look like 'Name: value', got {pair!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def provider_for(name: str) -> Provider:
    if name not in PROVIDERS:
        raise ValueError(f"--provider must be one of {', '.join(PROVIDERS)}")
    return offline_provider(name)


def explain(
    loaded: LoadedPolicy,
    principal: Principal,
    provider: Provider,
    headers: dict[str, str],
    body: bytes,
    pricer: Pricer,
    inferrer: Inferrer,
) -> dict[str, Any]:
    """Route one request body as the gateway would, without sending it anywhere; every step shown."""
    policy = loaded.policy
    try:
        info = provider.parse(body, provider.path)
        features = provider.route_features(info)
        who = attribute_call(principal, headers, provider.name, info, features, len(body), inferrer)
    except Refused as exc:  # the body or tags are bad: not a routing outcome
        raise ValueError(f"the gateway would answer {exc.status}: {exc.message}") from None
    req = route_request_for(provider, info, body, principal, who, features)
    rule, trace = first_match(policy, req)
    route: Route | None = None
    refusal: Refused | None = None
    try:
        route = Router(policy).route(req, explain=True)
        trace = route.trace
    except Refused as exc:  # a refuse rule or an allowlist reject
        refusal = exc
    routed_price = pricer.price(provider.name, route.model) if route is not None else None
    if route is not None and routed_price is None:
        refusal = ModelNotPriced(
            f"model: {route.model!r} has no price in Spendgate's price data, so it cannot be metered."
        )
    if refusal is not None:
        outcome, reason = "refused", refusal.message
    else:
        assert route is not None
        outcome = "unchanged" if route.model == req.model else "routed"
        reason = route.reason
    return {
        "policy": policy.source,
        "provider": provider.name,
        "key": {"id": principal.key_id, "name": principal.key_name, "team": principal.team_name},
        "use_case": req.use_case,
        "use_case_source": who.use_case_source,
        "use_case_evidence": who.use_case_evidence,
        "tags": req.tags,
        "session_id": req.session,
        "agent_id": req.agent,
        "requested_model": req.model,
        "routed_model": route.model if route is not None and refusal is None else None,
        "outcome": outcome,
        "status": refusal.status if refusal is not None else None,
        "rule": route.rule if route is not None else None,
        "matched_rule": rule.name if rule is not None else None,
        "why": rule.why if rule is not None else "",
        "reason": reason,
        # A fresh router holds no sessions; this says whether later calls would stay put.
        "sticky": bool(req.session and rule is not None and rule.sticky and refusal is None),
        "trace": list(trace),
        "complexity": {
            "score": req.complexity,
            "input_tokens": req.input_tokens,
            "tools": req.tools,
            "thinking": req.thinking,
            "messages": req.messages,
            "points": complexity_parts(req),
        },
        "allowlists": _allowlist_outcomes(loaded, req, rule, route, refusal),
        # Nothing is forwarded when the call is refused, so there is no chain to show.
        "fallbacks": _fallbacks(policy, provider.name, route.model) if route and not refusal else None,
        "prices": {
            "requested": _price_view(pricer.price(provider.name, req.model)),
            "routed": _price_view(routed_price),
        },
    }


def _allowlist_outcomes(
    loaded: LoadedPolicy,
    req: RouteRequest,
    rule: Rule | None,
    route: Route | None,
    refusal: Refused | None,
) -> list[dict[str, Any]]:
    # The router checks the team's list, then the key's, each on the model the one before chose;
    # a refuse rule stops it before either.
    stopped = rule is not None and rule.refuse is not None
    out = []
    for scope, name in (("team", req.team), ("key", req.key)):
        listed = _allowlists(loaded, f"{scope}s").get(name)
        if listed is None:
            continue
        step = route
        if scope == "team" and not stopped:
            # Route again with the team's list alone, to see what it did before the key's list ran.
            try:
                step = Router(replace(loaded.policy, allow_keys={})).route(req)
            except Refused:
                step = None
        if stopped:
            result = "not evaluated"
        elif step is None or (refusal is not None and f"not allowed for {scope} {name!r}" in refusal.message):
            result, stopped = "rejected", True
        elif step.rule == f"allowlist:{scope}:{name}":
            result = f"rewritten to {step.model}: {step.reason}"
        else:
            result = "allowed"
        out.append({"scope": scope, "name": name, **listed, "outcome": result})
    return out


def _fallbacks(policy: Policy, provider: str, model: str) -> dict[str, Any]:
    fallbacks = policy.fallbacks
    return {
        "models": list(fallback_models(policy, model)),
        "deployments": list(fallbacks.deployments.get(provider, ())),
        "retries": fallbacks.retries,
        "backoff_ms": fallbacks.backoff_ms,
        "on_status": sorted(fallbacks.on_status),
    }


def _price_view(price: ModelPrice | None) -> dict[str, str] | None:
    if price is None:
        return None
    return {
        "input_usd_per_mtok": str(price.input.base),
        "output_usd_per_mtok": str(price.output.base),
        "cache_read_usd_per_mtok": str(price.cache_read.base),
        "ref": price.ref,
    }


# --- savings ---


def savings_report(
    store: SpendStore,
    by: str,
    since: str | None,
    until: str | None,
    baseline: str = REQUESTED,
    pricer: Pricer | None = None,
) -> list[dict[str, Any]]:
    """Per group: requests, routed requests, actual and counterfactual cost, savings (exact USD
    strings) and savings as a percent of the counterfactual; largest savings first. The
    counterfactual is the cost on the models asked for (`requested`), or on one `baseline` model."""
    column_of(by, SAVINGS_BY)  # a clear error for an unknown group
    period = (normalize_time(since) if since else None, normalize_time(until) if until else None)
    if baseline == REQUESTED:
        groups = [
            (r.id, r.name, r.requests, r.routed_requests, r.cost_nanos, r.counterfactual_nanos)
            for r in store.savings(by, *period)
        ]
    else:
        priced = baseline_costs(store, by, *period, baseline, pricer or Pricer())
        groups = [
            (r.id, r.name, r.requests, r.routed_requests, r.cost_nanos, r.baseline_nanos) for r in priced
        ]
    out = []
    for group_id, name, requests, routed, cost, counterfactual in groups:
        out.append(
            {
                by: name if name is not None else ("untagged" if by == "use_case" else None),
                "id": group_id,
                **_money(requests, routed, cost, counterfactual),
                "baseline": baseline,
            }
        )
    out.sort(key=lambda r: (-_nanos(r["savings_usd"]), -r["requests"], str(r[by])))
    return out


def savings_total(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report's bottom line, summed from the rows' exact strings."""
    return _money(
        sum(r["requests"] for r in rows),
        sum(r["routed_requests"] for r in rows),
        sum(_nanos(r["cost_usd"]) for r in rows),
        sum(_nanos(r["counterfactual_usd"]) for r in rows),
    )


def _money(requests: int, routed: int, cost: int, counterfactual: int) -> dict[str, Any]:
    savings = counterfactual - cost
    percent = None
    if counterfactual:
        share = Decimal(savings) * 100 / Decimal(counterfactual)
        percent = str(share.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))
    return {
        "requests": requests,
        "routed_requests": routed,
        "cost_usd": format_usd(cost),
        "counterfactual_usd": format_usd(counterfactual),
        "savings_usd": format_usd(savings),
        "savings_pct": percent,
    }


def _nanos(usd: str) -> int:
    # Every string here came from integer nanos, so the round trip is exact.
    return int(Decimal(usd) * NANOS_PER_USD)
