"""The ASGI app: one server speaking every provider, plus ``/_fake/requests`` for inspection."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spendgate.fake_upstream import (
    anthropic_api,
    anthropic_batches,
    bedrock_api,
    openai_api,
    openai_embeddings,
    openai_responses,
    vertex_api,
)
from spendgate.fake_upstream.common import FakeState, fake_state, is_anthropic_request, json_response
from spendgate.fake_upstream.settings import FakeSettings


async def list_models(request: Request) -> Response:
    # Both SDKs call GET /v1/models; only Anthropic clients send these headers.
    if is_anthropic_request(request.headers):
        return await anthropic_api.models(request)
    return await openai_api.models(request)


async def recorded_requests(request: Request) -> Response:
    state = fake_state(request)
    if request.method == "DELETE":
        state.recorded.clear()
        return Response(status_code=204)
    return json_response([r.to_json() for r in state.recorded])


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, answered in the caller's provider format."""
    await fake_state(request).ingest(request)  # recorded too: shows what a gateway got wrong
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"{request.method} {request.url.path}: {'not found' if status == 404 else 'method not allowed'}"
    if is_anthropic_request(request.headers):
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        return anthropic_api.error_response(status, kind, message, "req_fake_routing")
    code = "unknown_url" if status == 404 else "method_not_allowed"
    return openai_api.error_response(status, message, "invalid_request_error", code, "req_fake_routing")


def create_fake_app(settings: FakeSettings) -> Starlette:
    """A fresh app; all of its state (recorded requests, prompt cache, ids) lives on ``app.state``."""
    app = Starlette(
        routes=[
            Route("/v1/messages", anthropic_api.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", anthropic_api.count_tokens, methods=["POST"]),
            Route("/v1/messages/batches", anthropic_batches.create, methods=["POST"]),
            Route("/v1/messages/batches", anthropic_batches.list_batches, methods=["GET"]),
            Route("/v1/messages/batches/{batch_id}", anthropic_batches.retrieve, methods=["GET"]),
            Route("/v1/messages/batches/{batch_id}", anthropic_batches.delete, methods=["DELETE"]),
            Route("/v1/messages/batches/{batch_id}/cancel", anthropic_batches.cancel, methods=["POST"]),
            Route("/v1/messages/batches/{batch_id}/results", anthropic_batches.results, methods=["GET"]),
            Route("/api/hello", anthropic_api.hello, methods=["HEAD", "GET"]),
            Route("/v1/chat/completions", openai_api.chat_completions, methods=["POST"]),
            Route("/v1/responses", openai_responses.create, methods=["POST"]),
            Route("/v1/responses/input_tokens", openai_responses.input_tokens, methods=["POST"]),
            Route("/v1/responses/{response_id}", openai_responses.retrieve, methods=["GET"]),
            Route("/v1/responses/{response_id}", openai_responses.delete, methods=["DELETE"]),
            Route("/v1/responses/{response_id}/cancel", openai_responses.cancel, methods=["POST"]),
            Route("/v1/embeddings", openai_embeddings.embeddings, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            # Bedrock: the runtime, and the control plane's listing, on the same server
            Route("/model/{rest:path}", bedrock_api.runtime, methods=["POST"]),
            Route("/inference-profiles", bedrock_api.inference_profiles, methods=["GET"]),
            # Vertex AI, and the OAuth token endpoint a service-account key file names
            Route(
                "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{rest}",
                vertex_api.predict,
                methods=["POST"],
            ),
            Route("/token", vertex_api.token, methods=["POST"]),
            Route("/_fake/requests", recorded_requests, methods=["GET", "DELETE"]),
        ],
        exception_handlers={404: http_error, 405: http_error},
    )
    state = FakeState(settings)
    app.state.fake = state
    app.state.anthropic = anthropic_api.AnthropicAssets.build(state)
    app.state.openai_models = openai_api.models_body()
    return app
