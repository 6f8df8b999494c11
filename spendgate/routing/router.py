"""Step 3, route: pick the model a call goes upstream with, from the policy.

Order: a sticky decision for the session (prompt caches are per model, so flipping
models mid-session throws the cache away), else the first matching rule, else the
requested model; then the team's and key's allowlists. Evaluation is a handful of set
lookups and one regex match per rule that names models.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from spendgate.attribution import INFERRED_PREFIX, UNTAGGED
from spendgate.errors import PermissionDenied
from spendgate.routing.policy import Allowlist, Match, Policy, Rule

NO_RULE = "no rule matched: the requested model"  # a Route's reason


# Not frozen: it is built once per call on the hot path, where a frozen dataclass's __init__ costs
# more than twice a plain one's (one object.__setattr__ per field); nothing assigns to it.
@dataclass(slots=True)
class RouteRequest:
    provider: str
    model: str
    use_case: str
    tags: dict[str, str]
    team: str
    key: str
    input_tokens: int
    tools: bool
    thinking: bool
    stream: bool
    messages: int = 1
    endpoint: str = ""
    session: str | None = None
    agent: str | None = None
    use_case_source: str = "none"  # header, metadata, key, inferred:<rule>, none

    @property
    def complexity(self) -> int:
        return complexity(self)

    @property
    def inferred(self) -> bool:
        return self.use_case_source.startswith("inferred:")


@dataclass(frozen=True, slots=True)
class Held:
    """A session's routing decision, kept for its later calls (routing/sticky.py)."""

    model: str
    rule: str  # "" when the rule's tier had no model for the API


@dataclass(slots=True)  # built for every call: faster than a NamedTuple on 3.11; never assigned
class Route:
    model: str
    rule: str | None  # the rule that fired (None: the requested model, untouched)
    reason: str
    sticky: bool = False
    trace: tuple[str, ...] = ()  # one line per rule, for `route explain`
    hold: Held | None = None  # a new decision the session should keep (sticky rule, session id)


def as_asked(model: str) -> Route:
    """The route of a call no rule matched: the model it asked for."""
    return Route(model, None, NO_RULE)


