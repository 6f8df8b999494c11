"""Step 5, forward: send the call upstream, with bounded retries and fallbacks.

Everything here happens before the response's first byte reaches the client, so a retry
or a switch of model never splices two answers together. Order: the routed model on the
primary deployment (retries with jittered exponential backoff), then each alternate
deployment of that provider, then each fallback model the policy names for it.

A retry of the same deployment waits at least as long as the provider asked
(`retry-after-ms`, or `retry-after` in seconds or as an HTTP date), up to the policy's
`max_retry_after_ms`. A provider that asks for longer is not retried: the call moves on to
the next deployment or fallback model, and if there is none its answer (with its
`retry-after`) goes back to the client, whose SDK knows how to wait.
"""

from __future__ import annotations

import math
import random
import time
from asyncio import sleep
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import aiohttp

from spendgate.admission import Admitted
from spendgate.errors import UpstreamUnavailable
from spendgate.pricing import ModelPrice, new_tuple
from spendgate.providers.base import Provider
from spendgate.routing.policy import Fallbacks
from spendgate.routing.router import Router
from spendgate.upstream import Upstream


class Attempts(NamedTuple):
    """What forwarding did: how many tries, and the model of the last one (the one that answered)."""

    total: int  # tries made, retries and fallbacks included
    model: str
    price: ModelPrice
    fallback_from: str | None  # the model first tried, when another one answered
    sent_at: float  # when the first try left: the provider's time starts here
    upstream_request_id: str | None = None  # the provider's id for its answer


class Forwarded(NamedTuple):
    """The provider's answer (status and headers read, the body still to come) and how it was got."""

    response: aiohttp.ClientResponse
    attempts: Attempts


class Forwarding:
    def __init__(
        self, provider: Provider, upstream: Upstream, router: Router, price: Callable[[str], ModelPrice]
    ) -> None:
        self._provider = provider
        self._upstream = upstream
        self._router = router  # its policy's fallbacks, read per call
        self._price = price  # a fallback model must have a price too (ModelNotPriced otherwise)
        # Plans by (model, primary base URL), for the policy they were made from: the same few
        # models are called over and over, and a policy reload starts afresh.
        self._plans: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
        self._plans_of: Fallbacks | None = None

    async def forward(self, call: Admitted) -> Forwarded:
        """The answer to relay; UpstreamUnavailable, carrying its attempts, when none came."""
        provider = self._provider
        policy = self._router.policy.fallbacks
        plan = self._plan(policy, call.model, provider.base_url)
        on_status = policy.on_status
        sent_at = time.time()
        model, price = call.model, call.price
        asked_s: float | None = None  # how long the provider asked us to wait before trying it again
        step = count = 0
        while True:
            step_model, base, retry = plan[step]
            if step_model != model:
                model, price = step_model, self._price(step_model)
            if retry:
                await sleep(max(asked_s or 0.0, backoff_s(policy, retry)))
            count += 1
            fallback_from = None if model == call.model else call.model
            attempt = await provider.upstream_request(base, call.request, call.info, model)
            try:
                response = await self._upstream.send(attempt)
            except UpstreamUnavailable as exc:
                if step == len(plan) - 1:
                    exc.attempts = Attempts(count, model, price, fallback_from, sent_at)
                    raise
                step, asked_s = step + 1, None
                continue
            following = step + 1
            if response.status in on_status:  # retryable (429, 529, 5xx), unless the plan is done
                asked_s = retry_after_s(response.headers)
                if asked_s is not None and asked_s * 1000 > policy.max_retry_after_ms:
                    while following < len(plan) and plan[following][2]:
                        following += 1  # longer than a client should wait: not this deployment again
                if following < len(plan):
                    response.release()  # on to the next step of the plan
                    step = following
                    continue
            request_id = response.headers.get(provider.request_id_header)
            # Attempts(total, model, price, fallback_from, sent_at, upstream_request_id) and
            # Forwarded(response, attempts), built as tuples (no NamedTuple __new__ frame each)
            attempts = new_tuple(Attempts, (count, model, price, fallback_from, sent_at, request_id))
            return new_tuple(Forwarded, (response, attempts))

    def _plan(self, policy: Fallbacks, model: str, base: str) -> list[tuple[str, str, int]]:
        if policy is not self._plans_of or len(self._plans) > 1000:
            self._plans, self._plans_of = {}, policy
        plan = self._plans.get((model, base))
        if plan is None:
            bases = [base, *policy.deployments.get(self._provider.name, ())]
            plan = self._plans[(model, base)] = _plan(policy, model, bases)
        return plan


def _plan(policy: Fallbacks, model: str, bases: list[str]) -> list[tuple[str, str, int]]:
    """(model, base URL, retry number) for each try, in order."""
    return [
        (m, base, n)
        for m in (model, *policy.models.get(model, ()))
        for i, base in enumerate(bases)
        for n in range(policy.retries + 1 if i == 0 else 1)
    ]


def backoff_s(policy: Fallbacks, retry: int) -> float:
    """Exponential (backoff_ms, twice that, ...), each drawn between half and all of it, so calls
    refused together do not all come back together."""
    return float(policy.backoff_ms / 1000 * 2 ** (retry - 1) * random.uniform(0.5, 1.0))


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """How long the provider asked us to wait, in seconds; None when it did not say (or said nonsense)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        value = _number(millis)
        if value is not None:
            return value / 1000
    text = headers.get("retry-after")
    if text is None:
        return None
    seconds = _number(text)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
