"""Name the use case of a call that declares none: the first rule that matches its shape.

Runs on the hot path, only for calls without a declared use case: the client is found by a
few header lookups and precompiled globs, then the enabled rules are tried in order until one
holds; the winner's evidence (what the call had for each of its conditions) is kept on the
ledger row, so `spendgate ledger explain-use-case` can say why without the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
    def __init__(self, rules: UseCaseRules) -> None:
        self.rules = rules
        self._enabled = tuple(rule for rule in rules.rules if rule.enabled)
        # The rules worth trying for each client (and for none), in order: a rule about another
        # client is skipped without a look.
        names: list[str | None] = [c.name for c in rules.clients]
        self._for_client = {
            name: tuple(r for r in self._enabled if r.clients is None or name in r.clients)
            for name in [*names, None]
        }

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
        client, via = self.rules.client_of(headers)
        return CallShape(
            provider=provider,
            endpoint=info.path,
            model=info.model,
            stream=info.stream,
            max_tokens=info.max_tokens,
            tools=features.tools,
            thinking=features.thinking,
            messages=features.messages,
            last_role=features.last_role,
            tool_results=features.tool_results,
            input_tokens=body_bytes // 4,  # as routing estimates it
            key=principal.key_name,
            team=principal.team_name,
            tags=tags,
            headers=headers,
            client=client,
            client_via=via,
        )

    def infer(self, shape: CallShape) -> Inferred | None:
        """The first enabled rule that matches names the use case; None when none does."""
        for rule in self._for_client.get(shape.client, self._enabled):
            if rule.mismatch(shape) is None:
                return Inferred(rule.use_case, rule.source, rule.evidence(shape))
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
