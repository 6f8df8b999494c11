"""Anthropic Message Batches vocabulary: the create body, the batch object, the JSONL results.

A batch's requests are ordinary Messages calls, billed at the batch rate once processed; the
only place their usage appears is the results file (`/v1/messages/batches/{id}/results`), one
JSON line per request: `{"custom_id", "result": {"type": "succeeded", "message": {..., "usage"}}}`
(or `errored`, `canceled`, `expired`, which are not billed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from spendgate.errors import InvalidRequest
from spendgate.pricing import Usage
from spendgate.providers.anthropic import usage_from


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request of a batch, as far as the budget check before it leaves needs it."""

    custom_id: str
    model: str
    params_bytes: int
    max_tokens: int | None


@dataclass(frozen=True, slots=True)
class BatchCall:
    """One succeeded request of a batch, read from its results."""

    custom_id: str
    message_id: str | None
    model: str
    usage: Usage  # batch=True: priced at the batch rate


def batch_requests(body: bytes) -> list[BatchRequest]:
    """The requests of a create call; InvalidRequest when the body is not a batch."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    requests = data.get("requests") if isinstance(data, dict) else None
    if not isinstance(requests, list) or not requests:
        raise InvalidRequest("requests: Field required (a non-empty list)")
    out = []
    for i, item in enumerate(requests):
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            raise InvalidRequest(f"requests.{i}.params.model: Field required")
        limit = params.get("max_tokens")
        out.append(
            BatchRequest(
                custom_id=str(item.get("custom_id", "")),
                model=params["model"],
                params_bytes=len(orjson.dumps(params)),
                max_tokens=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
            )
        )
    return out


def with_results_url(batch: dict[str, Any], gateway_url: str) -> dict[str, Any]:
    """The batch object with `results_url` pointing at Spendgate, so the SDKs fetch results through it.

    Anthropic's `results_url` is absolute (api.anthropic.com): the SDKs follow it as it is, with the
    caller's credential, which for a virtual key would fail there and bypass metering.
    """
    if batch.get("results_url") and isinstance(batch.get("id"), str):
        return {**batch, "results_url": f"{gateway_url}/v1/messages/batches/{batch['id']}/results"}
    return batch


class BatchResultsReader:
    """Reads a results body as it passes, chunk by chunk; keeps each succeeded result's usage."""

    __slots__ = ("_pending", "calls", "lines", "unreadable")

    def __init__(self) -> None:
        self._pending = b""
        self.calls: list[BatchCall] = []
        self.lines = 0
        self.unreadable = 0  # lines that are not a result object (never expected)

    def feed(self, chunk: bytes) -> None:
        data = self._pending + chunk if self._pending else chunk
        *lines, self._pending = data.split(b"\n")
        for line in lines:
            self._read(line)

    def finish(self) -> None:
        """The body has ended: read a last line without a newline."""
        rest, self._pending = self._pending, b""
        self._read(rest)

    def _read(self, line: bytes) -> None:
        if not line.strip():
            return
        self.lines += 1
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.unreadable += 1
            return
        result = item.get("result") if isinstance(item, dict) else None
        if not isinstance(result, dict):
            self.unreadable += 1
            return
        message = result.get("message")
        if result.get("type") != "succeeded" or not isinstance(message, dict):
            return  # errored, canceled and expired requests are not billed
        usage = message.get("usage")
        if not isinstance(usage, dict):
            self.unreadable += 1
            return
        self.calls.append(
            BatchCall(
                custom_id=str(item.get("custom_id", "")),
                message_id=message.get("id") if isinstance(message.get("id"), str) else None,
                model=str(message.get("model", "")),
                usage=usage_from(usage)._replace(batch=True),
            )
        )
