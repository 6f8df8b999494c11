"""Name the use case of a call that declares none: the first rule that matches its shape.

Runs on the hot path, only for calls without a declared use case: the client is found by a
few header lookups and precompiled globs, then the enabled rules are tried in order until one
holds; the winner's evidence (what the call had for each of its conditions) is kept on the
ledger row, so `spendgate ledger explain-use-case` can say why without the request.

Most calls repeat a few shapes, so both steps are remembered, per Inferrer (one rule set): the
client by the values of the headers clients are told by, and the answer by everything the rules
a call can reach read of it (`Condition.reads`). Nothing else can change the answer, so a
remembered one is the answer trying the rules would give.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, call
from typing import NamedTuple

from spendgate.inference.rules import Condition, Rule, UseCaseRules
from spendgate.inference.shape import CallShape
from spendgate.models import Principal
from spendgate.providers.base import RequestInfo, RouteFeatures


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
        # The rules worth trying for each client (and for none), in order: a rule about another
        # client is skipped without a look.
        names: list[str | None] = [c.name for c in rules.clients]
        self._for_client = {
            name: tuple(r for r in self._enabled if r.clients is None or name in r.clients)
            for name in [*names, None]
        }
        self._keys = {client: shape_key(reachable(rules)) for client, rules in self._for_client.items()}
        self._client_headers = tuple(dict.fromkeys(header for header, _ in rules.client_index))
        self._clients: dict[tuple[str | None, ...], tuple[str | None, str]] = {}
        self._answers: dict[Hashable, _Answer] = {}

    @property
    def rules(self) -> UseCaseRules:
        return self._rules  # read-only: what was compiled and remembered came from these

    @property
    def active(self) -> bool:
        return bool(self._enabled)

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
            if len(self._clients) >= self.MAX_REMEMBERED:
                self._clients.clear()
            self._clients[seen] = found
        return found

    def infer(self, shape: CallShape) -> Inferred | None:
        """The first enabled rule that matches names the use case; None when none does."""
        keyer = self._keys.get(shape.client)
        if keyer is None:  # a client these rules do not name (a shape built by hand): not remembered
            rule = self._first_match(shape)
            return None if rule is None else _inferred(rule, shape)
        key = keyer(shape)
        known = self._answers.get(key)
        if known is not None and (known.sizes is None or known.sizes(shape) == known.had):
            return known.inferred
        rule = known.rule if known is not None else self._first_match(shape)
        if rule is None:
            self._remember(key, _Answer(None, None, None, None))
            return None
        # The winner's evidence shows its sizes as they were: remembered for the sizes they had.
        inferred = _inferred(rule, shape)
        sizes = _sizes_of(rule)
        self._remember(key, _Answer(rule, inferred, sizes, sizes(shape) if sizes else None))
        return inferred

    def _remember(self, key: Hashable, answer: _Answer) -> None:
        if len(self._answers) >= self.MAX_REMEMBERED:
            self._answers.clear()
        self._answers[key] = answer

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


class _Answer(NamedTuple):
    """What the rules said about calls with one key."""

    rule: Rule | None  # the rule that matched (None: none did)
    inferred: Inferred | None
    sizes: Callable[[CallShape], object] | None  # reads the sizes the evidence shows, if it shows any
    had: object  # what they were for `inferred`


def reachable(rules: Sequence[Rule]) -> list[Rule]:
    """The rules a call can reach, in order: up to the first that holds for every call from its
    client (a rule with no conditions but `client`); those after it are never tried."""
    out = []
    for rule in rules:
        out.append(rule)
        if all(c.reads == "client" for c in rule.conditions):
            break
    return out


def shape_key(rules: Sequence[Rule]) -> Callable[[CallShape], Hashable]:
    """What tells calls apart for a list of rules: the client (and the header that named it), and
    the values their conditions read, except a size (messages, tokens), which takes too many
    values to key on: for a size, whether the call passes each bound on it."""
    conditions = [c for rule in rules for c in rule.conditions]
    names = sorted({c.reads for c in conditions if c.entry is None and not c.size} - {"client"})
    fields: Callable[[CallShape], object] = attrgetter(*names) if names else _nothing
    headers = tuple(sorted({c.entry for c in conditions if c.reads == "headers" and c.entry}))
    tags = tuple(sorted({c.entry for c in conditions if c.reads == "tags" and c.entry}))
    sizes = tuple(c.test for c in conditions if c.size)

    def key(s: CallShape) -> Hashable:
        return (
            s.client,
            s.client_via,
            fields(s),
            tuple(map(s.headers.get, headers)),
            tuple(map(s.tags.get, tags)) if tags else (),
            tuple(map(call, sizes, repeat(s))),
        )

    return key


def _sizes_of(rule: Rule) -> Callable[[CallShape], object] | None:
    sizes = sorted({c.reads for c in rule.conditions if c.size})
    return attrgetter(*sizes) if sizes else None


def _nothing(_: CallShape) -> object:
    return ()
