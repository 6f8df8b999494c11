"""Steps 1-4, admission: auth -> attribute -> route -> reserve, ending in one frozen record.

What an admitted call holds (a rate-limit slot, a budget reservation) is in the record, so
whoever ends the call gives it back (`Settlement`); a step that refuses gives back what the
steps before it took. Nothing here waits on the database: keys, policy and prices are in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from starlette.types import Message, Receive, Scope

from spendgate.attribution import Attribution, attribute_features
from spendgate.auth import Keyring
from spendgate.budgets.enforcer import BudgetEnforcer, CallScope, Decision, rejection_message
from spendgate.budgets.estimate import input_bound, worst_case_nanos
from spendgate.errors import BudgetExceeded, InvalidRequest, ModelNotPriced, RateLimited, RequestTooLarge
from spendgate.inference.infer import Inferrer
from spendgate.models import Principal
from spendgate.pricing import ModelPrice, Pricer
from spendgate.providers.base import ClientRequest, Provider, RequestInfo
from spendgate.routing.explain import route_request_for
from spendgate.routing.router import Route, Router, RouteRequest
from spendgate.routing.sticky import Key, Sticky, sticky_key


# A slots dataclass, not a NamedTuple: the later steps read its fields some forty times a call,
# and on Python 3.11 a slot is read in a third of a NamedTuple field's time (built faster too).
# Not frozen (a frozen __init__ sets each field through object.__setattr__); nothing assigns to it.
@dataclass(slots=True)
class Admitted:
    """What admission decided about one call."""

    request_id: str
    started: float  # time.time() when the call arrived
    provider: str
    request: ClientRequest
    info: RequestInfo
    principal: Principal
    who: Attribution
    model: str  # the model to send: as requested, routed, or downgraded by a budget at amber
    price: ModelPrice  # every model sent upstream has a price, or it could not be metered
    requested_price: ModelPrice | None  # the model asked for: the counterfactual behind savings
    route_rule: str | None
    budget: Decision | None  # the reservation for the call's worst case (None: no budget is active)
    refusal: BudgetExceeded | None = None  # a budget had no room: answered 429, recorded as budget_blocked


class Admission:
    """The admission steps for one provider's endpoint."""

    def __init__(
        self,
        provider: Provider,
        keyring: Keyring,
        router: Router,
        pricer: Pricer,
        budgets: BudgetEnforcer,
        inferrer: Inferrer,
        sticky: Sticky,
        *,
        max_body_bytes: int,
        default_max_tokens: int,
    ) -> None:
        self._provider = provider
        self._inferrer = inferrer
        self._sticky = sticky
        self._keyring = keyring
        self._router = router
        self._pricer = pricer
        self._budgets = budgets
        self._max_body_bytes = max_body_bytes
        self._default_max_tokens = default_max_tokens

    async def admit(
        self, request_id: str, started: float, scope: Scope, headers: Mapping[str, str], receive: Receive
    ) -> Admitted:
        provider, name, path, budgets = self._provider, self._provider.name, scope["path"], self._budgets
        # The usual call has a known key, no session to hold a route for and no rate limit: those
        # steps run as plain calls, and awaited only when they may have to wait (a coroutine each
        # costs more than the work they do).
        # 1. auth (before the body is read: a stranger cannot make us buffer it)
        principal = self._keyring.known(headers) or await self._keyring.authenticate(headers)
        # The body, without a coroutine of ours in between when one message carries it all
        limit, declared = self._max_body_bytes, headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large(limit)
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):  # all of it
            body = message.get("body", b"")
            if len(body) > limit:
                raise too_large(limit)
        elif (body := whole_body(message, limit)) is None:  # else a disconnect, or the first of several
            body = await rest_of_body(receive, message, limit)
        info = provider.parse(body, path)
        # 2. attribute: declared, else inferred from the call's headers and shape (the shape's
        # route features are read only then, or when a routing rule needs them: None until then)
        who, features = attribute_features(principal, headers, provider, info, len(body), self._inferrer)
        # 3. route: the policy picks the model; its price must be known to meter it. A call whose
        # use case alone decides its route (no rule can match it, or the rule it matches looks at
        # nothing else), with no session to hold a route for, is routed without a RouteRequest.
        router, wanted, route = self._router, None, None
        if not (router.sticky and who.session_id):  # else what the session holds may win: route it all
            route = router.route_by_use_case(name, info.model, who.use_case, who.use_case_source)
        if route is None:
            wanted = route_request_for(provider, info, body, principal, who, features)
            key = sticky_key(wanted) if router.sticky else None  # a session to hold a route for
            route = router.route(wanted) if key is None else await self._sticky_route(wanted, key)
        model = route.model
        price = self._pricer.price(name, model) or not_priced(model)
        # what the call would have cost as asked: the counterfactual behind savings
        requested_price = price if model == info.model else self._pricer.price(name, info.model)
        # 4. reserve: rate limits, then every applicable budget's room for the worst case. A key with
        # a limit (BudgetEnforcer.rate_limited, inline) holds a slot from here, given back with the
        # tokens used.
        p = principal
        if p.rpm_limit is not None or p.tpm_limit is not None or p.concurrency_limit is not None:
            await acquire_rate_limit(budgets, principal)
        budget = refusal = None
        try:
            if budgets.active:
                worst = worst_case_nanos(
                    price, input_bound(len(body)), info.max_tokens or self._default_max_tokens
                )
                scope_of_call = CallScope(principal, who.use_case, who.tags, who.session_id)
                budget = await budgets.reserve(scope_of_call, worst)
                if budget.blocked is not None:
                    refusal = budget_refusal(budget)
                elif budget.amber_actions:
                    wanted = wanted or route_request_for(provider, info, body, principal, who, features)
                    cheaper = self._downgrade(budget, wanted, route)
                    if cheaper is not route:
                        route, price = cheaper, self.price(cheaper.model)
        except BaseException:
            budgets.rate_release(principal, 0)
            raise
        query = scope["query_string"]
        query = query.decode("latin-1") if query else ""  # usually none
        return Admitted(
            request_id, started, name, ClientRequest(path, query, headers, body), info,
            principal, who, route.model, price, requested_price, route.rule, budget, refusal,
        )  # fmt: skip

    async def _sticky_route(self, wanted: RouteRequest, key: Key) -> Route:
        """The policy's route, keeping the model a session's earlier call was routed to (shared by
        the replicas through Redis when there is one): prompt caches are per model."""
        route = self._router.route(wanted, held=await self._sticky.held(key))
        if route.hold is not None:
            kept = await self._sticky.hold(key, route.hold)
            if kept != route.hold:  # another replica decided first: its decision holds
                route = self._router.route(wanted, held=kept)
        return route

    def price(self, model: str) -> ModelPrice:
        """The price of a model a call is sent with; refused if it has none (it could not be metered)."""
        return priced(self._pricer, self._provider.name, model)

    def _downgrade(self, budget: Decision, wanted: RouteRequest, route: Route) -> Route:
        """A budget at amber may send the call to a cheaper tier; the reservation still covers it."""
        chosen = route
        for action in budget.amber_actions:
            if action.startswith("downgrade:"):
                cheaper = self._router.downgrade(wanted, route, action.removeprefix("downgrade:"))
                if self._pricer.cheaper(self._provider.name, cheaper.model, chosen.model):
                    chosen = cheaper
        return chosen


