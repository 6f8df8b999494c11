"""Step 2, attribute: who pays (from the key) and for what (use case and tags).

Tags come from, in order of precedence: the `x-spendgate-tags` header, the request's
`metadata`, the key's defaults. A call with no use case is recorded as `untagged`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendgate.models import Principal
from spendgate.providers.base import ClientError

UNTAGGED = "untagged"
TAGS_HEADER = "x-spendgate-tags"
_MAX_TAGS = 32
_MAX_LEN = 200


@dataclass(frozen=True, slots=True)
class Attribution:
    use_case: str
    tags: dict[str, str]
    session_id: str | None
    agent_id: str | None
    parent_agent_id: str | None
    client_request_id: str | None
    user_agent: str | None


def attribute(principal: Principal, headers: Mapping[str, str], metadata: Mapping[str, Any]) -> Attribution:
    tags = dict(principal.default_tags)
    if principal.default_use_case:
        tags["use_case"] = principal.default_use_case
    tags.update(_metadata_tags(metadata))
    header = headers.get(TAGS_HEADER)
    if header:
        tags.update(parse_tags(header))
    use_case = tags.pop("use_case", None) or UNTAGGED
    return Attribution(
        use_case=use_case,
        tags=tags,
        session_id=headers.get("x-claude-code-session-id"),
        agent_id=headers.get("x-claude-code-agent-id"),
        parent_agent_id=headers.get("x-claude-code-parent-agent-id"),
        client_request_id=headers.get("x-client-request-id"),
        user_agent=headers.get("user-agent"),
    )


def parse_tags(text: str) -> dict[str, str]:
    """`use_case=code-review,repo=api` -> {'use_case': 'code-review', 'repo': 'api'}."""
    tags: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ClientError(
                400,
                "invalid_request_error",
                f"{TAGS_HEADER} must be comma-separated key=value pairs, e.g. use_case=code-review,repo=api; "
                f"got {part.strip()[:60]!r}",
            )
        tags[key[:_MAX_LEN]] = value[:_MAX_LEN]
    if len(tags) > _MAX_TAGS:
        raise ClientError(400, "invalid_request_error", f"{TAGS_HEADER} carries more than {_MAX_TAGS} tags")
    return tags


def _metadata_tags(metadata: Mapping[str, Any]) -> dict[str, str]:
    # OpenAI's metadata is a free map of strings; Anthropic's accepts only user_id, so
    # Anthropic callers tag with the header instead.
    tags: dict[str, str] = {}
    raw = metadata.get("tags")
    if isinstance(raw, str):
        tags.update(parse_tags(raw))
    elif isinstance(raw, dict):
        tags.update({str(k)[:_MAX_LEN]: str(v)[:_MAX_LEN] for k, v in raw.items()})
    use_case = metadata.get("use_case")
    if isinstance(use_case, str) and use_case:
        tags["use_case"] = use_case[:_MAX_LEN]
    return tags
