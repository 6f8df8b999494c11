"""Configuration and record types of the fake upstream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FakeSettings:
    """How the fake behaves; per-request headers (``x-fake-*``) can override some of it."""

    anthropic_api_key: str | None = None  # when set, other keys get a 401
    openai_api_key: str | None = None
    aws_access_key_id: str | None = None  # when set (with the secret), Bedrock calls need its SigV4
    aws_secret_access_key: str | None = None
    google_public_key: str | None = None  # PEM; when set, the token grant is checked and Vertex calls
    # need a token the fake issued
    latency_ms: float = 0  # delay before response headers
    chunk_delay_ms: float = 0  # delay between stream events
    # A stream's events in one body write (with no chunk delay): for benchmarks, where a write per
    # event made the fake, not the proxy under test, the bottleneck of a streaming run.
    whole_streams: bool = False
    output_tokens: int = 24  # default output length
    batch_ms: float = 0  # how long a Message Batch takes to end after it is created
    record_requests: int = 200  # keep the last N requests; 0 disables recording


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    received_at: float = 0.0  # time.time() when the fake read it (shows a client's retry waits)

    def to_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body.decode("utf-8", errors="replace"),
            "received_at": self.received_at,
        }
