"""Name the use case of a call that declares none: the first rule that matches its shape.

Runs on the hot path, only for calls without a declared use case: the client is found by a
few header lookups and precompiled globs, then the enabled rules are tried in order until one
holds; the winner's evidence (what the call had for each of its conditions) is kept on the
ledger row, so `spendgate ledger explain-use-case` can say why without the request.

Most calls repeat a few shapes, so both steps are remembered, per Inferrer (one rule set): the
client by the values of the headers clients are told by, and the answer by everything the rules
a call can reach read of it (`Condition.reads`). Nothing else can change the answer, so a
remembered one is the answer trying the rules would give. The answer (its evidence shows the
call's sizes) is remembered by the exact values; the rule, for calls whose sizes differ, by
whether each size passes each bound on it. In front of both, `infer_call` remembers the answer by
the values a shape is built from, so a call like one seen before builds no shape at all.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, methodcaller
from typing import NamedTuple, TypeVar

from spendgate.inference.rules import Condition, Rule, UseCaseRules
from spendgate.inference.shape import CallShape
from spendgate.models import Principal
from spendgate.providers.base import RequestInfo, RouteFeatures

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Inferred:
    use_case: str
    source: str  # inferred:<rule>
    evidence: str


@dataclass(frozen=True, slots=True)
class Step:
    """One rule tried, for explain: the condition it failed (None: it matched, or is disabled)."""

    rule: Rule
    failed: Condition | None


class Inferrer:
    """The rules compiled for one rule set: a new rule set is a new Inferrer, with a new memo."""

    MAX_REMEMBERED = 4096  # shapes (and client headers) remembered; past that the memo starts over

    def __init__(self, rules: UseCaseRules) -> None:
        self._rules = rules
        self._enabled = tuple(rule for rule in rules.rules if rule.enabled)
        self.active = bool(self._enabled)  # any rule to try? (read on every call: not a property)
        # The rules worth trying for each client (and for none), in order: a rule about another
        # client is skipped without a look.
        names: list[str | None] = [c.name for c in rules.clients]
        self._for_client = {
            name: tuple(r for r in self._enabled if r.clients is None or name in r.clients)
            for name in [*names, None]
        }
        self._keys = {client: keys_for(reachable(rules)) for client, rules in self._for_client.items()}
        self._client_headers = tuple(dict.fromkeys(header for header, _ in rules.client_index))
        self._clients: dict[tuple[str | None, ...], tuple[str | None, str]] = {}
        # What any rule or client reads of a call's headers and tags (the calls' memo key).
        conditions = [c for rule in self._enabled for c in rule.conditions]
        read = sorted({c.entry for c in conditions if c.reads == "headers" and c.entry})
        self._headers_read = tuple(dict.fromkeys([*self._client_headers, *read]))
        tags_read = sorted({c.entry for c in conditions if c.reads == "tags" and c.entry})
        self._tags_read = _entries(tags_read) if tags_read else None  # None: no rule reads a tag
        self._by_call: dict[Hashable, Inferred] = {}  # by the call's raw values; _NO_ANSWER: none
        self._answers: dict[Hashable, Inferred] = {}  # by exact key; _NO_ANSWER: no rule matched
        self._rule_for: dict[Hashable, Rule] = {}  # by key with sizes as bounds; _NO_RULE: none

    @property
    def rules(self) -> UseCaseRules:
        return self._rules  # read-only: what was compiled and remembered came from these

    def infer_call(
        self,
        provider: str,
        info: RequestInfo,
        features: RouteFeatures,
        principal: Principal,
        tags: Mapping[str, str],
        headers: Mapping[str, str],
        body_bytes: int,
    ) -> Inferred | None:
        """`infer(shape_of(...))`, remembered by the values the shape is built from: every field
        but the headers and tags, of which only what a rule or client reads. A call like one seen
        before is answered by one lookup, with no shape built and no client found."""
        key = (
            provider, info.path, info.model, info.stream, info.max_tokens, features.tools,
            features.thinking, features.messages, features.last_role, features.tool_results,
            body_bytes // 4, principal.key_name, principal.team_name,
            tuple(map(headers.get, self._headers_read)),
            () if (tags_read := self._tags_read) is None else tags_read(tags),
        )  # fmt: skip
        answer = self._by_call.get(key)
        if answer is None:
            shape = self.shape_of(provider, info, features, principal, tags, headers, body_bytes)
            answer = self.infer(shape) or _NO_ANSWER
            self._remember(self._by_call, key, answer)
        return None if answer is _NO_ANSWER else answer

    def shape_of(
        self,
        provider: str,
        info: RequestInfo,
        features: RouteFeatures,
        principal: Principal,
        tags: Mapping[str, str],
        headers: Mapping[str, str],
        body_bytes: int,
    ) -> CallShape:
        client, via = self._client_of(headers)
        # In CallShape's field order: keyword arguments cost twice as much, on every inferred call.
        return CallShape(
            provider,
            info.path,  # endpoint
            info.model,
            info.stream,
            info.max_tokens,
            features.tools,
            features.thinking,
            features.messages,
            features.last_role,
            features.tool_results,
            body_bytes // 4,  # input_tokens, as routing estimates it
            principal.key_name,
            principal.team_name,
            tags,
            headers,
            client,
            via,
        )

    def _client_of(self, headers: Mapping[str, str]) -> tuple[str | None, str]:
        seen = tuple(map(headers.get, self._client_headers))
        found = self._clients.get(seen)
        if found is None:
            found = self._rules.client_of(headers)
            self._remember(self._clients, seen, found)
        return found

    def infer(self, shape: CallShape) -> Inferred | None:
        """The first enabled rule that matches names the use case; None when none does."""
        keys = self._keys.get(shape.client)
        if keys is None:  # a client these rules do not name (a shape built by hand): not remembered
            rule = self._first_match(shape)
            return None if rule is None else _inferred(rule, shape)
        exact = keys.exact(shape)
        answer = self._answers.get(exact)
        if answer is not None:
            return None if answer is _NO_ANSWER else answer
        # Not seen with these sizes: the rule is the one for calls alike but for sizes on the same
        # side of every bound; the evidence shows this call's sizes.
        coarse = keys.coarse(shape)
        rule = self._rule_for.get(coarse)
        if rule is None:
            rule = self._first_match(shape) or _NO_RULE
            self._remember(self._rule_for, coarse, rule)
        answer = _NO_ANSWER if rule is _NO_RULE else _inferred(rule, shape)
        self._remember(self._answers, exact, answer)
        return None if answer is _NO_ANSWER else answer

    def _remember(self, memo: dict[_K, _V], key: _K, value: _V) -> None:
        if len(memo) >= self.MAX_REMEMBERED:
            memo.clear()
        memo[key] = value

    def _first_match(self, shape: CallShape) -> Rule | None:
        for rule in self._for_client.get(shape.client, self._enabled):
            if rule.mismatch(shape) is None:
                return rule
        return None

    def explain(self, shape: CallShape) -> list[Step]:
        """Every rule in file order up to the one that matches, with the condition each failed."""
        steps = []
        for rule in self.rules.rules:
            failed = rule.mismatch(shape) if rule.enabled else None
            steps.append(Step(rule, failed))
            if rule.enabled and failed is None:
                break
        return steps


def _inferred(rule: Rule, shape: CallShape) -> Inferred:
    return Inferred(rule.use_case, rule.source, rule.evidence(shape))


# What the memos hold for "no rule matched" (None there means "not seen").
_NO_ANSWER = Inferred("", "", "")
_NO_RULE = Rule("", "", "", False, ())


class Keys(NamedTuple):
    """How calls from one client are told apart: by the client (and the header that named it) and
    the values the conditions of the rules it can reach read."""

    exact: Callable[[CallShape], Hashable]  # every such value, sizes (messages, tokens) included
    coarse: Callable[[CallShape], Hashable]  # a size as whether it passes each bound on it


def reachable(rules: Sequence[Rule]) -> list[Rule]:
    """The rules a call can reach, in order: up to the first that holds for every call from its
    client (a rule with no conditions but `client`); those after it are never tried."""
    out = []
    for rule in rules:
        out.append(rule)
        if all(c.reads == "client" for c in rule.conditions):
            break
    return out


def keys_for(rules: Sequence[Rule]) -> Keys:
    conditions = [c for rule in rules for c in rule.conditions]
    every = _values(sorted({c.reads for c in conditions if c.entry is None} - {"client"}))
    values = _values(sorted({c.reads for c in conditions if c.entry is None and not c.size} - {"client"}))
    headers = _entries(sorted({c.entry for c in conditions if c.reads == "headers" and c.entry}))
    tags = _entries(sorted({c.entry for c in conditions if c.reads == "tags" and c.entry}))
    sizes = tuple(c.test for c in conditions if c.size)

    def exact(s: CallShape) -> Hashable:
        return (s.client, s.client_via, every(s), headers(s.headers), tags(s.tags))

    def coarse(s: CallShape) -> Hashable:
        passes = tuple([test(s) for test in sizes])
        return (s.client, s.client_via, values(s), headers(s.headers), tags(s.tags), passes)

    return Keys(exact, coarse)


def _values(names: list[str]) -> Callable[[CallShape], object]:
    return attrgetter(*names) if names else _nothing


def _entries(names: list[str]) -> Callable[[Mapping[str, str]], object]:
    # One name (the usual case) is one C-level call: no map, no tuple.
    if not names:
        return _nothing
    if len(names) == 1:
        return methodcaller("get", names[0])
    return lambda m: tuple(map(m.get, names))


def _nothing(_: object) -> object:
    return ()
