"""Step 2, attribute: who pays (from the key) and for what (use case and tags).

Tags come from, in order of precedence: the `x-spendgate-tags` header, the request's
`metadata`, the key's defaults. A call that declares no use case gets one from the use-case
rules (`spendgate.inference`), from its headers and shape; failing that it is `untagged`.
`use_case_source` says which: header, metadata, key, inferred:<rule> or none.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spendgate.errors import InvalidRequest
from spendgate.inference.infer import Inferrer
from spendgate.models import Principal
from spendgate.providers.base import MAX_NAME_CHARS, Provider, RequestInfo, RouteFeatures, has_control_chars

UNTAGGED = "untagged"
TAGS_HEADER = "x-spendgate-tags"
# A client's session id, first found wins: Claude Code's, then Codex CLI's (its thread id when
# it sends no session id; both are the same conversation).
SESSION_HEADERS = ("x-claude-code-session-id", "session-id", "thread-id")
MAX_TAGS = 32
# Where a use case came from (the ledger's use_case_source); inferred ones are "inferred:<rule>".
HEADER, METADATA, KEY, NONE = "header", "metadata", "key", "none"
INFERRED_PREFIX = "inferred:"
_MAX_HEADER = 1000  # user-agent: long enough for any real client's


@dataclass(slots=True)
class Attribution:
    """Built once a call and read by every later step: a slots dataclass, which Python 3.11 builds
    and reads faster than a NamedTuple. Not frozen (a frozen __init__ costs twice a plain one);
    nothing assigns to it."""

    use_case: str
    tags: dict[str, str]
    session_id: str | None
    agent_id: str | None
    parent_agent_id: str | None
    client_request_id: str | None
    user_agent: str | None
    use_case_source: str = NONE
    use_case_evidence: str | None = None  # an inferred use case: what the call had for its rule


def attribute(principal: Principal, headers: Mapping[str, str], metadata: Mapping[str, Any]) -> Attribution:
    """Who pays and the declared use case and tags (no inference)."""
    use_case, source, tags = _declared(principal, headers, metadata)
    return _attribution(use_case, source, None, tags, headers)


def _declared(
    principal: Principal, headers: Mapping[str, str], metadata: Mapping[str, Any]
) -> tuple[str, str, dict[str, str]]:
    """(use case, where it came from, the other tags), by precedence: header, metadata, key."""
    tags = dict(principal.default_tags)
    if principal.default_use_case:
        tags["use_case"] = principal.default_use_case
    source = KEY if tags.get("use_case") else NONE
    if metadata:  # most calls carry none
        declared = _metadata_tags(metadata)
        if declared.get("use_case"):
            source = METADATA
        tags.update(declared)
    header = headers.get(TAGS_HEADER)
    if header:
        declared = _header_tags(header)
        if declared.get("use_case"):
            source = HEADER
        tags.update(declared)
    return tags.pop("use_case", None) or UNTAGGED, source, tags


def _attribution(
    use_case: str, source: str, evidence: str | None, tags: dict[str, str], headers: Mapping[str, str]
) -> Attribution:
    # Every call: one lookup a header, no helper calls. The HTTP server refuses control
    # characters in headers; only the length is ours to cap.
    # `x and x[:n]`: None stays None, "" stays "" (as `None if x is None else x[:n]`).
    get = headers.get
    session = get(SESSION_HEADERS[0]) or get(SESSION_HEADERS[1]) or get(SESSION_HEADERS[2])
    agent, parent = get("x-claude-code-agent-id"), get("x-claude-code-parent-agent-id")
    request_id, user_agent = get("x-client-request-id"), get("user-agent")
    return Attribution(
        use_case,
        tags,
        session[:MAX_NAME_CHARS] if session else None,
        agent and agent[:MAX_NAME_CHARS],
        parent and parent[:MAX_NAME_CHARS],
        request_id and request_id[:MAX_NAME_CHARS],
        user_agent and user_agent[:_MAX_HEADER],
        source,
        evidence,
    )


def attribute_call(
    principal: Principal,
    headers: Mapping[str, str],
    provider: str,
    info: RequestInfo,
    features: RouteFeatures,
    body_bytes: int,
    inferrer: Inferrer,
) -> Attribution:
    """`attribute`, then, for a call that declares no use case, the first use-case rule that
    matches its headers and shape."""
    use_case, source, tags = _declared(principal, headers, info.metadata)
    if source == NONE and inferrer.active:
        found = inferrer.infer_call(provider, info, features, principal, tags, headers, body_bytes)
        if found is not None:
            return _attribution(found.use_case, found.source, found.evidence, tags, headers)
    return _attribution(use_case, source, None, tags, headers)


def attribute_features(
    principal: Principal,
    headers: Mapping[str, str],
    provider: Provider,
    info: RequestInfo,
    body_bytes: int,
    inferrer: Inferrer,
) -> tuple[Attribution, RouteFeatures | None]:
    """`attribute_call`, reading the call's route features only when a use case has to be
    inferred: (the attribution, the features it read, or None). A call that declares its use case
    (or meets no rules) leaves them to routing, which needs them only for a rule that reads them."""
    if principal.default_tags or principal.default_use_case or info.metadata:
        use_case, source, tags = _declared(principal, headers, info.metadata)
    elif header := headers.get(TAGS_HEADER):  # _declared's usual cases inline: the header's tags
        tags = dict(_header_tags(header))
        declared = tags.pop("use_case", None)  # never "": parse_tags refuses an empty value
        use_case, source = (declared, HEADER) if declared else (UNTAGGED, NONE)
    else:  # or none at all
        use_case, source, tags = UNTAGGED, NONE, {}
    if source == NONE and inferrer.active:
        features = provider.route_features(info)
        found = inferrer.infer_call(provider.name, info, features, principal, tags, headers, body_bytes)
        if found is not None:
            return _attribution(found.use_case, found.source, found.evidence, tags, headers), features
        return _attribution(use_case, source, None, tags, headers), features
    return _attribution(use_case, source, None, tags, headers), None


def is_inferred(source: str | None) -> bool:
    return source is not None and source.startswith(INFERRED_PREFIX)


def parse_tags(text: str) -> dict[str, str]:
    """`use_case=code-review,repo=api` -> {'use_case': 'code-review', 'repo': 'api'}."""
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise InvalidRequest(
                f"{TAGS_HEADER} must be comma-separated key=value pairs, e.g. use_case=code-review,repo=api; "
                f"got {part.strip()[:60]!r}",
            )
        pairs.append((key, value))
    return checked_tags(pairs, TAGS_HEADER)


@functools.lru_cache(maxsize=256)
def _header_tags(header: str) -> dict[str, str]:
    """`parse_tags` remembered by the header's text (a client sends the same few on every call);
    a header it refuses is parsed again each time, so every call gets its own error. The dict is
    shared by the calls that sent that text: `_declared` only reads it."""
    return parse_tags(header)


def checked_tags(pairs: Iterable[tuple[str, str]], source: str) -> dict[str, str]:
    """The one cap for tags from every source: at most MAX_TAGS, each key and value cut to
    MAX_NAME_CHARS, and no control characters (the ledger's text columns refuse NUL)."""
    tags: dict[str, str] = {}
    for key, value in pairs:
        if len(tags) >= MAX_TAGS:
            raise InvalidRequest(f"{source} carries more than {MAX_TAGS} tags")
        if has_control_chars(key) or has_control_chars(value):
            raise InvalidRequest(f"{source}: tag {key[:60]!r} contains control characters")
        tags[key[:MAX_NAME_CHARS]] = value[:MAX_NAME_CHARS]
    return tags


def _metadata_tags(metadata: Mapping[str, Any]) -> dict[str, str]:
    # OpenAI's metadata is a free map of strings; Anthropic's accepts only user_id, so
    # Anthropic callers tag with the header instead. Types were checked by the provider's parse.
    tags: dict[str, str] = {}
    raw = metadata.get("tags")
    if isinstance(raw, str):
        tags.update(parse_tags(raw))
    elif isinstance(raw, dict):
        tags.update(checked_tags(((str(k), str(v)) for k, v in raw.items()), "metadata.tags"))
    use_case = metadata.get("use_case")
    if isinstance(use_case, str) and use_case:
        tags.update(checked_tags([("use_case", use_case)], "metadata.use_case"))
    return tags
