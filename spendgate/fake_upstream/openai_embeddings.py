"""The OpenAI embeddings fake: ``POST /v1/embeddings``.

Vectors are deterministic (seeded by the input) and unit length; ``encoding_format: "base64"``
(what the official SDK asks for by default) returns little-endian float32 bytes in base64.
``usage.prompt_tokens`` counts strings with the fake tokenizer and token arrays by their length.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spendgate.fake_upstream.common import json_response, tokens_for
from spendgate.fake_upstream.openai_api import error_response, missing, prepare_json

DIMENSIONS = {"text-embedding-3-large": 3072}  # others: 1536
MAX_INPUTS = 2048


def _inputs(value: object) -> list[str | list[int]] | None:
    """The input as a list of strings or token arrays; None when it has the wrong shape."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(t, int) for t in value):
        return [value]
    if all(isinstance(v, str) for v in value) or all(
        isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value
    ):
        return list(value)
    return None


def _vector(item: str | list[int], size: int) -> list[float]:
    seed = item.encode() if isinstance(item, str) else struct.pack(f"<{len(item)}q", *item)
    raw = hashlib.shake_256(seed).digest(size * 2)
    values = [(raw[2 * i] << 8 | raw[2 * i + 1]) / 32767.5 - 1.0 for i in range(size)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


async def embeddings(request: Request) -> Response:
    ready = await prepare_json(request)
    if isinstance(ready, Response):
        return ready
    prepared, payload, model = ready
    request_id = prepared.request_id
    if "input" not in payload:
        return missing("input", request_id)
    items = _inputs(payload["input"])
    if items is None or any(item == "" for item in items):
        message = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
        return error_response(400, message, "invalid_request_error", None, request_id)
    if len(items) > MAX_INPUTS:
        message = f"'$.input' must have at most {MAX_INPUTS} items."
        return error_response(400, message, "invalid_request_error", None, request_id, "input")
    size = payload.get("dimensions") or DIMENSIONS.get(model, 1536)
    if not isinstance(size, int) or size < 1:
        return error_response(
            400, "'dimensions' must be a positive integer.", "invalid_request_error", None, request_id
        )
    as_base64 = payload.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, item in enumerate(items):
        tokens += max(1, tokens_for(len(item))) if isinstance(item, str) else len(item)
        vector = _vector(item, size)
        embedding: object = (
            base64.b64encode(struct.pack(f"<{size}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
    if prepared.controls.usage:
        usage.update(prepared.controls.usage)
    body = {"object": "list", "data": data, "model": model, "usage": usage}
    return json_response(body, headers={"x-request-id": request_id})
