"""The use-case rule file, read through a typed model and compiled once.

A file names **clients** (each recognised by any one of its headers) and an ordered list of
**rules**; the first enabled rule whose every `match` condition holds names the call's use case.
Compiling turns globs into regexes and each condition into a test and a way to show what the
call had, so matching a call is a few dict lookups and comparisons, and the winning rule can
say why it won (the ledger keeps that as the row's evidence).
"""

from __future__ import annotations

import fnmatch
import operator
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from pydantic import ConfigDict

from spendgate.config_files import ConfigFileError, FileModel, validated
from spendgate.inference.shape import CallShape
from spendgate.providers.base import MAX_NAME_CHARS, has_control_chars

DEFAULT_FILE = "default_rules.toml"
# A rule may not read a credential: its evidence is stored on the ledger row.
SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "proxy-authorization", "cookie", "x-spendgate-key", "x-goog-api-key"}
)
_RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_SHOWN = 80  # characters of a header value shown as evidence

Globs = str | list[str]
Names = str | list[str]


class RulesError(ValueError):
    """The rule file is not valid; the message names the file, the rule and the reason."""


class _Table(FileModel):
    # TOML has real booleans and numbers: a string where one belongs is a mistake, not a value.
    model_config = ConfigDict(strict=True)


class _ClientFile(_Table):
    why: str = ""
    headers: dict[str, Globs]  # any one of them matching identifies the client


class _MatchFile(_Table):
    client: Names | None = None
    header: dict[str, Globs] = {}
    provider: Names | None = None
    endpoint: Globs | None = None
    model: Globs | None = None
    key: Globs | None = None
    team: Names | None = None
    tags: dict[str, str] = {}
    stream: bool | None = None
    tools: bool | None = None
    thinking: bool | None = None
    tool_results: bool | None = None
    last_role: Names | None = None
    min_messages: int | None = None
    max_messages: int | None = None
    max_tokens_at_least: int | None = None
    max_tokens_at_most: int | None = None
    min_input_tokens: int | None = None
    max_input_tokens: int | None = None


class _RuleFile(_Table):
    name: str
    use_case: str
    why: str = ""
    enabled: bool = True
    match: _MatchFile = _MatchFile()


class _RulesFile(_Table):
    clients: dict[str, _ClientFile] = {}
    rules: list[_RuleFile] = []


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    why: str
    headers: tuple[tuple[str, re.Pattern[str]], ...]  # (header, pattern): any one identifies it
    described: str  # the headers as the file wrote them, e.g. "x-app = cli; user-agent = claude-cli/*"

    def via(self, headers: Mapping[str, str]) -> str | None:
        """'name: value' of the header that identifies the client, or None."""
        for name, pattern in self.headers:
            value = headers.get(name)
            if value is not None and pattern.fullmatch(value):
                return f"{name}: {value[:_SHOWN]}"
        return None


@dataclass(frozen=True, slots=True)
class Condition:
    key: str  # as in the file, e.g. max_tokens_at_most
    wanted: str  # the file's value, as text
    test: Callable[[CallShape], bool]
    seen: Callable[[CallShape], str]  # what the call had, as text
    # What `test` and `seen` read of the call, so the inferrer can remember its answer for calls
    # alike in all of it (infer.py): a CallShape field, and for "headers" or "tags" the one entry.
    reads: str
    entry: str | None = None
    # A size (messages, tokens): too many values to remember a call by; its test's outcome is used.
    size: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    use_case: str
    why: str
    enabled: bool
    conditions: tuple[Condition, ...]
    clients: frozenset[str] | None = None  # the `client` condition's names (None: any client)

    @property
    def source(self) -> str:
        """The ledger's use_case_source for a use case this rule names."""
        return f"inferred:{self.name}"

    def mismatch(self, shape: CallShape) -> Condition | None:
        """The first condition the call fails, or None when the rule matches."""
        for condition in self.conditions:
            if not condition.test(shape):
                return condition
        return None

    def evidence(self, shape: CallShape) -> str:
        """What the call had for each condition: the reason this rule named it."""
        if not self.conditions:
            return "no conditions: matches every call"
        return "; ".join(f"{c.key} {c.seen(shape)}" for c in self.conditions)


