"""The header filter judges each name once (providers/base.py HeaderFilter): what it forwards, in what order,
must be what lower-casing every name afresh gives, the first time a name comes and every time
after, whatever its spelling, and past the bound on the names remembered."""

from __future__ import annotations

import random

from spendgate.providers.anthropic import AnthropicProvider
from spendgate.providers.base import _DROP_REQUEST, _DROP_RESPONSE_RAW, HeaderFilter


def request_afresh(incoming: dict[str, str]) -> dict[str, str]:
    """The filter as it was before names were remembered."""
    return {k: v for k, v in incoming.items() if k.lower() not in _DROP_REQUEST}


def raw_afresh(upstream: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        (k, v)
        for k, v in upstream
        if (name := k.lower()) not in _DROP_RESPONSE_RAW and not name.startswith(b"x-spendgate-")
    ]


NAMES = [
    *sorted(_DROP_REQUEST),
    *(name.decode() for name in sorted(_DROP_RESPONSE_RAW)),
    "anthropic-version", "anthropic-beta", "content-type", "user-agent", "x-client-request-id",
    "request-id", "retry-after", "x-spendgate-request-id", "x-spendgate-model", "x-spendgate-budget",
    "x-spendgate-", "x-spendgatex", "set-cookie", "x-stainless-lang", "é-header", "À-header",
]  # fmt: skip


def spellings(rng: random.Random, name: str) -> str:
    """`name` as a client or a provider might spell it: as is, capitalised, upper case, or mixed."""
    return rng.choice(
        [
            name,
            name.title(),
            name.upper(),
            "".join(c.upper() if rng.random() < 0.5 else c for c in name),
        ]
    )


def test_request_headers_as_lower_casing_every_name_gives() -> None:
    rng, kept = random.Random(18), HeaderFilter()
    for _ in range(400):
        incoming = {spellings(rng, name): f"v{i}" for i, name in enumerate(rng.sample(NAMES, 12))}
        got = kept.request(incoming)
        assert list(got.items()) == list(request_afresh(incoming).items()), incoming


def test_response_headers_as_lower_casing_every_name_gives() -> None:
    rng, kept = random.Random(27), HeaderFilter()
    for _ in range(400):
        names = [spellings(rng, name) for name in rng.choices(NAMES, k=12)]  # repeats, as set-cookie
        upstream = [(name.encode("latin-1"), f"v{i}".encode()) for i, name in enumerate(names)]
        got = kept.raw_response(upstream)
        assert got == raw_afresh(upstream), upstream


def test_past_the_bound_names_are_judged_afresh() -> None:
    kept = HeaderFilter(max_names=8)
    rng = random.Random(36)
    junk = [f"x-junk-{n}" for n in range(50)]
    for _ in range(50):
        incoming = {spellings(rng, name): "v" for name in rng.sample(NAMES + junk, 20)}
        assert list(kept.request(incoming).items()) == list(request_afresh(incoming).items())
        upstream = [(name.encode("latin-1"), b"v") for name in incoming]
        assert kept.raw_response(upstream) == raw_afresh(upstream)
    assert len(kept._kept_request) == 8
    assert len(kept._kept_raw) == len(kept._dropped_raw) == 8


def test_the_client_credential_never_goes_upstream_however_spelled() -> None:
    provider = AnthropicProvider("provider-key", "http://upstream")
    for spelling in ("x-api-key", "X-Api-Key", "X-API-KEY", "x-API-key"):
        for _ in range(2):  # the first time a spelling comes, and once it is remembered
            sent = provider.upstream_headers({spelling: "client-key", "Authorization": "Bearer c", "a": "b"})
            assert sent == {"a": "b", "accept-encoding": "identity", "x-api-key": "provider-key"}
