"""The Amazon Bedrock fake: the runtime (`invoke`, `invoke-with-response-stream`, `converse`,
`converse-stream`) and the control plane's `inference-profiles` listing, on one server.

Requests are SigV4-checked with botocore when the fake has AWS keys (`FakeSettings.aws_*`).
Errors are Bedrock's: `{"message": ...}` with the exception name in `x-amzn-ErrorType`; errors
after the 200 are event-stream exception messages. `invoke` answers are Anthropic messages, and
streams carry each Anthropic event base64-encoded in a `chunk` event, as Bedrock does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from spendgate.fake_upstream import eventstream
from spendgate.fake_upstream.anthropic_api import (
    AnthropicAssets,
    Reply,
    make_reply,
    message_json,
    stream_events,
)
from spendgate.fake_upstream.common import (
    ControlError,
    Controls,
    FakeState,
    fake_state,
    parse_controls,
    pause,
)
from spendgate.fake_upstream.sigv4 import SignatureRejected, verify
from spendgate.fake_upstream.streaming import EventStreamResponse

EVENT_STREAM = "application/vnd.amazon.eventstream"
ACCOUNT = "000000000000"
MODE_ERRORS = {  # x-fake-mode -> (status, exception, message), as Bedrock words them
    "error-400": (400, "ValidationException", "Invalid request (simulated by x-fake-mode: error-400)."),
    "error-401": (
        403,
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    "error-429": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "error-500": (500, "InternalServerException", "The server encountered an internal error."),
    "error-529": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
}
# Claude models with system-defined inference profiles: (base model id, name).
PROFILE_MODELS = (
    ("anthropic.claude-opus-4-6-v1", "Claude Opus 4.6"),
    ("anthropic.claude-sonnet-4-6", "Claude Sonnet 4.6"),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", "Claude Sonnet 4.5"),
    ("anthropic.claude-haiku-4-5-20251001-v1:0", "Claude Haiku 4.5"),
)
PROFILE_PREFIXES = {"us": "US", "eu": "EU", "apac": "APAC", "global": "Global"}
# Bedrock pads each stream payload so that its length does not give away the tokens.
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def error_response(status: int, exception: str, message: str, request_id: str) -> Response:
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": f"{exception}:http://internal.amazon.com/"}
    return Response(orjson.dumps({"message": message}), status, headers, media_type="application/json")


def anthropic_model(model_id: str) -> str:
    """`us.anthropic.claude-sonnet-4-5-20250929-v1:0` -> `claude-sonnet-4-5-20250929` (what Bedrock
    puts in the answer's `model`)."""
    name = model_id.rsplit("/", 1)[-1]
    if "anthropic." in name:
        name = name.split("anthropic.", 1)[1]
    for suffix in ("-v1:0", "-v2:0", "-v1"):
        name = name.removesuffix(suffix)
    return name


def check_signature(state: FakeState, request: Request, headers: dict[str, str], body: bytes) -> None:
    settings = state.settings
    if settings.aws_access_key_id is None or settings.aws_secret_access_key is None:
        return
    scope = request.scope
    query = scope["query_string"].decode("latin-1")
    # The raw path: SigV4 signs the path exactly as sent (and encodes it once more).
    path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    url = f"http://{headers.get('host', 'localhost')}{path}" + (f"?{query}" if query else "")
    verify(
        method=scope["method"],
        url=url,
        headers=headers,
        body=body,
        access_key_id=settings.aws_access_key_id,
        secret_access_key=settings.aws_secret_access_key,
        service="bedrock",
    )


async def _prepare(request: Request) -> tuple[FakeState, str, Controls, bytes] | Response:
    """Record, check the signature, apply the controls; the front half of every Bedrock route."""
    state = fake_state(request)
    body, headers = await state.ingest(request)
    request_id = _request_id(state)
    try:
        check_signature(state, request, headers, body)
        controls = parse_controls(headers, state.settings)
    except SignatureRejected as exc:
        return error_response(exc.status, exc.error_type, exc.message, request_id)
    except ControlError as exc:
        return error_response(400, "ValidationException", str(exc), request_id)
    await pause(controls.latency_s)
    if controls.mode in MODE_ERRORS:
        return error_response(*MODE_ERRORS[controls.mode], request_id)
    return state, request_id, controls, body


def _request_id(state: FakeState) -> str:
    """A UUID-shaped request id, as AWS sends; its last 20 digits are the fake's counter."""
    n = state.next_id()
    return f"00000000-0000-0000-{n[:4]}-{n[4:]}"


def _message_id(request_id: str) -> str:
    return "msg_bdrk_" + request_id.replace("-", "")[-20:]


async def runtime(request: Request) -> Response:
    """`POST /model/{modelId}/{action}`; the model id may itself hold slashes (an ARN)."""
    model_id, _, action = unquote(request.path_params["rest"]).rpartition("/")
    prepared = await _prepare(request)
    if isinstance(prepared, Response):
        return prepared
    state, request_id, controls, body = prepared
    if not model_id or action not in ("invoke", "invoke-with-response-stream", "converse", "converse-stream"):
        return error_response(404, "UnknownOperationException", f"Unknown operation {action!r}", request_id)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        message = "Malformed input request, please reformat your input and try again."
        return error_response(400, "ValidationException", message, request_id)
    if "claude" not in model_id and not model_id.startswith("arn:"):
        message = "The provided model identifier is invalid."
        return error_response(400, "ValidationException", message, request_id)
    if action.startswith("converse"):
        return _converse(request, state, request_id, controls, model_id, payload, action == "converse-stream")
    return _invoke(request, state, request_id, controls, model_id, payload, action.endswith("stream"))


def _invoke(
    request: Request,
    state: FakeState,
    request_id: str,
    controls: Controls,
    model_id: str,
    payload: dict[str, Any],
    streaming: bool,
) -> Response:
    for key in ("model", "stream"):
        if key in payload:
            return _malformed(f"extraneous key [{key}] is not permitted", request_id)
    if not isinstance(payload.get("anthropic_version"), str):
        return _malformed("required key [anthropic_version] not found", request_id)
    if not isinstance(payload.get("messages"), list):
        return _malformed("required key [messages] not found", request_id)
    reply = make_reply(payload, state, controls, _message_id(request_id), model=anthropic_model(model_id))
    if isinstance(reply, str):
        return _malformed("required key [max_tokens] not found", request_id)
    usage = reply.usage
    if not streaming:
        headers = {
            "x-amzn-RequestId": request_id,
            "X-Amzn-Bedrock-Input-Token-Count": str(usage.get("input_tokens", 0)),
            "X-Amzn-Bedrock-Output-Token-Count": str(usage.get("output_tokens", 0)),
            "X-Amzn-Bedrock-Invocation-Latency": "1",
        }
        body = message_json(reply, state)
        return Response(orjson.dumps(body), 200, headers, media_type="application/json")
    assets: AnthropicAssets = request.app.state.anthropic
    frames = [_frame(sse, reply) for sse in stream_events(reply, state, assets, controls.mode)]
    if controls.mode == "stream-error":
        # Bedrock ends the stream with an exception message rather than Anthropic's error event.
        frames[-1] = eventstream.exception(
            "modelStreamErrorException",
            {"message": "Overloaded", "originalStatusCode": 529, "originalMessage": "Overloaded"},
        )
    return _stream(frames, request_id, controls)


def _frame(sse: bytes, reply: Reply) -> bytes:
    """One Anthropic SSE event -> the Bedrock `chunk` message that carries it."""
    data = sse.split(b"\ndata: ", 1)[1].rstrip(b"\n")
    if data == b'{"type":"message_stop"}':
        usage = reply.usage
        metrics = {
            "inputTokenCount": usage.get("input_tokens", 0),
            "outputTokenCount": usage.get("output_tokens", 0),
            "invocationLatency": 1,
            "firstByteLatency": 1,
        }
        data = orjson.dumps({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics})
    return eventstream.chunk(data, padding=_PADDING[: 1 + len(data) % len(_PADDING)])


def _stream(frames: list[bytes], request_id: str, controls: Controls) -> Response:
    headers = {
        "content-type": EVENT_STREAM,
        "x-amzn-RequestId": request_id,
        "X-Amzn-Bedrock-Content-Type": "application/json",
    }
    return EventStreamResponse.as_asked(frames, headers, controls)


def _malformed(reason: str, request_id: str) -> Response:
    message = f"Malformed input request: #: {reason}, please reformat your input and try again."
    return error_response(400, "ValidationException", message, request_id)


def converse_to_messages(payload: dict[str, Any]) -> dict[str, Any]:
    """A Converse body as the Messages body it stands for (for the fake tokenizer and cache)."""

    def blocks(content: object) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for block in content if isinstance(content, list) else ():
            if not isinstance(block, dict):
                continue
            if "cachePoint" in block:
                if out:
                    out[-1] = {**out[-1], "cache_control": {"type": "ephemeral"}}
            elif "text" in block:
                out.append({"type": "text", "text": str(block["text"])})
            else:
                out.append({"type": "other", **block})
        return out

    messages = [
        {"role": m.get("role", "user"), "content": blocks(m.get("content"))}
        for m in payload.get("messages") or ()
        if isinstance(m, dict)
    ]
    config = payload.get("inferenceConfig")
    max_tokens = config.get("maxTokens") if isinstance(config, dict) else None
    return {
        "system": blocks(payload.get("system")),
        "messages": messages,
        "max_tokens": max_tokens if isinstance(max_tokens, int) else 4096,
    }


def _converse(
    request: Request,
    state: FakeState,
    request_id: str,
    controls: Controls,
    model_id: str,
    payload: dict[str, Any],
    streaming: bool,
) -> Response:
    if not isinstance(payload.get("messages"), list) or not payload["messages"]:
        message = "The model returned the following errors: messages: at least one message is required"
        return error_response(400, "ValidationException", message, request_id)
    messages = converse_to_messages(payload)
    reply = make_reply(messages, state, controls, _message_id(request_id), model=anthropic_model(model_id))
    if isinstance(reply, str):
        return error_response(
            400, "ValidationException", "inferenceConfig.maxTokens must be >= 1", request_id
        )
    raw = reply.usage
    creation = raw.get("cache_creation_input_tokens", 0)
    usage = {
        "inputTokens": raw.get("input_tokens", 0),
        "outputTokens": raw.get("output_tokens", 0),
        "cacheReadInputTokens": raw.get("cache_read_input_tokens", 0),
        "cacheWriteInputTokens": creation,
    }
    usage["totalTokens"] = sum(usage.values())
    stop = reply.stop_reason
    if not streaming:
        text = state.answer.text(reply.text_tokens + (reply.thinking_tokens or 0))
        body = {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": 1},
        }
        return Response(
            orjson.dumps(body), 200, {"x-amzn-RequestId": request_id}, media_type="application/json"
        )
    corpus, tokens = state.answer, reply.text_tokens + (reply.thinking_tokens or 0)
    frames = [eventstream.event("messageStart", {"role": "assistant", "p": _PADDING[:9]})]
    frames += [
        eventstream.event(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": corpus.delta(tokens, i)}}
        )
        for i in range(corpus.delta_count(tokens))
    ]
    if controls.mode in ("stream-error", "stream-cut"):
        del frames[3:]
        if controls.mode == "stream-error":
            frames.append(
                eventstream.exception(
                    "modelStreamErrorException",
                    {"message": "Overloaded", "originalStatusCode": 529, "originalMessage": "Overloaded"},
                )
            )
        return _stream(frames, request_id, controls)
    frames += [
        eventstream.event("contentBlockStop", {"contentBlockIndex": 0}),
        eventstream.event("messageStop", {"stopReason": stop}),
        eventstream.event("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}),
    ]
    return _stream(frames, request_id, controls)


async def inference_profiles(request: Request) -> Response:
    """`GET /inference-profiles` (Bedrock's control plane): the system-defined Claude profiles."""
    prepared = await _prepare(request)
    if isinstance(prepared, Response):
        return prepared
    _, request_id, _, _ = prepared
    kind = request.query_params.get("type", "SYSTEM_DEFINED")
    region = "us-east-1"
    summaries = []
    if kind == "SYSTEM_DEFINED":
        for model, name in PROFILE_MODELS:
            for prefix, label in PROFILE_PREFIXES.items():
                profile = f"{prefix}.{model}"
                arn = f"arn:aws:bedrock:{region}:{ACCOUNT}:inference-profile/{profile}"
                summaries.append(
                    {
                        "inferenceProfileName": f"{label} {name}",
                        "inferenceProfileArn": arn,
                        "inferenceProfileId": profile,
                        "description": f"Routes requests to {name}.",
                        "models": [{"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model}"}],
                        "status": "ACTIVE",
                        "type": "SYSTEM_DEFINED",
                        "createdAt": "2025-09-29T00:00:00Z",
                        "updatedAt": "2025-09-29T00:00:00Z",
                    }
                )
    body = orjson.dumps({"inferenceProfileSummaries": summaries})
    return Response(body, 200, {"x-amzn-RequestId": request_id}, media_type="application/json")