@dataclass(frozen=True, slots=True)
class UseCaseRules:
    source: str  # "default rules" or the file's path
    clients: tuple[Client, ...]
    rules: tuple[Rule, ...]  # in file order, disabled ones included (explain lists them)
    # Per header a client is recognised by: one regex of every client's globs for it, a named
    # group per client (c0, c1... in file order), so finding the client is one match per header.
    client_index: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def client_of(self, headers: Mapping[str, str]) -> tuple[str | None, str]:
        """(the first client in file order any of whose headers match, "header: value" that did)."""
        best, via = len(self.clients), ""
        for name, pattern in self.client_index:
            value = headers.get(name)
            if value is None:
                continue
            found = pattern.fullmatch(value)
            if found is not None and found.lastgroup is not None:
                index = int(found.lastgroup[1:])
                if index < best:
                    best, via = index, f"{name}: {value[:_SHOWN]}"
        return (self.clients[best].name, via) if best < len(self.clients) else (None, "")


def load_rules(path: Path | None) -> UseCaseRules:
    """The rules at `path` (None: the built-in ones); RulesError when missing or invalid."""
    if path is None:
        return parse_rules((files("spendgate.inference") / DEFAULT_FILE).read_text(), "default rules")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RulesError(f"{path}: cannot read the use-case rules file: {reason}") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str) -> UseCaseRules:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: {exc}") from None
    try:
        parsed = validated(_RulesFile, data, source)
    except ConfigFileError as exc:
        raise RulesError(str(exc)) from None
    clients = tuple(_client(name, c, source) for name, c in parsed.clients.items())
    known = {c.name for c in clients}
    rules: list[Rule] = []
    for index, raw in enumerate(parsed.rules):
        where = f"{source}: rule {index + 1} ({raw.name})"
        if not _RULE_NAME.fullmatch(raw.name):
            raise RulesError(f"{where}: a rule name is lower-case letters, digits, '.', '_' or '-'")
        if any(r.name == raw.name for r in rules):
            raise RulesError(f"{where}: another rule has this name")
        if not raw.use_case or len(raw.use_case) > MAX_NAME_CHARS or has_control_chars(raw.use_case):
            raise RulesError(f"{where}: use_case must be a name of 1-{MAX_NAME_CHARS} printable characters")
        conditions = _conditions(raw.match, known, where)
        only = _set(raw.match.client) if raw.match.client is not None else None
        rules.append(Rule(raw.name, raw.use_case, raw.why, raw.enabled, conditions, only))
    return UseCaseRules(source, clients, tuple(rules), _client_index(clients))


