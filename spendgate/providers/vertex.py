"""Google Vertex AI adapter: `/vertex_ai/v1/projects/{p}/locations/{r}/publishers/anthropic/models/
{model}:rawPredict` and `:streamRawPredict`.

The body is a Messages body without `model` (the model is in the path) and the answer is
Anthropic's JSON or SSE, unchanged: this adapter speaks Anthropic's vocabulary (errors, usage,
stream meter) and differs in where calls go and how they authenticate: a Google OAuth token from
Application Default Credentials (`google_token.py`) replaces the client's virtual key.

Prices: the Vertex model id (`claude-sonnet-4-5@20250929`) under the `vertex` provider, which
genai-prices maps to its Google table.
"""

from __future__ import annotations

import re

from spendgate.errors import InvalidRequest, NotConfigured, UnknownEndpoint
from spendgate.extras import MissingExtra
from spendgate.providers.anthropic import AnthropicProvider
from spendgate.providers.base import (
    ClientRequest,
    RequestInfo,
    UpstreamRequest,
    json_object,
    read_metadata,
    read_stream,
    read_token_limit,
)
from spendgate.providers.google_token import GoogleTokenSource, NoGoogleCredentials

PATH_PREFIX = "/vertex_ai/v1/"
_PATH = re.compile(
    r"^/vertex_ai/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)"
    r"/publishers/anthropic/models/(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)$"
)


def regional_base(region: str) -> str:
    """Vertex's endpoint for a region, as Google's SDKs choose it."""
    if region == "global":
        return "https://aiplatform.googleapis.com"
    if region in ("us", "eu"):  # multi-region endpoints
        return f"https://aiplatform.{region}.rep.googleapis.com"
    return f"https://{region}-aiplatform.googleapis.com"


class VertexProvider(AnthropicProvider):
    name = "vertex"
    path = PATH_PREFIX  # a prefix: project, region, model and method follow

    def __init__(self, base_url: str | None = None) -> None:
        super().__init__(api_key=None, base_url=base_url or "")
        self._override = base_url.rstrip("/") if base_url else None
        self._tokens = GoogleTokenSource()

    def base_for(self, region: str) -> str:
        """SPENDGATE_VERTEX_BASE_URL, or the region's own endpoint."""
        return self._override or regional_base(region)

    def parse(self, body: bytes, path: str) -> RequestInfo:
        found = _PATH.match(path)
        if found is None:
            raise UnknownEndpoint(
                f"Unknown Vertex AI path {path!r}: expected {PATH_PREFIX}projects/{{project}}/locations/"
                "{region}/publishers/anthropic/models/{model}:rawPredict or :streamRawPredict",
            )
        data = json_object(body)
        max_tokens = read_token_limit(data, "max_tokens")
        if max_tokens is None:
            raise InvalidRequest("max_tokens: Field required (a positive integer)")
        return RequestInfo(
            model=found["model"],
            stream=read_stream(data),
            max_tokens=max_tokens,
            metadata=read_metadata(data),
            path=path,
            body=data,
        )

    def upstream_url(self, info: RequestInfo, model: str, root: str | None = None) -> str:
        found = _PATH.match(info.path)
        assert found is not None  # parse() accepted this path
        project, region, method = found["project"], found["region"], found["method"]
        return (
            f"{root or self.base_for(region)}/v1/projects/{project}/locations/{region}"
            f"/publishers/anthropic/models/{model}:{method}"
        )

    def upstream_body(self, body: bytes, info: RequestInfo, model: str) -> bytes:
        return body  # the model travels in the path: the body is forwarded byte for byte

    async def upstream_request(
        self, base_url: str, request: ClientRequest, info: RequestInfo, model: str
    ) -> UpstreamRequest:
        # The primary deployment is the request's region (`base_url` is the override, or empty);
        # an alternate deployment from the routing policy replaces it.
        url = self.upstream_url(info, model, base_url or None)
        headers = await self.authorize(self.upstream_headers(request.headers))
        return UpstreamRequest("POST", url, headers, request.body)

    async def authorize(self, headers: dict[str, str]) -> dict[str, str]:
        """`headers` (Anthropic's forwarding: anthropic-* travel, no provider key) with the current
        Google access token (cached; refreshed off the event loop)."""
        try:
            token = await self._tokens.token()
        except MissingExtra as exc:
            raise NotConfigured(str(exc)) from None
        except NoGoogleCredentials as exc:
            raise NotConfigured(f"Spendgate cannot authenticate to Vertex AI: {exc}") from None
        return {**headers, "authorization": f"Bearer {token}"}
