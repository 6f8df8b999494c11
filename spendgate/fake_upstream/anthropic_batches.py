"""The Anthropic Message Batches fake: create, retrieve, list, cancel, delete, and results as JSONL.

Each request of a batch is answered at creation with the same logic as ``/v1/messages`` (so a
batch's usage is what the same calls would have used; ``service_tier`` says ``batch``), and
the batch ends ``batch_ms`` after creation (``FakeSettings.batch_ms``, or ``x-fake-batch-ms`` on
the create call). A request whose params the Messages endpoint would refuse becomes an
``errored`` result, as in the real API. A batch cancelled before it ends has every request
``canceled``. ``x-fake-mode: stream-cut`` on the results call drops the connection halfway.
``results_url`` is absolute and points at this server, like Anthropic's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from spendgate.fake_upstream.anthropic_api import error_response, front, front_json, make_reply, message_json
from spendgate.fake_upstream.common import Controls, FakeState, json_response
from spendgate.fake_upstream.streaming import EventStreamResponse

MAX_REQUESTS = 100_000
EXPIRY_S = 24 * 3600
LIST_LIMIT = (1, 1000, 20)  # smallest, largest, default page size


@dataclass(slots=True)
class Batch:
    id: str
    created_at: float
    ends_at: float
    results: list[bytes]  # one JSONL line per request, in request order
    counts: dict[str, int]  # succeeded / errored once it has ended
    results_url: str
    cancel_initiated_at: float | None = None
    cancelled: list[bytes] = field(default_factory=list)

    def ended(self, now: float) -> bool:
        return self.cancel_initiated_at is not None or now >= self.ends_at

    def status(self, now: float) -> str:
        if self.cancel_initiated_at is not None and now < self.ends_at and not self.cancelled:
            return "canceling"
        return "ended" if self.ended(now) else "in_progress"

    def lines(self) -> list[bytes]:
        return self.cancelled or self.results

    def view(self, now: float, *, fresh: bool = False) -> dict[str, Any]:
        status = "in_progress" if fresh else self.status(now)
        zero = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if status == "ended":
            counts = {**zero, **({"canceled": len(self.cancelled)} if self.cancelled else self.counts)}
        else:
            counts = {**zero, "processing": len(self.results)}
        ended_at = (self.cancel_initiated_at or self.ends_at) if status == "ended" else None
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": _iso(ended_at),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.created_at + EXPIRY_S),
            "archived_at": None,
            "cancel_initiated_at": _iso(self.cancel_initiated_at),
            "results_url": self.results_url if status == "ended" else None,
        }


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def _line(custom_id: str, result: dict[str, Any]) -> bytes:
    return orjson.dumps({"custom_id": custom_id, "result": result}) + b"\n"


def _errored(kind: str, message: str) -> dict[str, Any]:
    return {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": message}}}


def _requests_error(payload: dict[str, Any]) -> str | None:
    requests = payload.get("requests")
    if not isinstance(requests, list) or not requests:
        return "requests: Field required (a non-empty list)"
    if len(requests) > MAX_REQUESTS:
        return f"requests: at most {MAX_REQUESTS} requests per batch"
    seen: set[str] = set()
    for i, item in enumerate(requests):
        if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
            return f"requests.{i}.params: Field required"
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 64:
            return f"requests.{i}.custom_id: a string of 1 to 64 characters is required"
        if custom_id in seen:
            return f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}"
        seen.add(custom_id)
    return None


async def create(request: Request) -> Response:
    ready = await front_json(request)
    if isinstance(ready, Response):
        return ready
    state, request_id, controls, payload = ready
    problem = _requests_error(payload)
    if problem is not None:
        return error_response(400, "invalid_request_error", problem, request_id)
    batch_id = "msgbatch_fake" + state.next_id()
    lines: list[bytes] = []
    counts = {"succeeded": 0, "errored": 0}
    for n, item in enumerate(payload["requests"]):
        params = item["params"]
        reply = make_reply(params, state, controls, f"msg_fake{batch_id[13:]}_{n:06d}")
        if params.get("stream") is True:
            reply = "stream: streaming is not supported in batches"
        if isinstance(reply, str):
            lines.append(_line(item["custom_id"], _errored("invalid_request_error", reply)))
            counts["errored"] += 1
            continue
        message = message_json(reply, state)
        message["usage"] = {**message["usage"], "service_tier": "batch"}
        lines.append(_line(item["custom_id"], {"type": "succeeded", "message": message}))
        counts["succeeded"] += 1
    now = time.time()
    results_url = f"{str(request.base_url).rstrip('/')}/v1/messages/batches/{batch_id}/results"
    batch = Batch(batch_id, now, now + controls.batch_s, lines, counts, results_url)
    state.batches.put(batch_id, batch)
    return json_response(batch.view(now, fresh=True), headers={"request-id": request_id})


async def _found(request: Request) -> tuple[Batch, FakeState, str, Controls] | Response:
    """``front``, then the batch named in the path (404 when there is none)."""
    ready = await front(request)
    if isinstance(ready, Response):
        return ready
    state, request_id, controls, _ = ready
    batch_id = request.path_params["batch_id"]
    batch = state.batches.get(batch_id)
    if not isinstance(batch, Batch):
        return error_response(404, "not_found_error", f"message_batch_id: {batch_id!r} not found", request_id)
    return batch, state, request_id, controls


async def retrieve(request: Request) -> Response:
    found = await _found(request)
    if isinstance(found, Response):
        return found
    batch, _, request_id, _ = found
    return json_response(batch.view(time.time()), headers={"request-id": request_id})


async def cancel(request: Request) -> Response:
    found = await _found(request)
    if isinstance(found, Response):
        return found
    batch, _, request_id, _ = found
    now = time.time()
    if not batch.ended(now):
        batch.cancel_initiated_at = now
        view = batch.view(now)
        view["processing_status"] = "canceling"  # what the cancel call itself reports
        canceled = {"type": "canceled"}
        batch.cancelled = [_line(orjson.loads(line)["custom_id"], canceled) for line in batch.results]
        return json_response(view, headers={"request-id": request_id})
    return json_response(batch.view(now), headers={"request-id": request_id})


async def delete(request: Request) -> Response:
    found = await _found(request)
    if isinstance(found, Response):
        return found
    batch, state, request_id, _ = found
    if not batch.ended(time.time()):
        message = "Batches must be ended (or canceled) before they can be deleted."
        return error_response(400, "invalid_request_error", message, request_id)
    state.batches.pop(batch.id)
    body = {"id": batch.id, "type": "message_batch_deleted"}
    return json_response(body, headers={"request-id": request_id})


async def list_batches(request: Request) -> Response:
    ready = await front(request)
    if isinstance(ready, Response):
        return ready
    state, request_id, _, _ = ready
    low, high, default = LIST_LIMIT
    try:
        limit = int(request.query_params.get("limit", default))
    except ValueError:
        limit = 0
    if not low <= limit <= high:
        return error_response(
            400, "invalid_request_error", f"limit: must be between {low} and {high}", request_id
        )
    batches = [b for b in reversed(state.batches.data.values()) if isinstance(b, Batch)]  # newest first
    ids = [b.id for b in batches]
    after, before = request.query_params.get("after_id"), request.query_params.get("before_id")
    if after in ids:
        batches = batches[ids.index(after) + 1 :]
    elif before in ids:
        batches = batches[: ids.index(before)][::-1]  # nearest to before_id first
    page, now = batches[:limit], time.time()
    if before in ids:
        page.reverse()
    data = [b.view(now) for b in page]
    body = {
        "data": data,
        "has_more": len(batches) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    return json_response(body, headers={"request-id": request_id})


async def results(request: Request) -> Response:
    found = await _found(request)
    if isinstance(found, Response):
        return found
    batch, _, request_id, controls = found
    if not batch.ended(time.time()):
        message = f"Batch {batch.id!r} has not finished processing; its results are not available yet."
        return error_response(400, "invalid_request_error", message, request_id)
    lines = batch.lines()
    cut = controls.mode == "stream-cut"
    if cut:
        lines = lines[: max(1, len(lines) // 2)]
    return EventStreamResponse(
        lines,
        headers={"request-id": request_id},
        delay_s=controls.chunk_delay_s,
        cut=cut,
        media_type="application/binary",
    )
