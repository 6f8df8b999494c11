"""POST /webhooks/github: merged pull requests as GitHub reports them.

Order matters: the signature is checked on the raw body before anything is parsed; a delivery
id already processed answers {"duplicate": true} and changes nothing; the id is recorded only
after the PR is stored, so a delivery that failed half-way is processed again when GitHub retries.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from spendgate.finance.github import merged_pr_from_event, verify_signature
from spendgate.gateway import Gateway

NO_SECRET = (
    "GitHub webhooks are disabled: set SPENDGATE_GITHUB_WEBHOOK_SECRET to the secret configured on the "
    "GitHub webhook, then restart the gateway"
)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def github_webhook(gw: Gateway, secret: str | None, request: Request) -> Response:
    if not secret:
        return _error(503, NO_SECRET)
    body = await request.body()
    if len(body) > gw.settings.max_body_bytes:
        return _error(413, "webhook body too large")
    if not verify_signature(secret.encode(), body, request.headers.get("x-hub-signature-256")):
        return _error(401, "missing or invalid X-Hub-Signature-256 (HMAC-SHA256 of the body with the secret)")
    event = request.headers.get("x-github-event", "")
    delivery = request.headers.get("x-github-delivery", "").strip()
    if not delivery:
        return _error(400, "missing X-GitHub-Delivery header")
    store = gw.store
    if await asyncio.to_thread(store.github_delivery_seen, delivery):
        return JSONResponse({"duplicate": True, "delivery": delivery})
    try:
        payload: Any = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("the payload is not a JSON object")
        pr = merged_pr_from_event(event, payload)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return _error(400, f"unreadable {event or 'GitHub'} payload: {exc}")
    result: dict[str, Any] = {"duplicate": False, "delivery": delivery, "event": event}
    if pr is None:
        result["ignored"] = "not a merged pull request"
    else:
        counts = await asyncio.to_thread(store.upsert_pull_requests, [pr], "webhook")
        result["pull_request"] = f"{pr.repo}#{pr.number}"
        result["stored"] = next(name for name, n in counts.items() if n)
    if not await asyncio.to_thread(store.record_github_delivery, delivery, event):
        result["duplicate"] = True  # a concurrent copy of this delivery got there first
    return JSONResponse(result)
