"""OpenAI embeddings adapter: `/v1/embeddings`, JSON only, priced on its input tokens."""

from __future__ import annotations

import orjson

from spendgate.errors import InvalidRequest
from spendgate.pricing import Usage
from spendgate.providers.base import (
    Metered,
    RequestInfo,
    RouteFeatures,
    as_int,
    as_object,
    clean_text,
    json_object,
    rough_tokens,
)
from spendgate.providers.openai import OpenAIProvider, read_model


class OpenAIEmbeddingsProvider(OpenAIProvider):
    """Embeddings: OpenAI's error format and headers; usage is `prompt_tokens` alone."""

    path = "/v1/embeddings"
    upstream_path = "/embeddings"

    def parse(self, body: bytes, path: str) -> RequestInfo:
        data = json_object(body)
        model = read_model(data)
        if data.get("input") in (None, "", []):
            raise InvalidRequest("Missing required parameter: 'input'.")
        # No output tokens: the worst case is the input alone.
        return RequestInfo(model=model, stream=False, max_tokens=1, body=data, path=path)

    def upstream_body(self, body: bytes, info: RequestInfo, model: str) -> bytes:
        return body if model == info.model else orjson.dumps({**info.body, "model": model})

    def meter_json(self, status: int, body: bytes) -> Metered:
        if status >= 400:
            return super().meter_json(status, body)
        data = orjson.loads(body)
        return Metered(
            usage=Usage(input_tokens=as_int(as_object(data.get("usage")).get("prompt_tokens"))),
            response_model=clean_text(data.get("model")),
            complete=True,
        )

    def route_features(self, info: RequestInfo) -> RouteFeatures:
        given = info.body.get("input")
        return RouteFeatures(False, False, len(given) if isinstance(given, list) else 1)

    def estimate_input_tokens(self, info: RequestInfo) -> int:
        return rough_tokens(len(orjson.dumps(info.body.get("input"))))
