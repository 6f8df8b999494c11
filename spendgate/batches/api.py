"""`/v1/messages/batches`: Anthropic's Message Batches relayed, owned and metered.

- create: the key is checked, every request's model must have a price, and the batch's worst
  case (each request's input bound and `max_tokens`, at the batch rate) must fit every budget
  that applies (nothing is held: a batch may take 24 hours); the batch is remembered with the
  creating key's attribution (`message_batches`).
- retrieve, list, cancel, delete: only for batches created through Spendgate by the caller's org
  (others are a 404, and are left out of the list); `results_url` points at Spendgate.
- results: relayed as they arrive; once the whole file has been read, its succeeded requests are
  written to the ledger at the batch rate, attributed to the creating key, by the first fetch
  that reads it whole (a claim in the database makes it exactly once, across replicas too).
  A batch deleted through Spendgate before its results were read has them read and metered first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from spendgate.admission import acquire_rate_limit, budget_refusal, priced, read_body
from spendgate.attribution import Attribution, attribute_call
from spendgate.auth import Keyring
from spendgate.batches.ledger import batch_rows
from spendgate.budgets.enforcer import BudgetEnforcer, CallScope
from spendgate.budgets.estimate import input_bound, worst_case_nanos
from spendgate.clock import from_epoch, utc_now_iso
from spendgate.errors import CountersUnavailable, SpendgateError, UnknownEndpoint, UpstreamCut
from spendgate.inference.infer import Inferrer
from spendgate.ledger import LedgerWriter
from spendgate.metrics import Metrics
from spendgate.models import MessageBatch, Principal
from spendgate.pricing import Pricer
from spendgate.providers.anthropic import AnthropicProvider
from spendgate.providers.anthropic_batches import (
    BatchRequest,
    BatchResultsReader,
    batch_requests,
    with_results_url,
)
from spendgate.providers.base import (
    RequestInfo,
    RouteFeatures,
    UpstreamRequest,
    forwardable_response_headers,
)
from spendgate.proxy import REQUEST_ID_HEADER, new_request_id
from spendgate.store.batches import BatchStore
from spendgate.upstream import Upstream

log = logging.getLogger(__name__)

PATH = "/v1/messages/batches"


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int
    default_max_tokens: int


class BatchesAPI:
    """The batch endpoints, holding only the parts of the gateway they use."""

    def __init__(
        self,
        provider: AnthropicProvider,
        keyring: Keyring,
        upstream: Upstream,
        store: BatchStore,
        pricer: Pricer,
        budgets: BudgetEnforcer,
        ledger: LedgerWriter,
        metrics: Metrics,
        inferrer: Inferrer,
        limits: Limits,
    ) -> None:
        self.provider = provider
        self._keyring = keyring
        self._upstream = upstream
        self._store = store
        self._pricer = pricer
        self._budgets = budgets
        self._ledger = ledger
        self._metrics = metrics
        self._inferrer = inferrer
        self._limits = limits

    # --- the endpoints ---
    async def create(self, request: Request) -> Response:
        request_id = new_request_id()
        try:
            principal = await self._keyring.authenticate(request.headers)
            body = await read_body(
                request.receive, request.headers.get("content-length"), self._limits.max_body_bytes
            )
            requests = batch_requests(body)
            who = self._attribute(principal, request.headers, len(requests), len(body))
            await self._check_budgets(
                principal, CallScope(principal, who.use_case, who.tags, who.session_id), requests
            )
            upstream = await self.send_upstream(request, "POST", PATH, body)
            status, headers, payload = await _read(upstream)
        except SpendgateError as exc:
            return self.error_response(exc, request_id)
        if status == 200:
            batch_id = orjson.loads(payload).get("id")
            if isinstance(batch_id, str):
                batch = MessageBatch(
                    batch_id=batch_id,
                    provider=self.provider.name,
                    created_at=utc_now_iso(),
                    request_count=len(requests),
                    key_id=principal.key_id,
                    org_id=principal.org_id,
                    team_id=principal.team_id,
                    user_id=principal.user_id,
                    cost_center=principal.cost_center,
                    use_case=who.use_case,
                    use_case_source=who.use_case_source,
                    tags=who.tags,
                    session_id=who.session_id,
                    user_agent=who.user_agent,
                    create_request_id=request_id,
                )
                try:
                    await asyncio.to_thread(self._store.insert_batch, batch)
                except Exception:
                    # The batch exists and will be billed: answer it (a retry would create another).
                    log.exception("could not record batch %s; its results will not be metered", batch_id)
        return self.answer(request, status, headers, payload, request_id)

    def _attribute(
        self, principal: Principal, headers: Mapping[str, str], count: int, size: int
    ) -> Attribution:
        """The batch's attribution, its use case inferred when it declares none (the batch as one
        call to PATH: its requests are its messages)."""
        info = RequestInfo(model="", stream=False, max_tokens=None, path=PATH)
        features = RouteFeatures(tools=False, thinking=False, messages=count)
        return attribute_call(principal, headers, self.provider.name, info, features, size, self._inferrer)

    async def retrieve(self, request: Request) -> Response:
        return await self._owned(request, "GET", "")

    async def cancel(self, request: Request) -> Response:
        return await self._owned(request, "POST", "/cancel")

    async def delete(self, request: Request) -> Response:
        request_id = new_request_id()
        try:
            batch, caller = await self.own(request)
            if batch.metered_at is None:
                # Deleting removes the results with their usage: read them first.
                await self.meter(batch, caller, request.headers, request_id)
        except SpendgateError as exc:
            return self.error_response(exc, request_id)
        return await self._owned(request, "DELETE", "", request_id)

    async def list_batches(self, request: Request) -> Response:
        request_id = new_request_id()
        try:
            principal = await self._keyring.authenticate(request.headers)
            upstream = await self.send_upstream(request, "GET", PATH, None)
            status, headers, payload = await _read(upstream)
        except SpendgateError as exc:
            return self.error_response(exc, request_id)
        if status != 200:
            return self.answer(request, status, headers, payload, request_id)
        page = orjson.loads(payload)
        data = page.get("data") if isinstance(page, dict) else None
        if isinstance(data, list):
            ids = [str(b["id"]) for b in data if isinstance(b, dict) and isinstance(b.get("id"), str)]
            owners = await asyncio.to_thread(self._store.batch_orgs, ids)
            # first_id / last_id stay the provider's: they are the cursors of the next page.
            page["data"] = [b for b in data if owners.get(b.get("id")) == principal.org_id]
            payload = orjson.dumps(page)
        return self.answer(request, status, headers, payload, request_id)

    # --- helpers ---
    async def _check_budgets(
        self, principal: Principal, scope: CallScope, requests: list[BatchRequest]
    ) -> None:
        worst = 0
        for item in requests:
            price = priced(self._pricer, self.provider.name, item.model)
            limit = item.max_tokens or self._limits.default_max_tokens
            worst += int(
                worst_case_nanos(price, input_bound(item.params_bytes), limit) * price.batch_discount
            )
        await acquire_rate_limit(self._budgets, principal)
        self._budgets.rate_release(principal, 0)  # one request: the batch's tokens are not this minute's
        if not self._budgets.active:
            return
        decision = await self._budgets.reserve(scope, worst)
        if decision.blocked is not None:
            raise budget_refusal(decision)
        self._budgets.finish(decision, 0, "")  # a check, not a hold: the batch may take a day

    async def own(self, request: Request) -> tuple[MessageBatch, Principal]:
        """The caller's org's batch named in the path, and the caller; a 404 for another org's batch
        or one made elsewhere."""
        principal = await self._keyring.authenticate(request.headers)
        batch_id = request.path_params["batch_id"]
        batch = await asyncio.to_thread(self._store.get_batch, batch_id)
        if batch is None or batch.org_id != principal.org_id:
            raise UnknownEndpoint(
                f"message_batch_id: {batch_id!r} is not a batch created through Spendgate by your org."
            )
        return batch, principal

    async def _owned(
        self, request: Request, method: str, suffix: str, request_id: str | None = None
    ) -> Response:
        request_id = request_id or new_request_id()
        try:
            batch, _ = await self.own(request)
            upstream = await self.send_upstream(request, method, f"{PATH}/{batch.batch_id}{suffix}", None)
            status, headers, payload = await _read(upstream)
        except SpendgateError as exc:
            return self.error_response(exc, request_id)
        return self.answer(request, status, headers, payload, request_id)

    async def send_upstream(
        self, request: Request, method: str, path: str, body: bytes | None
    ) -> aiohttp.ClientResponse:
        query = request.url.query  # ?beta=true and the list's cursors travel as they came
        url = f"{self.provider.base_url}{path}" + (f"?{query}" if query else "")
        headers = self.provider.upstream_headers(request.headers)
        return await self._upstream.send(UpstreamRequest(method, url, headers, body))

    def answer(
        self, request: Request, status: int, headers: Mapping[str, str], payload: bytes, request_id: str
    ) -> Response:
        out = forwardable_response_headers(headers)
        out[REQUEST_ID_HEADER] = request_id
        if status == 200 and payload[:1] == b"{":
            gateway = str(request.base_url).rstrip("/")
            data = orjson.loads(payload)
            if isinstance(data, dict) and isinstance(data.get("data"), list):
                data["data"] = [
                    with_results_url(b, gateway) if isinstance(b, dict) else b for b in data["data"]
                ]
            elif isinstance(data, dict):
                data = with_results_url(data, gateway)
            payload = orjson.dumps(data)
        return Response(payload, status, headers=out)

    def error_response(self, exc: SpendgateError, request_id: str) -> Response:
        status, headers, body = self.provider.error(exc, request_id)
        headers = {**exc.headers, **headers, REQUEST_ID_HEADER: request_id}
        return Response(body, status, headers=headers, media_type="application/json")

    # --- metering ---
    async def meter(
        self, batch: MessageBatch, caller: Principal, headers: Mapping[str, str], request_id: str
    ) -> None:
        """Read a batch's results upstream, for no client, and meter them (for delete); `headers`
        are the caller's, for anthropic-version and the like."""
        url = f"{self.provider.base_url}{PATH}/{batch.batch_id}/results"
        upstream_headers = self.provider.upstream_headers(headers)
        response = await self._upstream.send(UpstreamRequest("GET", url, upstream_headers, None))
        reader = BatchResultsReader()
        try:
            if response.status != 200:
                return  # not ended, or gone: nothing to meter yet
            async for chunk in response.content.iter_any():
                reader.feed(chunk)
        except (aiohttp.ClientError, TimeoutError):
            raise UpstreamCut("Spendgate: the provider cut the batch results") from None
        finally:
            response.release()
        await self.record(batch, reader, caller, request_id)

    async def record(
        self, batch: MessageBatch, reader: BatchResultsReader, caller: Principal, request_id: str
    ) -> int:
        """Write a batch's succeeded calls to the ledger if no one has; the number written."""
        reader.finish()
        now = time.time()
        rows = batch_rows(batch, reader.calls, self._pricer, metered_at=now)
        cost = sum(r.cost_nanos for r in rows)
        claimed = await asyncio.to_thread(
            self._store.claim_batch_metering, batch.batch_id, by=request_id, now=from_epoch(now),
            calls=len(rows), cost_nanos=cost,
        )  # fmt: skip
        if not claimed:
            return 0
        for row in rows:
            self._ledger.record(row)
        # The metrics' team label is a name: the caller's, when the caller is on the creating team.
        team = caller.team_name if caller.team_id == batch.team_id else batch.team_id
        for row in rows:
            self._metrics.count_call(row, team)
        creator = _creator(batch)
        if self._budgets.active and cost:
            # Charged to the budgets now, when the spend is known (never refused: it is spent).
            scope = CallScope(creator, batch.use_case, batch.tags, batch.session_id)
            try:
                decision = await self._budgets.reserve(scope, 0)
            except CountersUnavailable:
                # The rows are in the ledger; counters are seeded from it when they come back.
                log.warning("batch %s: budget counters unavailable, spend not added to them", batch.batch_id)
            else:
                self._budgets.finish(decision, cost, request_id)
        log.info("batch %s: %d calls metered, %s USD", batch.batch_id, len(rows), Decimal(cost) / 10**9)
        return len(rows)