def priced(pricer: Pricer, provider: str, model: str) -> ModelPrice:
    """The price of a model a call is sent with; refused if it has none (it could not be metered)."""
    return pricer.price(provider, model) or not_priced(model)


def not_priced(model: str) -> NoReturn:
    raise ModelNotPriced(
        f"model: {model!r} has no price in Spendgate's price data, so it cannot be metered. "
        "Check the model name, or add it to SPENDGATE_PRICE_OVERRIDES_FILE."
    )


async def acquire_rate_limit(budgets: BudgetEnforcer, p: Principal) -> None:
    """Take a rate-limit slot for the key (given back with the tokens used), or refuse with 429."""
    verdict = await budgets.rate_acquire(p)
    if not verdict.ok:
        raise RateLimited(
            f"Spendgate rate limit for key {p.key_name!r}: {verdict.reason}. "
            f"Retry in {verdict.retry_after_s}s.",
            headers={"retry-after": str(verdict.retry_after_s)},
        )


def budget_refusal(decision: Decision) -> BudgetExceeded:
    """429 naming the budget, with headers that tell SDKs not to retry."""
    blocked = decision.blocked
    assert blocked is not None, "only a blocked decision is refused"
    return BudgetExceeded(
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


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The request body, refused past `limit` bytes (by its content-length, or as it arrives)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    message = await receive()
    body = whole_body(message, limit)
    return body if body is not None else await rest_of_body(receive, message, limit)


def whole_body(message: Message, limit: int) -> bytes | None:
    """The body, when the first message from `receive` carries all of it (the usual call: no
    coroutine more); None: more is coming (`rest_of_body`). Refused past `limit` bytes."""
    if message["type"] == "http.disconnect":
        raise InvalidRequest("The client disconnected while sending the body.")
    chunk: bytes = message.get("body", b"")
    if len(chunk) > limit:
        raise too_large(limit)
    return None if message.get("more_body", False) else chunk


async def rest_of_body(receive: Receive, first: Message, limit: int) -> bytes:
    """The body whose first message (`first`, not the last) `whole_body` has checked."""
    chunks: list[bytes] = [first.get("body", b"")]
    size = len(chunks[0])
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("The client disconnected while sending the body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"Request body exceeds Spendgate's limit of {limit} bytes.")
