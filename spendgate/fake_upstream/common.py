"""Per-app state and the helpers both provider fakes share (controls, recording, token maths)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from spendgate.fake_upstream.settings import FakeSettings, RecordedRequest
from spendgate.fake_upstream.text import ANSWER_TEXT, THINKING_TEXT, Corpus

MODES = frozenset(
    {"ok", "error-400", "error-401", "error-429", "error-500", "error-529"}
    | {"stream-error", "stream-cut", "stream-failed", "unknown-event"}
)
CACHE_ENTRIES = 10_000  # bound on remembered prompt-cache prefixes
STORED_ENTRIES = 10_000  # bound on stored responses and batches
V = TypeVar("V")


class ControlError(ValueError):
    """A malformed ``x-fake-*`` header; answered with a 400."""


class BoundedMap(Generic[V]):
    """A dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data: dict[Hashable, V] = {}

    def get(self, key: Hashable) -> V | None:
        return self.data.get(key)

    def put(self, key: Hashable, value: V) -> None:
        self.data.pop(key, None)
        self.data[key] = value
        if len(self.data) > self.limit:
            del self.data[next(iter(self.data))]

    def pop(self, key: Hashable) -> V | None:
        return self.data.pop(key, None)


@dataclass(slots=True)
class FakeState:
    """Everything mutable lives here, on ``app.state.fake``."""

    settings: FakeSettings
    recorded: deque[RecordedRequest] = field(init=False)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    prompt_cache: BoundedMap[int] = field(default_factory=lambda: BoundedMap(CACHE_ENTRIES))
    # Stored Responses API objects and Message Batches, by id (what GET, DELETE and cancel read).
    responses: BoundedMap[dict[str, Any]] = field(default_factory=lambda: BoundedMap(STORED_ENTRIES))
    batches: BoundedMap[Any] = field(default_factory=lambda: BoundedMap(STORED_ENTRIES))
    answer: Corpus = field(default_factory=lambda: Corpus.build(ANSWER_TEXT))
    thinking: Corpus = field(default_factory=lambda: Corpus.build(THINKING_TEXT))
    google_tokens: set[str] = field(default_factory=set)  # access tokens the Vertex fake issued

    def __post_init__(self) -> None:
        self.recorded = deque(maxlen=max(self.settings.record_requests, 0))

    def next_id(self) -> str:
        """A fresh, deterministic id suffix (ids count up from 1 per app)."""
        return f"{next(self.ids):020d}"

    async def ingest(self, request: Request) -> tuple[bytes, dict[str, str]]:
        """Read the body, record the request, and return it with its headers as a plain dict.

        One dict per request: Starlette's ``Headers`` rescans the raw list on every lookup.
        """
        body = await request.body()
        headers: dict[str, str] = {}
        for raw_name, raw_value in request.scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if self.recorded.maxlen:
            scope = request.scope
            query = scope["query_string"].decode("latin-1")
            self.recorded.append(
                RecordedRequest(scope["method"], scope["path"], query, headers, body, time.time())
            )
        return body, headers


def fake_state(request: Request) -> FakeState:
    state: FakeState = request.app.state.fake
    return state


@dataclass(frozen=True, slots=True)
class Controls:
    """Per-request test controls from ``x-fake-*`` headers, with settings as defaults."""

    mode: str
    latency_s: float
    chunk_delay_s: float
    output_tokens: int
    usage: dict[str, Any] | None
    batch_s: float = 0  # how long a Message Batch created by this request takes to end
    whole_stream: bool = False  # the stream's events in one body write (no chunk delay only)
    retry_after: dict[str, str] = field(default_factory=dict)  # headers a mode error carries instead


def error_headers(status: int, controls: Controls | None) -> dict[str, str]:
    """The wait headers of an error answer: `retry-after: 1` on a 429, unless the request's
    `x-fake-retry-after` / `x-fake-retry-after-ms` say what to send (on any mode error)."""
    if controls is not None and controls.retry_after:
        return dict(controls.retry_after)
    return {"retry-after": "1"} if status == 429 else {}


def _chunks(headers: Mapping[str, str], whole_by_default: bool) -> bool:
    """x-fake-stream-chunks: `event` (a body write per event) or `whole` (one write)."""
    raw = headers.get("x-fake-stream-chunks")
    if raw is None:
        return whole_by_default
    if raw not in ("event", "whole"):
        raise ControlError(f"x-fake-stream-chunks must be 'event' or 'whole', got {raw!r}")
    return raw == "whole"


def _number(headers: Mapping[str, str], name: str, default: float) -> float:
    raw = headers.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ControlError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ControlError(f"{name} must not be negative")
    return value


def parse_controls(headers: Mapping[str, str], settings: FakeSettings, body: bytes = b"") -> Controls:
    mode = headers.get("x-fake-mode", "ok").strip().lower()
    if mode not in MODES:
        raise ControlError(f"unknown x-fake-mode {mode!r}; expected one of {sorted(MODES)}")
    only = headers.get("x-fake-mode-models")
    if only is not None and mode != "ok":
        # The mode hits only these models: lets a test fail one model and watch the fallback.
        try:
            model = orjson.loads(body).get("model")
        except (orjson.JSONDecodeError, AttributeError):
            model = None
        if model not in {m.strip() for m in only.split(",")}:
            mode = "ok"
    usage: dict[str, Any] | None = None
    raw_usage = headers.get("x-fake-usage")
    if raw_usage is not None:
        try:
            parsed = orjson.loads(raw_usage)
        except orjson.JSONDecodeError:
            raise ControlError("x-fake-usage must be a JSON object") from None
        if not isinstance(parsed, dict):
            raise ControlError("x-fake-usage must be a JSON object")
        usage = parsed
    return Controls(
        mode=mode,
        latency_s=_number(headers, "x-fake-latency-ms", settings.latency_ms) / 1000,
        chunk_delay_s=_number(headers, "x-fake-chunk-delay-ms", settings.chunk_delay_ms) / 1000,
        output_tokens=int(_number(headers, "x-fake-output-tokens", settings.output_tokens)),
        usage=usage,
        batch_s=_number(headers, "x-fake-batch-ms", settings.batch_ms) / 1000,
        whole_stream=_chunks(headers, settings.whole_streams),
        retry_after={
            name.removeprefix("x-fake-"): headers[name]
            for name in ("x-fake-retry-after", "x-fake-retry-after-ms")
            if name in headers
        },
    )


async def pause(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def tokens_for(chars: int) -> int:
    """The fake tokenizer: four characters a token, rounded up."""
    return -(-chars // 4)


def json_chars(value: object) -> int:
    return len(orjson.dumps(value))


def parse_json_object(body: bytes) -> dict[str, Any] | str:
    """The decoded body, or an error message when it is not a JSON object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return f"There was an error parsing the body: {exc}"
    if not isinstance(payload, dict):
        return "The request body must be a JSON object."
    return payload


def json_response(payload: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")


def bearer_token(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def is_anthropic_request(headers: Mapping[str, str]) -> bool:
    """Routes shared by both providers pick the wire format from the client's headers."""
    return "anthropic-version" in headers or "x-api-key" in headers
