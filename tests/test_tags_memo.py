"""The `x-spendgate-tags` header is parsed once per distinct text (attribution.py `_header_tags`):
what a call is attributed to must be what parsing its header afresh gives, the first time and
the next, for valid headers and refused ones, past the memo's bound; and nothing a caller does
with one call's tags reaches the next call's."""

from __future__ import annotations

import random

import pytest

from spendgate.attribution import TAGS_HEADER, UNTAGGED, _header_tags, attribute, parse_tags
from spendgate.errors import InvalidRequest
from spendgate.models import Principal

PRINCIPAL = Principal("kid", "key", "o", "t", None, "CC", None, {"env": "prod"}, None, team_name="team")


def header_texts(rng: random.Random) -> list[str]:
    parts = ["use_case=code-review", "repo=api", "repo = web ", "env=dev", "use_case=", " ", "x", "a=b=c"]
    return [",".join(rng.choices(parts, k=rng.randint(1, 4))) for _ in range(600)]


def fresh(text: str) -> tuple[str, str, dict[str, str]] | str:
    """The attribution with nothing remembered: the key's tags, then the header's, parsed now."""
    try:
        declared = parse_tags(text)
    except InvalidRequest as exc:
        return f"refused: {exc.message}"
    tags = {"env": "prod", **declared}
    use_case = tags.pop("use_case", None)
    return use_case or UNTAGGED, "header" if declared.get("use_case") else "none", tags


def attributed(text: str) -> tuple[str, str, dict[str, str]] | str:
    try:
        who = attribute(PRINCIPAL, {TAGS_HEADER: text}, {})
    except InvalidRequest as exc:
        return f"refused: {exc.message}"
    return who.use_case, who.use_case_source, who.tags


def test_a_remembered_header_is_attributed_as_parsing_it_afresh() -> None:
    rng = random.Random(5)
    texts = header_texts(rng)
    assert len(set(texts)) > _header_tags.cache_info().maxsize  # the memo starts over meanwhile
    outcomes = set()
    for text in rng.sample(texts * 2, len(texts) * 2):
        got = attributed(text)
        assert got == fresh(text), text
        outcomes.add(got if isinstance(got, str) else got[1])
        assert _header_tags.cache_info().currsize <= _header_tags.cache_info().maxsize
    assert {"header", "none"} <= outcomes and any(o.startswith("refused") for o in outcomes)


def test_one_calls_tags_are_its_own() -> None:
    first = attribute(PRINCIPAL, {TAGS_HEADER: "use_case=review,repo=api"}, {})
    first.tags["repo"] = "changed"
    first.tags["extra"] = "x"
    second = attribute(PRINCIPAL, {TAGS_HEADER: "use_case=review,repo=api"}, {})
    assert second.tags == {"env": "prod", "repo": "api"} and second.use_case == "review"


def test_a_refused_header_is_refused_every_time() -> None:
    for _ in range(3):
        with pytest.raises(InvalidRequest, match="key=value pairs"):
            attribute(PRINCIPAL, {TAGS_HEADER: "use_case"}, {})
