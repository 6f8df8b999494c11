"""One call's state between the pipeline steps, and how it ends: a response and one ledger row.

`proxy.handle_call` drives the steps; this holds what they learn (who, which model, which
price, which reservation) and does the metering, settling and recording at the end.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from starlette.types import Send

from spendgate.attribution import Attribution
from spendgate.budgets.enforcer import Decision, rejection_message
from spendgate.clock import from_epoch
from spendgate.gateway import Gateway
from spendgate.models import LedgerRow, Principal
from spendgate.pricing import ModelPrice, Usage, cost_of
from spendgate.providers.base import ClientError, Metered, Provider, RequestInfo
from spendgate.upstream import UpstreamUnavailable

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-spendgate-request-id"


class StreamCut(Exception):
    """Raised into the server so the client sees the cut too (the response is aborted)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer that Spendgate makes itself (an error, a refusal), sent in one go."""

    status: int
    headers: dict[str, str]
    body: bytes
    media_type: str | None = None  # sent as content-type, unless the headers carry one


def new_request_id() -> str:
    # Time-ordered prefix keeps ledger inserts append-mostly on the primary key index. The suffix
    # only has to be unique, not secret: `random` (reseeded in forked children) makes no system
    # call, where os.urandom would release the GIL to the ledger writer on every call.
    return f"sg-{time.time_ns():x}-{random.getrandbits(48):012x}"


class Call:
    """One call's state between the steps; ends in exactly one ledger row (or none, if refused)."""

    def __init__(self, gw: Gateway, provider: Provider, endpoint: str, headers: Mapping[str, str]) -> None:
        self.gw = gw
        self.provider = provider
        self.request_id = new_request_id()
        self.started = time.time()
        self.first_byte: float | None = None
        self.forwarded: float | None = None  # when the first attempt left for the provider
        self.endpoint = endpoint
        self.headers = headers  # the client's request headers
        self.principal: Principal | None = None
        self.who: Attribution | None = None
        self.info: RequestInfo | None = None
        self.model = ""
        self.price: ModelPrice | None = None
        self.upstream_request_id: str | None = None
        self.route_rule: str | None = None
        self.counterfactual_nanos: int | None = None
        self.requested_price: ModelPrice | None = None
        self.attempts = 0
        self.fallback_from: str | None = None
        self.decision: Decision | None = None
        self.rate_held = False
        self.recorded = False

    def error(
        self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None
    ) -> Reply:
        """An error in the provider's own format, with our request id."""
        body = self.provider.error_body(status, error_type, message, self.request_id)
        headers = {**(headers or {}), REQUEST_ID_HEADER: self.request_id}
        return Reply(status, headers, body, "application/json")

    def use_model(self, model: str, rule: str | None) -> None:
        """Send the call upstream with `model` (routed, downgraded or a fallback); it must have a price."""
        assert self.info is not None
        price = self.gw.pricer.price(self.provider.name, model)
        if price is None:
            raise ClientError(
                404,
                "not_found_error" if self.provider.name == "anthropic" else "invalid_request_error",
                f"model: {model!r} has no price in Spendgate's price data, so it cannot be metered. "
                "Check the model name, or add it to SPENDGATE_PRICE_OVERRIDES_FILE.",
            )
        if self.requested_price is None:
            # What the call would have cost as asked: the counterfactual behind savings.
            self.requested_price = (
                price
                if model == self.info.model
                else self.gw.pricer.price(self.provider.name, self.info.model)
            )
        self.model, self.price = model, price
        if rule is not None:
            self.route_rule = rule

    async def acquire_rate_limit(self) -> None:
        assert self.principal is not None
        verdict = await self.gw.budgets.rate_acquire(self.principal)
        if not verdict.ok:
            raise ClientError(
                429,
                "rate_limit_error" if self.provider.name == "anthropic" else "rate_limit_exceeded",
                f"Spendgate rate limit for key {self.principal.key_name!r}: {verdict.reason}. "
                f"Retry in {verdict.retry_after_s}s.",
                headers={"retry-after": str(verdict.retry_after_s)},
            )
        self.rate_held = True

    def release(self) -> None:
        """A call refused after its rate-limit slot or reservation was taken gives them back."""
        if self.decision is not None:
            self.gw.budgets.finish(self.decision, 0, self.request_id)
            self.decision = None
        if self.rate_held and self.principal is not None:
            self.gw.budgets.rate_release(self.principal, 0)
            self.rate_held = False

    def budget_rejection(self, decision: Decision) -> Reply:
        """429 naming the budget; recorded in the ledger as budget_blocked."""
        blocked = decision.blocked
        assert blocked is not None
        self.record(
            status_code=429,
            status="budget_blocked",
            usage=Usage(),
            result=Metered(usage=Usage(), error_type="budget_exceeded"),
            streamed=self.info.stream if self.info else False,
            cost_nanos=0,
            tier=None,
            note=f"blocked:{blocked.budget.name}",
        )
        return self.error(
            429,
            "rate_limit_error" if self.provider.name == "anthropic" else "insufficient_quota",
            rejection_message(decision),
            {
                # A budget does not come back in a few seconds: tell the SDKs not to retry.
                "x-should-retry": "false",
                "x-spendgate-budget": blocked.budget.name,
                "x-spendgate-budget-scope": blocked.budget.scope_label(),
                "x-spendgate-budget-remaining-usd": "0",
                "x-spendgate-budget-reset": blocked.window.end_iso,
            },
        )

    async def relay(self, upstream: aiohttp.ClientResponse, send: Send) -> None:
        """Forward each upstream chunk as it arrives, metering a copy; the last message ends the body."""
        assert self.info is not None
        meter = self.provider.stream_meter(self.info)
        content = upstream.content
        status, error_type = "ok", None
        try:
            last = b""
            async for chunk in content.iter_any():
                if self.first_byte is None:
                    self.first_byte = time.time()
                out = meter.feed(chunk)
                if meter.finished and not self.recorded:
                    # Journal before the final bytes reach the client: a crash after this loses nothing.
                    self.settle(200, meter.result(), streamed=True)
                if content.at_eof():  # the provider has already ended: these bytes end our body too
                    last = out
                    break
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            tail = meter.flush()
            if not self.recorded:
                result = meter.result()
                if result.error_type is not None:
                    status = "stream_error"
                elif not result.complete:
                    status = "stream_incomplete"
                self.settle(200, result, streamed=True, status=status)
            await send({"type": "http.response.body", "body": last + tail, "more_body": False})
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, error_type = "upstream_cut", type(exc).__name__
            log.warning("upstream stream cut for %s: %s", self.request_id, error_type)
            raise StreamCut(f"the provider cut the stream ({error_type})") from None
        except BaseException:
            status, error_type = "client_disconnected", "client_disconnected"
            raise
        finally:
            if not self.recorded:
                result = meter.result()
                result.estimated = True
                result.error_type = result.error_type or error_type
                self.settle(200, result, streamed=True, status=status)
            if status == "ok":
                upstream.release()
            else:
                upstream.close()  # stop the provider generating tokens nobody will read

    def settle_json(self, status_code: int, payload: bytes) -> None:
        if status_code >= 400:
            result = Metered(usage=Usage(), error_type=self.provider.error_type_of(payload))
            self.settle(status_code, result, streamed=False, status="upstream_error")
            return
        try:
            result = self.provider.meter_json(payload)
        except (ValueError, AttributeError, TypeError):
            result = Metered(usage=Usage(), estimated=True, error_type="unparseable_response")
        self.settle(status_code, result, streamed=False)

    def settle(self, status_code: int, result: Metered, *, streamed: bool, status: str | None = None) -> None:
        """Cost the usage and record the row (steps 7 and 8)."""
        assert self.info is not None and self.price is not None
        usage = result.usage
        if result.estimated and usage.total_input == 0:
            # Usage never arrived: bill the prompt we sent rather than record $0.
            usage = Usage(
                input_tokens=self.provider.estimate_input_tokens(self.info),
                output_tokens=usage.output_tokens,
            )
        cost = cost_of(self.price, usage) if status_code < 400 else None
        if cost is not None and self.requested_price is not None:
            same = self.requested_price is self.price  # not routed: the counterfactual is the cost
            self.counterfactual_nanos = cost.nanos if same else cost_of(self.requested_price, usage).nanos
        if status is None:
            status = "ok" if result.error_type is None else "stream_error"
        self.record(
            status_code=status_code,
            status=status,
            usage=usage,
            result=result,
            streamed=streamed,
            cost_nanos=cost.nanos if cost else 0,
            tier=cost.tier if cost else None,
        )

    def record_failure(self, exc: UpstreamUnavailable) -> None:
        assert self.info is not None
        self.record(
            status_code=exc.status,
            status=f"upstream_{exc.error_type}",
            usage=Usage(),
            result=Metered(usage=Usage(), error_type=exc.error_type),
            streamed=self.info.stream,
            cost_nanos=0,
            tier=None,
        )

    def record(
        self,
        *,
        status_code: int,
        status: str,
        usage: Usage,
        result: Metered,
        streamed: bool,
        cost_nanos: int,
        tier: str | None,
        note: str | None = None,
    ) -> None:
        assert self.principal is not None and self.who is not None and self.info is not None
        self.recorded = True
        p, w = self.principal, self.who
        decision = self.decision
        if decision is not None:
            note = note or decision.note
            self.gw.budgets.finish(decision, cost_nanos, self.request_id)
            self.decision = None
        if self.rate_held:
            self.gw.budgets.rate_release(p, usage.total_input + usage.output_tokens)
            self.rate_held = False
        ended = time.time()
        row = LedgerRow(
            request_id=self.request_id,
            provider=self.provider.name,
            endpoint=self.endpoint,
            started_at=from_epoch(self.started),
            first_byte_at=from_epoch(self.first_byte) if self.first_byte else None,
            ended_at=from_epoch(ended),
            status_code=status_code,
            status=status,
            use_case=w.use_case,
            org_id=p.org_id,
            team_id=p.team_id,
            user_id=p.user_id,
            key_id=p.key_id,
            cost_center=p.cost_center,
            tags=w.tags,
            session_id=w.session_id,
            agent_id=w.agent_id,
            parent_agent_id=w.parent_agent_id,
            client_request_id=w.client_request_id,
            requested_model=self.info.model,
            upstream_model=self.model,
            response_model=result.response_model,
            input_tokens=usage.input_tokens,
            cache_write_5m_tokens=usage.cache_write_5m_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            web_search_requests=usage.web_search_requests,
            cost_nanos=cost_nanos,
            price_ref=self.price.ref if self.price else None,
            pricing_tier=tier,
            estimated=result.estimated,
            streamed=streamed,
            error_type=result.error_type,
            upstream_request_id=self.upstream_request_id,
            user_agent=w.user_agent,
            budget_note=note,
            route_rule=self.route_rule,
            counterfactual_cost_nanos=self.counterfactual_nanos,
            attempts=max(self.attempts, 1),
            fallback_from=self.fallback_from,
        )
        self.gw.ledger.record(row)
        # upstream time: first attempt to the last byte read (JSON: first_byte is set after the body)
        upstream_s = None
        if self.forwarded is not None:
            upstream_s = (ended if streamed or self.first_byte is None else self.first_byte) - self.forwarded
        self.gw.metrics.observe_call(row, p.team_name, ended - self.started, upstream_s)
