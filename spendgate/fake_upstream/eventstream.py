"""AWS event-stream framing (`application/vnd.amazon.eventstream`), written by the Bedrock fake.

botocore ships only the reader (`botocore.eventstream`), which is what Spendgate and the SDKs
use; the fake needs the writer. A message is: total length, headers length, prelude CRC32,
headers (name, type 7 = string, value), payload, message CRC32; all integers big-endian.
"""

from __future__ import annotations

import base64
import struct
import zlib

import orjson

_STRING = 7


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = b"".join(
        struct.pack(">B", len(name))
        + name.encode()
        + struct.pack(">BH", _STRING, len(value))
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, payload: object) -> bytes:
    """One `:message-type event` message with a JSON payload (Converse streams, raw)."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, orjson.dumps(payload))


def chunk(anthropic_event: bytes, padding: str = "") -> bytes:
    """InvokeModelWithResponseStream's `chunk` event: one Anthropic stream event, base64 in `bytes`
    (and, like Bedrock, padding in `p` so the length does not give the content away)."""
    payload = {"bytes": base64.b64encode(anthropic_event).decode()}
    if padding:
        payload["p"] = padding
    return event("chunk", payload)


def exception(exception_type: str, payload: object) -> bytes:
    """A `:message-type exception` message: an error that arrives after the 200."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, orjson.dumps(payload))
