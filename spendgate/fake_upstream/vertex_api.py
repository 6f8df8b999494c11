"""The Google Vertex AI fake: Claude's `rawPredict` / `streamRawPredict`, and an OAuth token endpoint.

`POST /token` takes the service-account JWT grant google-auth sends to a key file's `token_uri`;
with `FakeSettings.google_public_key` set, the assertion's signature is checked with google-auth
and predict calls need a token this endpoint issued. Model answers are Anthropic's JSON and SSE,
unchanged (as Vertex relays them); Google's own refusals use Google's error shape.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from spendgate.fake_upstream.anthropic_api import MODE_ERRORS, error_response, make_reply, reply_response
from spendgate.fake_upstream.common import (
    ControlError,
    bearer_token,
    fake_state,
    json_response,
    parse_controls,
    parse_json_object,
    pause,
)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_LIFETIME_S = 3600
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}


def google_error(status: int, message: str) -> Response:
    body = {"error": {"code": status, "message": message, "status": GOOGLE_STATUS.get(status, "UNKNOWN")}}
    return json_response([body] if status == 404 else body, status)


def _oauth_error(error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, 400)


async def token(request: Request) -> Response:
    """The OAuth 2.0 token endpoint for the service-account (JWT bearer) grant."""
    state = fake_state(request)
    body, _ = await state.ingest(request)
    form = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
    if form.get("grant_type") != JWT_GRANT or "assertion" not in form:
        return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
    public_key = state.settings.google_public_key
    if public_key is not None:
        from google.auth import exceptions, jwt

        try:
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                form["assertion"], certs=public_key, audience=None
            )
        except (ValueError, exceptions.GoogleAuthError):
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        if not str(claims.get("aud", "")).endswith("/token"):
            return _oauth_error("invalid_grant", "Invalid JWT: audience is not this token endpoint.")
        if SCOPE not in str(claims.get("scope", "")).split():
            return _oauth_error("invalid_scope", f"The assertion must ask for {SCOPE}.")
    issued = "ya29.fake-" + secrets.token_urlsafe(24)
    state.google_tokens.add(issued)
    return json_response({"access_token": issued, "expires_in": TOKEN_LIFETIME_S, "token_type": "Bearer"})


def vertex_model(model: str) -> str:
    """`claude-sonnet-4-5@20250929` -> `claude-sonnet-4-5-20250929` (the answer's `model`)."""
    name, _, version = model.partition("@")
    return f"{name}-{version}" if version else name


async def predict(request: Request) -> Response:
    """`POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict` (or
    `:streamRawPredict`)."""
    state = fake_state(request)
    body, headers = await state.ingest(request)
    model, _, method = request.path_params["rest"].rpartition(":")
    request_id = "req_vrtx_" + state.next_id()
    if state.settings.google_public_key is not None and bearer_token(headers) not in state.google_tokens:
        return google_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
            "other valid authentication credential.",
        )
    if method not in ("rawPredict", "streamRawPredict") or not model:
        return google_error(404, f"The requested URL {request.url.path} was not found on this server.")
    try:
        controls = parse_controls(headers, state.settings)
    except ControlError as exc:
        return error_response(400, "invalid_request_error", str(exc), request_id)
    await pause(controls.latency_s)
    if controls.mode in MODE_ERRORS:
        return error_response(*MODE_ERRORS[controls.mode], request_id)
    payload = parse_json_object(body)
    if isinstance(payload, str):
        return error_response(400, "invalid_request_error", payload, request_id)
    if "model" in payload:
        return error_response(
            400, "invalid_request_error", "model: Extra inputs are not permitted", request_id
        )
    if not isinstance(payload.get("anthropic_version"), str):
        return error_response(400, "invalid_request_error", "anthropic_version: Field required", request_id)
    if not isinstance(payload.get("messages"), list):
        return error_response(400, "invalid_request_error", "messages: Field required", request_id)
    reply = make_reply(payload, state, controls, "msg_vrtx_" + request_id[9:], model=vertex_model(model))
    if isinstance(reply, str):
        return error_response(400, "invalid_request_error", reply, request_id)
    return reply_response(request, reply, controls, request_id, stream=payload.get("stream") is True)
