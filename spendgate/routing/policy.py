"""The routing policy as data: tiers, ordered rules, allowlists and fallbacks, from TOML.

A policy is compiled once (globs to regexes, lists to sets) so evaluating it per call is a
few set lookups.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from spendgate.config_files import ConfigFileError, FileModel, checked

_MATCH_KEYS = {
    "use_case",
    "tags",
    "team",
    "key",
    "endpoint",
    "provider",
    "model",
    "min_input_tokens",
    "max_input_tokens",
    "tools",
    "thinking",
    "stream",
    "min_complexity",
    "max_complexity",
}


class PolicyError(ValueError):
    """The policy file is not valid; the message says where."""


@dataclass(frozen=True, slots=True)
class Match:
    use_case: frozenset[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    team: frozenset[str] | None = None
    key: frozenset[str] | None = None
    provider: frozenset[str] | None = None
    endpoint: frozenset[str] | None = None  # the path called, e.g. /v1/messages or /v1/chat/completions
    model: re.Pattern[str] | None = None
    min_input_tokens: int | None = None
    max_input_tokens: int | None = None
    tools: bool | None = None
    thinking: bool | None = None
    stream: bool | None = None
    min_complexity: int | None = None
    max_complexity: int | None = None
    # The rule's `use_inferred`: its use_case condition also sees use cases Spendgate inferred
    # (otherwise an inferred call looks untagged to it).
    use_inferred: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    match: Match
    model: str | None = None
    tier: str | None = None
    refuse: str | None = None  # a message: the requested model is refused
    sticky: bool = True
    why: str = ""
    enabled: bool = True  # false: kept in the file, shown by `route policy`, never matched


@dataclass(frozen=True, slots=True)
class Allowlist:
    models: re.Pattern[str]
    on_violation: str  # "reject", or "tier:<name>" / "model:<name>" to rewrite


@dataclass(frozen=True, slots=True)
class Fallbacks:
    retries: int = 2
    backoff_ms: int = 250
    max_retry_after_ms: int = 5000  # a provider asking for a longer wait is not retried (see forward.py)
    on_status: frozenset[int] = frozenset({429, 500, 502, 503, 504, 529})
    models: dict[str, tuple[str, ...]] = field(default_factory=dict)
    deployments: dict[str, tuple[str, ...]] = field(default_factory=dict)  # provider -> extra base URLs


@dataclass(frozen=True, slots=True)
class Policy:
    source: str
    tiers: dict[str, dict[str, str]]  # provider -> tier -> model
    rules: tuple[Rule, ...]
    allow_teams: dict[str, Allowlist]
    allow_keys: dict[str, Allowlist]
    fallbacks: Fallbacks

    def tier_model(self, provider: str, tier: str) -> str | None:
        return self.tiers.get(provider, {}).get(tier)


def load_policy(path: Path | None) -> Policy:
    """The policy at `path` (None: the built-in one); PolicyError when it is missing or invalid."""
    if path is None:
        text = (files("spendgate.routing") / "default_policy.toml").read_text()
        return parse_policy(text, "default policy")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PolicyError(f"{path}: cannot read the policy file: {reason}") from None
    return parse_policy(text, str(path))


Names = str | list[str]


class _Table(FileModel):
    # TOML has real booleans and numbers: in a policy, a string where one belongs is a mistake.
    model_config = ConfigDict(strict=True)


class _Match(_Table):
    use_case: Names | None = None
    tags: dict[str, str] = {}
    team: Names | None = None
    key: Names | None = None
    endpoint: Names | None = None
    provider: Names | None = None
    model: Names | None = None
    min_input_tokens: int | None = None
    max_input_tokens: int | None = None
    tools: bool | None = None
    thinking: bool | None = None
    stream: bool | None = None
    min_complexity: int | None = None
    max_complexity: int | None = None


class _Rule(_Table):
    name: str | None = None
    match: _Match = _Match()
    model: str | None = None
    tier: str | None = None
    refuse: str | None = None
    sticky: bool = True
    why: str = ""
    use_inferred: bool = False
    enabled: bool = True


class _Allowed(_Table):
    models: Names | None = None
    on_violation: str = "reject"


class _Allow(_Table):
    teams: dict[str, _Allowed] = {}
    keys: dict[str, _Allowed] = {}


class _Fallbacks(_Table):
    retries: int = 2
    backoff_ms: int = 250
    max_retry_after_ms: int = 5000
    on_status: list[int] = [429, 500, 502, 503, 504, 529]
    models: dict[str, list[str]] = {}
    deployments: dict[str, list[str]] = {}


class _PolicyFile(_Table):
    tiers: dict[str, dict[str, str]] = {}
    rules: list[_Rule] = []
    allow: _Allow = _Allow()
    fallbacks: _Fallbacks = _Fallbacks()


def parse_policy(text: str, source: str) -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    try:
        data = checked(_PolicyFile, data, source)
    except ConfigFileError as exc:
        raise PolicyError(str(exc)) from None
    try:
        policy = _build(data, source)
    except PolicyError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError) as exc:  # e.g. a number where a list belongs
        raise PolicyError(f"{source}: malformed policy ({type(exc).__name__}: {exc})") from None
    _check_types(policy)
    return policy


def _check_types(policy: Policy) -> None:
    # Values are taken as written; a string where a number belongs would only fail mid-request.
    for rule in policy.rules:
        for name in ("min_input_tokens", "max_input_tokens", "min_complexity", "max_complexity"):
            value = getattr(rule.match, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise PolicyError(f"{policy.source}: rule {rule.name}: match.{name} must be an integer")
        for name in ("tools", "thinking", "stream"):
            if not isinstance(getattr(rule.match, name), bool | None):
                raise PolicyError(f"{policy.source}: rule {rule.name}: match.{name} must be true or false")
        for name in ("model", "tier", "refuse"):
            if not isinstance(getattr(rule, name), str | None):
                raise PolicyError(f"{policy.source}: rule {rule.name}: {name} must be a string")
        if not isinstance(rule.enabled, bool) or not isinstance(rule.match.use_inferred, bool):
            raise PolicyError(
                f"{policy.source}: rule {rule.name}: enabled and use_inferred are true or false"
            )


def _build(data: dict[str, Any], source: str) -> Policy:
    tiers = {str(p): {str(t): str(m) for t, m in table.items()} for p, table in data.get("tiers", {}).items()}
    rules = tuple(_rule(raw, i, source, tiers) for i, raw in enumerate(data.get("rules", [])))
    allow = data.get("allow", {})
    return Policy(
        source=source,
        tiers=tiers,
        rules=rules,
        allow_teams={
            k: _allowlist(v, f"{source}: allow.teams.{k}") for k, v in allow.get("teams", {}).items()
        },
        allow_keys={k: _allowlist(v, f"{source}: allow.keys.{k}") for k, v in allow.get("keys", {}).items()},
        fallbacks=_fallbacks(data.get("fallbacks", {})),
    )


def _rule(raw: dict[str, Any], index: int, source: str, tiers: dict[str, dict[str, str]]) -> Rule:
    where = f"{source}: rule {index + 1} ({raw.get('name', 'unnamed')})"
    actions = [k for k in ("model", "tier", "refuse") if k in raw]
    if len(actions) != 1:
        raise PolicyError(f"{where}: give exactly one of model, tier or refuse")
    if "tier" in raw and not any(raw["tier"] in t for t in tiers.values()):
        raise PolicyError(f"{where}: tier {raw['tier']!r} is not defined under [tiers.*]")
    match = raw.get("match", {})
    unknown = set(match) - _MATCH_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown match keys {sorted(unknown)}; known: {sorted(_MATCH_KEYS)}")
    return Rule(
        name=str(raw.get("name") or f"rule-{index + 1}"),
        match=Match(
            use_case=_names(match.get("use_case")),
            tags={str(k): str(v) for k, v in match.get("tags", {}).items()},
            team=_names(match.get("team")),
            key=_names(match.get("key")),
            provider=_names(match.get("provider")),
            endpoint=_names(match.get("endpoint")),
            model=_globs(match.get("model")),
            min_input_tokens=match.get("min_input_tokens"),
            max_input_tokens=match.get("max_input_tokens"),
            tools=match.get("tools"),
            thinking=match.get("thinking"),
            stream=match.get("stream"),
            min_complexity=match.get("min_complexity"),
            max_complexity=match.get("max_complexity"),
            use_inferred=raw.get("use_inferred", False),
        ),
        model=raw.get("model"),
        tier=raw.get("tier"),
        refuse=raw.get("refuse"),
        sticky=bool(raw.get("sticky", True)),
        why=str(raw.get("why", "")),
        enabled=raw.get("enabled", True),
    )


def _allowlist(raw: dict[str, Any], where: str) -> Allowlist:
    models = _globs(raw.get("models"))
    if models is None:
        raise PolicyError(f"{where}: needs models = [...]")
    action = str(raw.get("on_violation", "reject"))
    if action != "reject" and not action.startswith(("tier:", "model:")):
        raise PolicyError(f"{where}: on_violation is 'reject', 'tier:<name>' or 'model:<name>'")
    return Allowlist(models, action)


def _fallbacks(raw: dict[str, Any]) -> Fallbacks:
    return Fallbacks(
        retries=int(raw.get("retries", 2)),
        backoff_ms=int(raw.get("backoff_ms", 250)),
        max_retry_after_ms=int(raw.get("max_retry_after_ms", 5000)),
        on_status=frozenset(int(s) for s in raw.get("on_status", [429, 500, 502, 503, 504, 529])),
        models={str(k): tuple(str(m) for m in v) for k, v in raw.get("models", {}).items()},
        deployments={str(k): tuple(str(u) for u in v) for k, v in raw.get("deployments", {}).items()},
    )


def _names(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else [str(v) for v in value])


def _globs(value: Any) -> re.Pattern[str] | None:
    names = _names(value)
    if names is None:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(n)})" for n in sorted(names)))