def complexity_parts(req: RouteRequest) -> dict[str, int]:
    """The points behind the complexity score, term by term (documented in docs/routing.md)."""
    return {
        "input_tokens": min(40, req.input_tokens // 2500),  # +1 per 2.5K input tokens, up to 40
        "tools": 20 if req.tools else 0,
        "thinking": 25 if req.thinking else 0,
        "messages": min(15, req.messages // 4),  # long conversations
    }


def complexity(req: RouteRequest) -> int:
    """A 0-100 score from what the request carries."""
    return min(100, sum(complexity_parts(req).values()))


class Router:
    """Pure: the policy in (a new policy is a new Router), a route out. What a session holds is
    looked up by the caller (`admission.py`, through routing/sticky.py) and passed in as `held`."""

    MAX_AS_ASKED = 1024  # models whose as-asked route is remembered

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.sticky = any(rule.sticky and rule.enabled for rule in policy.rules)  # worth a lookup?
        self._candidates = candidates_by_use_case(policy.rules)
        self._allowlists = bool(policy.allow_teams or policy.allow_keys)
        # A rule's route for each API it was applied to, built once: it depends on nothing else
        # of the call. Keyed by the rule's id (rules hold dicts, so they do not hash; this Router
        # keeps the policy, so the ids stay its rules'). At most rules x providers entries.
        self._routes: dict[tuple[int, str], Route] = {}
        self._as_asked_routes: dict[str, Route] = {}  # by model: calls no rule can match

    def route(self, req: RouteRequest, explain: bool = False, held: Held | None = None) -> Route:
        trace: list[str] = []
        hold: Held | None = None
        rule = self._first_match(req, trace) if explain else self._first_candidate(req)
        if req.session and held is not None and (rule is None or rule.sticky):
            chosen = Route(held.model, held.rule or None, f"sticky for session {req.session}", sticky=True)
        elif rule is not None:
            chosen = self._apply(rule, req)  # a refuse rule raises: refusals are never held
            if req.session and rule.sticky:
                hold = Held(chosen.model, chosen.rule or "")
        else:
            chosen = as_asked(req.model)
        if self._allowlists:  # most policies have none: nothing to look up on every call
            chosen = self._allowed(chosen, req)
        if trace or hold is not None:
            return replace(chosen, trace=tuple(trace), hold=hold)
        return chosen

    def route_by_use_case(
        self, provider: str, model: str, use_case: str, use_case_source: str
    ) -> Route | None:
        """The route of a call whose use case alone decides it, without its RouteRequest: no rule
        can match it (the model asked for), or the first rule it can match has no other condition
        (that rule's route, once `route` has built it). None: `route` the full request (an
        allowlist may change the model; a rule looks at more of the call, refuses it, or has not
        routed a call for this API yet). Not for a call with a session under a sticky policy (what
        the session holds wins), which `route` decides."""
        if self._allowlists:
            return None
        table = self._candidates[use_case_source.startswith(INFERRED_PREFIX)]
        candidates = table.get(use_case, table[None])
        if not candidates:  # the model asked for: the usual call's Route is remembered already
            return self._as_asked_routes.get(model) or self._as_asked(model)
        rule, checked = candidates[0]
        # A refusal, or a tier with no model for the API, is never among the routes built.
        return None if checked else self._routes.get((id(rule), provider))

    def _as_asked(self, model: str) -> Route:
        """`as_asked(model)`, remembered: one Route per model, shared by the calls no rule can match
        (a Route is never assigned to). At most MAX_AS_ASKED models (the clients' to name)."""
        if len(self._as_asked_routes) >= self.MAX_AS_ASKED:
            self._as_asked_routes.clear()
        route = self._as_asked_routes[model] = as_asked(model)
        return route

    def downgrade(self, req: RouteRequest, route: Route, tier: str) -> Route:
        """A budget at amber with a downgrade action sends the call to another tier, if allowed."""
        model = self.policy.tier_model(req.provider, tier)
        if model is None or model == route.model:
            return route
        try:
            return self._allowed(
                Route(model, f"budget-amber:{tier}", f"budget at amber: downgraded to the {tier} tier"), req
            )
        except PermissionDenied:
            return route  # the allowlist forbids the tier model: keep the routed one

    def _first_match(self, req: RouteRequest, trace: list[str]) -> Rule | None:
        """The first rule that matches, every rule up to it traced (`route explain`)."""
        for rule in self.policy.rules:
            if not rule.enabled:
                trace.append(f"{rule.name}: disabled")
                continue
            failed = mismatch(rule.match, req)
            trace.append(f"{rule.name}: " + ("MATCH" if failed is None else f"no ({failed})"))
            if failed is None:
                return rule
        return None

    def _first_candidate(self, req: RouteRequest) -> Rule | None:
        """The same rule as `_first_match`, trying only the rules the call's use case can match."""
        table = self._candidates[req.use_case_source.startswith(INFERRED_PREFIX)]  # req.inferred, inline
        for rule, checked in table.get(req.use_case, table[None]):
            if not checked or mismatch(rule.match, req) is None:
                return rule
        return None

    def _apply(self, rule: Rule, req: RouteRequest) -> Route:
        if rule.refuse is not None:
            raise PermissionDenied(
                f"Spendgate routing rule {rule.name!r} refuses model {req.model!r}: {rule.refuse}",
            )
        route = self._routes.get((id(rule), req.provider))
        if route is not None:
            return route  # shared by the calls this rule routes: a Route is never assigned to
        model = rule.model or self.policy.tier_model(req.provider, rule.tier or "")
        if model is None:
            # A tier with no model for this API: routing stays within the caller's API format.
            return Route(req.model, None, f"rule {rule.name}: tier {rule.tier!r} has no {req.provider} model")
        route = Route(model, rule.name, f"rule {rule.name}" + (f": {rule.why}" if rule.why else ""))
        self._routes[id(rule), req.provider] = route
        return route

    def _allowed(self, route: Route, req: RouteRequest) -> Route:
        for scope, allow in (
            ("team", self.policy.allow_teams.get(req.team)),
            ("key", self.policy.allow_keys.get(req.key)),
        ):
            if allow is None or allow.models.fullmatch(route.model):
                continue
            route = self._violation(route, req, scope, allow)
        return route

    def _violation(self, route: Route, req: RouteRequest, scope: str, allow: Allowlist) -> Route:
        action = allow.on_violation
        name = req.team if scope == "team" else req.key
        if action.startswith("tier:"):
            model = self.policy.tier_model(req.provider, action[5:])
        elif action.startswith("model:"):
            model = action[6:]
        else:
            model = None
        if model is None or not allow.models.fullmatch(model):
            raise PermissionDenied(
                f"Model {route.model!r} is not allowed for {scope} {name!r} by Spendgate's routing policy.",
            )
        return Route(model, f"allowlist:{scope}:{name}", f"{route.model} is not allowed for {scope} {name}")


# (rule, checked): checked is False for a rule whose only condition is its use case, which the
# table has already passed; it matches without a look at the call.
Candidates = dict[str | None, tuple[tuple[Rule, bool], ...]]


def candidates_by_use_case(rules: tuple[Rule, ...]) -> tuple[Candidates, Candidates]:
    """For a declared and an inferred use case, the enabled rules in order whose use_case
    condition it passes, by use case (None: any use case no rule names). A policy whose rules all
    name use cases gives most calls no rule to try at all."""
    named = {name for rule in rules if rule.match.use_case is not None for name in rule.match.use_case}
    checked = [_beyond_use_case(rule.match) for rule in rules]
    tables: list[Candidates] = []
    for inferred in (False, True):
        tables.append(
            {
                name: tuple(
                    (r, check)
                    for r, check in zip(rules, checked, strict=True)
                    if r.enabled and _use_case_passes(r.match, name, inferred)
                )
                for name in [*sorted(named), None]
            }
        )
    return tables[0], tables[1]


def _beyond_use_case(m: Match) -> bool:
    """Does the rule have a condition other than its use case (one `mismatch` must look at)?"""
    return replace(m, use_case=None, use_inferred=False) != Match()


def _use_case_passes(m: Match, use_case: str | None, inferred: bool) -> bool:
    """A rule's use_case condition, for `mismatch` and the candidate tables (where None stands for
    a use case no rule names)."""
    if m.use_case is None:
        return True
    if inferred and not m.use_inferred:
        # An inferred use case routes only where the policy says so: to this rule it is untagged.
        return UNTAGGED in m.use_case
    return use_case in m.use_case


def mismatch(m: Match, req: RouteRequest) -> str | None:
    """None when the request matches; else the first condition that failed."""
    if not _use_case_passes(m, req.use_case, req.inferred):
        if req.inferred and not m.use_inferred:
            return f"use_case {req.use_case!r} is inferred; the rule does not set use_inferred"
        return f"use_case {req.use_case!r}"
    for key, value in m.tags.items():
        if req.tags.get(key) != value:
            return f"tag {key}={req.tags.get(key)!r}"
    if m.team is not None and req.team not in m.team:
        return f"team {req.team!r}"
    if m.key is not None and req.key not in m.key:
        return f"key {req.key!r}"
    if m.provider is not None and req.provider not in m.provider:
        return f"provider {req.provider!r}"
    if m.endpoint is not None and req.endpoint not in m.endpoint:
        return f"endpoint {req.endpoint!r}"
    if m.model is not None and not m.model.fullmatch(req.model):
        return f"model {req.model!r}"
    if m.min_input_tokens is not None and req.input_tokens < m.min_input_tokens:
        return f"input ~{req.input_tokens} < {m.min_input_tokens} tokens"
    if m.max_input_tokens is not None and req.input_tokens > m.max_input_tokens:
        return f"input ~{req.input_tokens} > {m.max_input_tokens} tokens"
    for flag in ("tools", "thinking", "stream"):
        want = getattr(m, flag)
        if want is not None and getattr(req, flag) != want:
            return f"{flag} is {getattr(req, flag)}"
    if m.min_complexity is not None and req.complexity < m.min_complexity:
        return f"complexity {req.complexity} < {m.min_complexity}"
    if m.max_complexity is not None and req.complexity > m.max_complexity:
        return f"complexity {req.complexity} > {m.max_complexity}"
    return None
