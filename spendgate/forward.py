"""Step 5, forward: send the call upstream, with bounded retries and fallbacks.

Everything here happens before the response's first byte reaches the client, so a retry
or a switch of model never splices two answers together. Order: the routed model on the
primary deployment (retries with exponential backoff), then each alternate deployment of
that provider, then each fallback model the policy names for it.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from spendgate.call import Call
from spendgate.upstream import UpstreamUnavailable


async def forward(call: Call, body: bytes, path: str, query: str) -> aiohttp.ClientResponse:
    gw, provider, info = call.gw, call.provider, call.info
    assert info is not None and call.principal is not None
    policy = gw.router.policy.fallbacks
    headers = provider.upstream_headers(call.headers)
    suffix = f"{path}?{query}" if query else path
    first_model = call.model
    models = [first_model, *policy.models.get(first_model, ())]
    bases = [provider.base_url, *policy.deployments.get(provider.name, ())]
    plan = [
        (m, base, n)
        for m in models
        for i, base in enumerate(bases)
        for n in range(policy.retries + 1 if i == 0 else 1)
    ]
    last_error: UpstreamUnavailable | None = None
    for step, (model, base, retry) in enumerate(plan):
        final = step == len(plan) - 1
        if model != call.model:
            call.use_model(model, call.route_rule)
            call.fallback_from = first_model
        call.attempts += 1
        if call.forwarded is None:
            call.forwarded = time.time()  # the call leaves the gateway: upstream time starts
        if retry:
            await asyncio.sleep(policy.backoff_ms / 1000 * 2 ** (retry - 1))
        try:
            response = await gw.upstream.send(
                "POST", base + suffix, headers, provider.upstream_body(body, info, model)
            )
        except UpstreamUnavailable as exc:
            last_error = exc
            if final:
                raise
            continue
        if response.status not in policy.on_status or final:
            return response
        response.release()  # retryable (429, 529, 5xx): try the next step of the plan
    assert last_error is not None
    raise last_error
