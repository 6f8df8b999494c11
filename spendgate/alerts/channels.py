"""Alert channels: the payload each one takes (pure functions) and how it is sent.

Slack incoming webhook (blocks + text), PagerDuty Events v2 (trigger/resolve on a stable
dedup_key), a generic JSON webhook signed with HMAC-SHA256, and email over SMTP.

Email uses the standard library's smtplib in a worker thread: alert mail is rare (a few messages a
day), so a thread costs nothing, and it avoids a runtime dependency (aiosmtplib) for one code path.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiohttp
import orjson

from spendgate.alerts.config import PAGERDUTY_URL, Channel

# Standard Webhooks (standardwebhooks.com): the signature covers the id, the timestamp and the body,
# so a captured delivery cannot be replayed later or under another id.
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
REPLAY_WINDOW_S = 300  # a receiver refuses a timestamp further than this from its own clock


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One thing to tell people: an alert firing, or resolving."""

    alert_id: str
    kind: str  # anomaly, budget, forecast
    action: str  # trigger or resolve
    title: str
    summary: str  # one line, also the notification text
    dedup_key: str  # stable per alert: PagerDuty dedup_key, webhook/Slack correlation
    severity: str = "warning"  # PagerDuty: critical, error, warning, info
    group: str = ""  # e.g. team:platform
    lines: tuple[str, ...] = ()  # detail lines: the numbers, the top contributors
    command: str | None = None  # the CLI command that shows the detail
    details: dict[str, Any] = field(default_factory=dict)
    at: str = ""  # ISO-8601 UTC


class DeliveryError(Exception):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


# --- payloads (pure) ---
def slack_payload(msg: AlertMessage) -> dict[str, Any]:
    icon = ":white_check_mark:" if msg.action == "resolve" else ":rotating_light:"
    head = f"Resolved: {msg.title}" if msg.action == "resolve" else msg.title
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {msg.summary}"[:3000]}},
    ]
    if msg.lines:
        text = "\n".join(f"• {line}" for line in msg.lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    context = f"`{msg.dedup_key}`"
    if msg.command:
        context = f"Detail: `{msg.command}` · {context}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context[:3000]}]})
    prefix = "Resolved: " if msg.action == "resolve" else ""
    return {"text": f"{prefix}{msg.summary}", "blocks": blocks}


def pagerduty_payload(msg: AlertMessage, routing_key: str) -> dict[str, Any]:
    if msg.action == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": msg.dedup_key}
    details = dict(msg.details)
    if msg.lines:
        details["detail"] = list(msg.lines)
    if msg.command:
        details["command"] = msg.command
    payload: dict[str, Any] = {
        "summary": msg.summary[:1024],
        "source": "spendgate",
        "severity": msg.severity,
        "component": msg.group or "spendgate",
        "group": msg.group.partition(":")[2] or msg.group,
        "class": msg.kind,
        "custom_details": details,
    }
    if msg.at:
        payload["timestamp"] = msg.at
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": msg.dedup_key[:255],
        "payload": payload,
    }


def webhook_payload(msg: AlertMessage) -> dict[str, Any]:
    return {
        "version": "1",
        "event": "alert.resolved" if msg.action == "resolve" else "alert.triggered",
        "sent_at": msg.at,
        "alert": {
            "id": msg.alert_id,
            "kind": msg.kind,
            "status": "resolved" if msg.action == "resolve" else "firing",
            "dedup_key": msg.dedup_key,
            "severity": msg.severity,
            "group": msg.group,
            "title": msg.title,
            "summary": msg.summary,
            "lines": list(msg.lines),
            "command": msg.command,
            "details": msg.details,
        },
    }


def signing_key(secret: str) -> bytes:
    """A `whsec_<base64>` secret (the scheme's form) is its decoded bytes; any other string its UTF-8."""
    return base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: v1,<base64 HMAC-SHA256 of "id.timestamp.body">."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> bool:
    """What a receiver checks: a signature over id, timestamp and body, and a fresh timestamp."""
    try:
        msg_id, timestamp = headers[ID_HEADER], int(headers[TIMESTAMP_HEADER])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > REPLAY_WINDOW_S:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in headers[SIGNATURE_HEADER].split())


def email_message(msg: AlertMessage, sender: str, to: list[str]) -> EmailMessage:
    mail = EmailMessage()
    prefix = "[resolved] " if msg.action == "resolve" else ""
    mail["Subject"] = f"{prefix}{msg.title}"[:200]
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    body = [msg.summary, "", *msg.lines]
    if msg.command:
        body += ["", f"Detail: {msg.command}"]
    body += ["", f"Alert {msg.alert_id} ({msg.dedup_key})"]
    mail.set_content("\n".join(body) + "\n")
    return mail


# --- sending ---
async def send(channel: Channel, msg: AlertMessage, session: aiohttp.ClientSession, timeout_s: float) -> int:
    """Deliver one message; the HTTP status (0 for email). Raises DeliveryError on failure."""
    if channel.type == "email":
        await asyncio.to_thread(_send_email, channel, msg, timeout_s)
        return 0
    headers = {"content-type": "application/json", "user-agent": "spendgate-alerts"}
    if channel.type == "slack":
        url, body = str(channel.option("url")), orjson.dumps(slack_payload(msg))
    elif channel.type == "pagerduty":
        url = str(channel.option("url", PAGERDUTY_URL))
        body = orjson.dumps(pagerduty_payload(msg, str(channel.option("routing_key"))))
    else:
        url, body = str(channel.option("url")), orjson.dumps(webhook_payload(msg))
        # One id per alert event, the same on every retry, so a receiver can drop duplicates.
        msg_id, timestamp = f"msg_{msg.alert_id}_{msg.action}", int(time.time())
        headers[ID_HEADER], headers[TIMESTAMP_HEADER] = msg_id, str(timestamp)
        headers[SIGNATURE_HEADER] = sign(str(channel.option("secret")), msg_id, timestamp, body)
    try:
        async with session.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            text = await response.text()
            if response.status >= 300:
                retry_after = _retry_after(response.headers.get("retry-after"))
                raise DeliveryError(f"HTTP {response.status}: {text[:200]}", response.status, retry_after)
            return response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


def _send_email(channel: Channel, msg: AlertMessage, timeout_s: float) -> None:
    to = channel.option("to")
    recipients = [to] if isinstance(to, str) else list(to)
    mail = email_message(msg, str(channel.option("from")), recipients)
    host, port = str(channel.option("host")), int(channel.option("port", 25))
    try:
        smtp: smtplib.SMTP
        if channel.option("ssl", False):
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout_s, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout_s)
        with smtp:
            if channel.option("starttls", False):
                smtp.starttls(context=ssl.create_default_context())
            if channel.option("username"):
                smtp.login(str(channel.option("username")), str(channel.option("password", "")))
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}") from exc


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