def _creator(batch: MessageBatch) -> Principal:
    """The creating key as far as budgets need it (scope matching by ids)."""
    return Principal(
        key_id=batch.key_id,
        key_name="",
        org_id=batch.org_id,
        team_id=batch.team_id,
        user_id=batch.user_id,
        cost_center=batch.cost_center or "",
        default_use_case=None,
        default_tags={},
        expires_at=None,
    )


async def _read(upstream: aiohttp.ClientResponse) -> tuple[int, Mapping[str, str], bytes]:
    try:
        return upstream.status, upstream.headers, await upstream.read()
    except (aiohttp.ClientError, TimeoutError):
        raise UpstreamCut("Spendgate: the provider closed the connection mid-response") from None
    finally:
        upstream.release()


class BatchResults:
    """`GET /v1/messages/batches/{batch_id}/results` as a raw ASGI app: the JSONL is relayed as it
    arrives and read on the way; a client that leaves does not stop the reading (the results are
    paid for either way), so the first complete read meters the batch."""

    def __init__(self, api: BatchesAPI) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        api, request_id = self.api, new_request_id()
        try:
            batch, caller = await api.own(request)
            upstream = await api.send_upstream(request, "GET", f"{PATH}/{batch.batch_id}/results", None)
        except SpendgateError as exc:
            return await api.error_response(exc, request_id)(scope, receive, send)
        if upstream.status != 200:
            status, headers, payload = await _read(upstream)
            return await api.answer(request, status, headers, payload, request_id)(scope, receive, send)
        headers = forwardable_response_headers(upstream.headers)
        headers[REQUEST_ID_HEADER] = request_id
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        # Already metered: relayed without reading (a second read records nothing anyway).
        reader = BatchResultsReader() if batch.metered_at is None else None
        client = _Client(send)
        await client.send({"type": "http.response.start", "status": 200, "headers": raw})
        try:
            async for chunk in upstream.content.iter_any():
                if reader is not None:
                    reader.feed(chunk)
                await client.send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, TimeoutError):
            upstream.close()
            log.warning("batch results of %s cut by the provider; not metered yet", batch.batch_id)
            raise UpstreamCut("the provider cut the batch results") from None
        upstream.release()
        if reader is not None:
            await api.record(batch, reader, caller, request_id)
        await client.send({"type": "http.response.body", "body": b"", "more_body": False})


class _Client:
    """`send` that stops sending once the client has gone, instead of failing."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.gone = False

    async def send(self, message: Message) -> None:
        if self.gone:
            return
        try:
            await self._send(message)
        except OSError:
            self.gone = True