def _client_index(clients: tuple[Client, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    alternatives: dict[str, list[str]] = {}
    for index, client in enumerate(clients):
        for header, pattern in client.headers:
            alternatives.setdefault(header, []).append(f"(?P<c{index}>{pattern.pattern})")
    flags = re.IGNORECASE | re.DOTALL
    return tuple((header, re.compile("|".join(parts), flags)) for header, parts in alternatives.items())


def _client(name: str, raw: _ClientFile, source: str) -> Client:
    if not raw.headers:
        raise RulesError(f'{source}: clients.{name}: needs headers = {{ name = "glob", ... }}')
    listed = _headers(raw.headers, f"{source}: clients.{name}")
    headers = tuple((h, _value_globs(v)) for h, v in listed)
    return Client(name, raw.why, headers, "; ".join(f"{h} = {_text(v)}" for h, v in listed))


def _headers(table: dict[str, Globs], where: str) -> list[tuple[str, Globs]]:
    out = []
    for name, value in table.items():
        lower = name.lower()
        if lower in SECRET_HEADERS:
            raise RulesError(f"{where}: header {name!r} carries a credential; rules may not read it")
        out.append((lower, value))
    return out


def _conditions(m: _MatchFile, clients: set[str], where: str) -> tuple[Condition, ...]:
    """The match table as conditions, cheapest first."""
    out: list[Condition] = []
    if m.client is not None:
        wanted = _set(m.client)
        unknown = wanted - clients
        if unknown:
            raise RulesError(f"{where}: client {sorted(unknown)} is not defined under [clients.*]")
        out.append(
            Condition(
                "client",
                _text(m.client),
                lambda s: s.client in wanted,
                lambda s: f"{s.client} ({s.client_via})" if s.client else "none",
                "client",  # and client_via, which the inferrer always keys on with it
            )
        )
    for name, value in _headers(m.header, where):
        out.append(_header_condition(name, value))
    if m.provider is not None:
        out.append(_in_set("provider", m.provider))
    if m.endpoint is not None:
        out.append(_glob("endpoint", m.endpoint))
    if m.model is not None:
        out.append(_glob("model", m.model))
    if m.key is not None:
        out.append(_glob("key", m.key))
    if m.team is not None:
        out.append(_in_set("team", m.team))
    for tag, value in m.tags.items():
        out.append(_tag(tag, value))
    for flag in ("stream", "tools", "thinking", "tool_results"):
        want = getattr(m, flag)
        if want is not None:
            out.append(_flag(flag, want))
    if m.last_role is not None:
        out.append(_in_set("last_role", m.last_role))
    for key, bound, field in (
        ("min_messages", m.min_messages, "messages"),
        ("max_messages", m.max_messages, "messages"),
        ("max_tokens_at_least", m.max_tokens_at_least, "max_tokens"),
        ("max_tokens_at_most", m.max_tokens_at_most, "max_tokens"),
        ("min_input_tokens", m.min_input_tokens, "input_tokens"),
        ("max_input_tokens", m.max_input_tokens, "input_tokens"),
    ):
        if bound is not None:
            out.append(_bound(key, bound, field))
    return tuple(out)


def _header_condition(name: str, value: Globs) -> Condition:
    pattern = _value_globs(value)
    return Condition(
        f"header {name}",
        _text(value),
        lambda s: (got := s.headers.get(name)) is not None and pattern.fullmatch(got) is not None,
        lambda s: repr(s.headers[name][:_SHOWN]) if name in s.headers else "absent",
        "headers",
        name,
    )


def _tag(tag: str, value: str) -> Condition:
    return Condition(
        f"tags.{tag}",
        value,
        lambda s: s.tags.get(tag) == value,
        lambda s: repr(s.tags.get(tag)),
        "tags",
        tag,
    )


def _in_set(field: str, names: Names) -> Condition:
    # `field` is the CallShape field the condition reads, named as in the file.
    wanted = _set(names)
    read: Callable[[CallShape], str] = operator.attrgetter(field)
    return Condition(field, _text(names), lambda s: read(s) in wanted, lambda s: repr(read(s)), field)


def _glob(field: str, globs: Globs) -> Condition:
    pattern = _globs(globs)
    read: Callable[[CallShape], str] = operator.attrgetter(field)
    return Condition(
        field,
        _text(globs),
        lambda s: pattern.fullmatch(read(s)) is not None,
        lambda s: repr(read(s)),
        field,
    )


def _flag(key: str, want: bool) -> Condition:
    read = operator.attrgetter(key)

    def seen(s: CallShape) -> str:
        return "yes" if read(s) else "no"

    return Condition(key, str(want).lower(), lambda s: read(s) is want, seen, key)


def _bound(key: str, bound: int, field: str) -> Condition:
    at_least = key.startswith("min_") or key.endswith("_at_least")
    read: Callable[[CallShape], int | None] = operator.attrgetter(field)

    def test(s: CallShape) -> bool:
        value = read(s)
        # A call that sets no max_tokens asks for the model's maximum: never "at most" anything.
        return value is not None and (value >= bound if at_least else value <= bound)

    def seen(s: CallShape) -> str:
        value = read(s)
        return "not set" if value is None else str(value)

    return Condition(key, str(bound), test, seen, field, size=True)


def _set(names: Names) -> frozenset[str]:
    return frozenset([names] if isinstance(names, str) else names)


def _text(value: Globs) -> str:
    return value if isinstance(value, str) else ", ".join(value)


def _globs(value: Globs) -> re.Pattern[str]:
    names = [value] if isinstance(value, str) else value
    return re.compile("|".join(f"(?:{fnmatch.translate(n)})" for n in names))


def _value_globs(value: Globs) -> re.Pattern[str]:
    # Header values: case does not matter ("OpenAI/Python" and "openai/python" are one client).
    names = [value] if isinstance(value, str) else value
    return re.compile("|".join(f"(?:{fnmatch.translate(n)})" for n in names), re.IGNORECASE | re.DOTALL)
