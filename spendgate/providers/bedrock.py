"""Amazon Bedrock adapter: `/bedrock/model/{modelId}/{invoke, invoke-with-response-stream, converse,
converse-stream}` and the `inference-profiles` listing, for Anthropic models.

The client authenticates to Spendgate with its virtual key; Spendgate signs the upstream call with
SigV4 (`aws_signer.py`). The model is in the path, so the body travels unchanged. Streams are AWS
event streams: botocore's reader frames each message and the bytes go to the client as they came.
`invoke` bodies and their stream events are Anthropic's (base64 inside each `chunk`), so their
usage is read by the Anthropic meter; Converse has its own usage shape.

Prices: the model id is the price key (`us.`/`eu.`/`apac.`/`global.` inference profiles and bare
`anthropic.` ids), looked up under the `bedrock` provider, which genai-prices maps to its AWS
Bedrock table, regional profiles at their premium.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from spendgate.errors import InvalidRequest, NotConfigured, SpendgateError, UnknownEndpoint
from spendgate.extras import MissingExtra
from spendgate.pricing import Usage
from spendgate.providers.anthropic import AnthropicStreamMeter, estimate_input_tokens, usage_from
from spendgate.providers.aws_signer import NoAwsCredentials
from spendgate.providers.base import (
    ClientRequest,
    HeaderFilter,
    Metered,
    RequestInfo,
    RouteFeatures,
    UpstreamRequest,
    as_int,
    clean_text,
    json_object,
    last_turn,
    read_metadata,
    read_token_limit,
    rough_tokens,
)

PATH_PREFIX = "/bedrock/model/"
PROFILES_PATH = "/bedrock/inference-profiles"
EVENT_STREAM = "application/vnd.amazon.eventstream"
ACTIONS = {  # action -> streams?
    "invoke": False,
    "invoke-with-response-stream": True,
    "converse": False,
    "converse-stream": True,
}
# Spendgate's errors in Bedrock's words, by status: the exception name clients read from x-amzn-ErrorType
EXCEPTIONS = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    413: "ValidationException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    501: "InternalServerException",
    502: "InternalServerException",
    503: "ServiceUnavailableException",
    504: "ModelTimeoutException",
    529: "ServiceUnavailableException",
}
# `{"bytes":"` + base64 of `{"type":"content_block_delt`: the stream's commonest event, recognised
# without decoding (27 bytes encode to 36 characters whatever follows).
_DELTA_CHUNK = b'{"bytes":"' + base64.b64encode(b'{"type":"content_block_delt')
_DELTA_LENGTH = len(_DELTA_CHUNK)
_BYTES_AT = len(b'{"bytes":"')
_STOP_CHUNK = b'{"bytes":"' + base64.b64encode(b'{"type":"message_stop')  # 21 bytes: no padding
_SKIPPED_CHUNKS = (
    b'{"bytes":"' + base64.b64encode(b'{"type":"ping"}'),
    b'{"bytes":"' + base64.b64encode(b'{"type":"content_block_s'),  # start and stop (24 bytes: no padding)
)
# The headers of a `chunk` event as Bedrock writes them: `:event-type` chunk, `:content-type`
# application/json, `:message-type` event, each as name length, name, type 7 (string), value
# length, value. A message whose headers are exactly these is read without botocore's parser.
_CHUNK_HEADERS = b"".join(
    bytes([len(name)]) + name + b"\x07" + len(value).to_bytes(2, "big") + value
    for name, value in (
        (b":event-type", b"chunk"),
        (b":content-type", b"application/json"),
        (b":message-type", b"event"),
    )
)
_CONVERSE_DELTA = b"\x07\x00\x11contentBlockDelta"  # the :event-type header's string value
_LENGTHS = struct.Struct(">II")  # a message's prelude: total length, headers length (then its CRC)
_PRELUDE = 12
_SMALLEST = _PRELUDE + 4  # a message with no headers and no payload: prelude and message CRC
_MAX_MESSAGE = 16 * 1024 * 1024 + 128 * 1024  # botocore's limits: 16 MiB payload, 128 KiB headers


def split_path(path: str) -> tuple[str, str]:
    """`/bedrock/model/{modelId}/{action}` -> (modelId, action); the id may hold slashes (an ARN)."""
    model, _, action = path.removeprefix(PATH_PREFIX).rpartition("/")
    if not path.startswith(PATH_PREFIX) or not model or action not in ACTIONS:
        raise UnknownEndpoint(
            f"Unknown Bedrock operation {path!r}: expected {PATH_PREFIX}{{modelId}}/"
            "invoke, invoke-with-response-stream, converse or converse-stream",
        )
    return model, action


def is_anthropic_model(model: str) -> bool:
    # An ARN (an application inference profile) may stand for a Claude model: its price decides.
    return "anthropic." in model or model.startswith(("claude", "arn:"))


class BedrockProvider:
    name = "bedrock"
    path = PATH_PREFIX  # a prefix: the model id and action follow
    request_id_header = "x-amzn-requestid"
    stream_content_type = EVENT_STREAM

    def __init__(self, region: str | None = None, base_url: str | None = None) -> None:
        self._region = region
        self._base_url = base_url.rstrip("/") if base_url else None
        self.headers = HeaderFilter()  # which of a call's headers go on to the provider
        self._signer: Any = None  # AwsSigner, built at first use (botocore is an optional extra)
        self._paths: dict[tuple[str, str], str] = {}  # (path called, model sent) -> upstream path

    # --- where calls go -----------------------------------------------------------------
    @property
    def region(self) -> str:
        if self._region is None:
            from spendgate.providers.aws_signer import default_region

            self._region = default_region()
            if self._region is None:
                raise NotConfigured("Spendgate has no AWS region for Bedrock: set SPENDGATE_BEDROCK_REGION")
        return self._region

    @property
    def base_url(self) -> str:
        """The runtime endpoint (SPENDGATE_BEDROCK_BASE_URL overrides it, e.g. a VPC endpoint)."""
        return self._base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"

    @property
    def control_url(self) -> str:
        """Bedrock's control plane (the inference-profiles listing); with an override, the same base."""
        return self._base_url or f"https://bedrock.{self.region}.amazonaws.com"

    def upstream_path(self, info: RequestInfo, model: str) -> str:
        path = self._paths.get((info.path, model))
        if path is None:  # the same few models over and over: built once each
            if len(self._paths) > 1000:  # bounded: a client may invent model ids
                self._paths.clear()
            _, action = split_path(info.path)
            # The signature covers the path exactly as sent: `/` (an ARN) is encoded, `:` is left
            # as it is, since the HTTP client would decode `%3A` after signing (yarl normalises it).
            path = self._paths[(info.path, model)] = f"/model/{quote(model, safe=':')}/{action}"
        return path

    # --- the request --------------------------------------------------------------------
    def parse(self, body: bytes, path: str) -> RequestInfo:
        model, action = split_path(path)
        try:
            data = json_object(body)
        except InvalidRequest as exc:
            raise InvalidRequest(f"Malformed input request: {exc.message}") from None  # Bedrock's words
        if action.startswith("converse"):
            config = data.get("inferenceConfig")
            max_tokens = config.get("maxTokens") if isinstance(config, dict) else None
            metadata = data.get("requestMetadata")
        else:
            if not is_anthropic_model(model):
                raise InvalidRequest(
                    f"Spendgate meters InvokeModel for Anthropic models only, not {model!r}; "
                    "use converse for other models.",
                )
            max_tokens = read_token_limit(data, "max_tokens")
            if max_tokens is None:
                raise InvalidRequest("Malformed input request: max_tokens (a positive integer) is required.")
            metadata = read_metadata(data)
        return RequestInfo(
            model=model,
            stream=ACTIONS[action],
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            metadata=metadata if isinstance(metadata, dict) else {},
            path=path,
            body=data,
        )

    async def upstream_request(
        self, base_url: str, request: ClientRequest, info: RequestInfo, model: str
    ) -> UpstreamRequest:
        # The model travels in the path: the body is forwarded byte for byte, and signed.
        url = base_url + self.upstream_path(info, model)
        await self.ready()
        headers = self.sign("POST", url, self.upstream_headers(request.headers), request.body)
        return UpstreamRequest("POST", url, headers, request.body)

    def upstream_headers(self, incoming: Mapping[str, str]) -> dict[str, str]:
        # Everything a direct call would carry travels (Bedrock ignores what it does not know), and
        # is signed with it; never the client's credential or its own AWS signing headers.
        headers = {
            k: v
            for k, v in self.headers.request(incoming).items()
            if not k.lower().startswith("x-amz-")
        }
        headers["accept-encoding"] = "identity"
        return headers

    async def ready(self) -> None:
        """Credentials at hand (first use and expiry only wait, in a thread)."""
        try:
            if self._signer is None:
                from spendgate.providers.aws_signer import AwsSigner

                self._signer = AwsSigner(self.region)
            await self._signer.ready()
        except MissingExtra as exc:
            raise NotConfigured(str(exc)) from None
        except NoAwsCredentials as exc:
            raise NotConfigured(f"Spendgate cannot sign the Bedrock call: {exc}") from None

    def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        assert self._signer is not None, "BedrockProvider.ready() was not awaited"
        signed: dict[str, str] = self._signer.sign(method, url, headers, body)
        return signed

    def route_features(self, info: RequestInfo) -> RouteFeatures:
        body = info.body
        messages = body.get("messages")
        count = len(messages) if isinstance(messages, list) else 0
        if info.path.endswith(("/converse", "/converse-stream")):
            extra = body.get("additionalModelRequestFields")
            thinking = isinstance(extra, dict) and isinstance(extra.get("thinking"), dict)
            role, results = last_turn(messages, "toolResult")
            return RouteFeatures(bool(body.get("toolConfig")), thinking, count, role, results)
        thinking = isinstance(body.get("thinking"), dict) and body["thinking"].get("type") in (
            "enabled",
            "adaptive",
        )
        role, results = last_turn(messages, "tool_result")
        return RouteFeatures(bool(body.get("tools")), bool(thinking), count, role, results)

    def estimate_input_tokens(self, info: RequestInfo) -> int:
        body = info.body
        if info.path.endswith(("/converse", "/converse-stream")):
            parts = [body.get("system"), body.get("messages"), body.get("toolConfig")]
            return rough_tokens(sum(len(orjson.dumps(p)) for p in parts if p is not None))
        return estimate_input_tokens(body)

    # --- errors, in Bedrock's words -----------------------------------------------------
    def error(self, exc: SpendgateError, request_id: str) -> tuple[int, dict[str, str], bytes]:
        # Bedrock's body is {"message": ...}; the exception's name goes in x-amzn-ErrorType.
        name = EXCEPTIONS.get(exc.status, "InternalServerException")
        return exc.status, {"x-amzn-ErrorType": name}, orjson.dumps({"message": exc.message})

    def error_type_of(self, body: bytes) -> str | None:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        kind = data.get("__type") or data.get("code")
        return clean_text(str(kind).rsplit("#", 1)[-1]) if kind else "bedrock_error"

    # --- usage ------------------------------------------------------------------------
    def meter_json(self, status: int, body: bytes) -> Metered:
        if status >= 400:
            return Metered(usage=Usage(), error_type=self.error_type_of(body))
        data = orjson.loads(body)
        usage = data.get("usage") or {}
        if "inputTokens" in usage or "output" in data:  # a Converse answer
            return Metered(usage=converse_usage(usage), complete=True)
        return Metered(usage=usage_from(usage), response_model=clean_text(data.get("model")), complete=True)

    def stream_meter(self, info: RequestInfo) -> BedrockStreamMeter | ConverseStreamMeter:
        if info.path.endswith("/converse-stream"):
            return ConverseStreamMeter()
        return BedrockStreamMeter()


def converse_usage(raw: dict[str, Any]) -> Usage:
    """Converse usage -> Usage. `inputTokens` is the uncached input; cache reads and writes are
    reported beside it (Converse does not split writes by TTL: they count as 5-minute writes)."""
    return Usage(
        input_tokens=as_int(raw.get("inputTokens")),
        cache_read_tokens=as_int(raw.get("cacheReadInputTokens")),
        cache_write_5m_tokens=as_int(raw.get("cacheWriteInputTokens")),
        output_tokens=as_int(raw.get("outputTokens")),
    )


class _EventStreamReader:
    """Splits an AWS event stream into messages; reads the ones a meter needs.

    Framing reads the two lengths at the head of each message (its prelude) and hands the meter
    offsets, not copies: a message it only counts or skips (content deltas, pings: most of a
    stream) is recognised by the start of its payload or headers and never parsed. A message the
    meter reads has both CRCs checked: a `chunk` event whose headers are byte for byte Bedrock's
    usual three (`chunk_payload`) needs nothing else, and any other message goes through
    botocore's parser (`parse`), ~9 us a message. A damaged stream stops the reading (the call
    is then recorded as estimated), never the relay.
    """

    __slots__ = ("_pending", "broken", "error")

    def __init__(self) -> None:
        self._pending = b""
        self.broken = False
        self.error: str | None = None

    def scan(self, chunk: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
        """(buffer, [(message start, payload start, message end)]) for the messages `chunk` completes."""
        if self.broken:
            return b"", []
        data = self._pending + chunk if self._pending else chunk
        spans: list[tuple[int, int, int]] = []
        unpack, append = _LENGTHS.unpack_from, spans.append  # once a message: looked up once
        at, size = 0, len(data)
        while size - at >= _PRELUDE:
            total, headers_length = unpack(data, at)
            if not _SMALLEST <= total <= _MAX_MESSAGE or headers_length > total - _SMALLEST:
                self.broken = True  # not an event stream (or damaged): stop reading, keep relaying
                break
            end = at + total
            if end > size:
                break
            append((at, at + _PRELUDE + headers_length, end))
            at = end
        self._pending = b"" if self.broken else data[at:]
        return data, spans

    def chunk_payload(self, data: bytes, at: int, start: int, end: int) -> bytes | None:
        """The payload of the message at data[at:end] if it is a `chunk` event with Bedrock's usual
        headers and intact CRCs (botocore's two checks); None otherwise, then `broken` says whether
        a CRC failed or the headers were only different (botocore's parser reads those)."""
        if start - at != _PRELUDE + len(_CHUNK_HEADERS) or not data.startswith(_CHUNK_HEADERS, at + _PRELUDE):
            return None
        prelude_crc = int.from_bytes(data[at + 8 : at + _PRELUDE], "big")
        if zlib.crc32(data[at : at + 8]) != prelude_crc or zlib.crc32(
            data[at + 8 : end - 4], prelude_crc
        ) != int.from_bytes(data[end - 4 : end], "big"):
            self.broken = True
            return None
        return data[start : end - 4]

    def parse(self, frame: bytes) -> tuple[dict[str, Any], bytes] | None:
        """botocore's reading of one message: (headers, payload) of an event; None otherwise."""
        from botocore.eventstream import EventStreamBuffer, ParserError

        buffer = EventStreamBuffer()
        buffer.add_data(frame)
        try:
            message = next(buffer)
        except (ParserError, StopIteration):
            self.broken = True
            return None
        headers = message.headers
        kind = headers.get(":message-type")
        if kind == "event":
            return headers, message.payload
        if kind in ("exception", "error"):
            # An error after the 200 (throttling, model stream error): the provider's last word.
            self.error = str(headers.get(":exception-type") or headers.get(":error-code") or kind)
        return None


class BedrockStreamMeter:
    """InvokeModelWithResponseStream: each `chunk` holds one Anthropic stream event in base64."""

    __slots__ = ("_events", "_reader")

    def __init__(self) -> None:
        self._reader = _EventStreamReader()
        self._events = AnthropicStreamMeter()

    def feed(self, chunk: bytes) -> bytes:
        data, spans = self._reader.scan(chunk)
        deltas = chars = 0
        for at, start, end in spans:
            # A slice compared costs half a startswith(prefix, start), whose arguments are parsed
            # the slow way: this runs for every message.
            if data[start : start + _DELTA_LENGTH] == _DELTA_CHUNK:
                # Only needed if the stream is cut before message_delta: count, don't decode.
                deltas += 1
                chars += data.find(b'"', start + _BYTES_AT, end) - start - _BYTES_AT
            elif data.startswith(_STOP_CHUNK, start):
                self._events.on_event({"type": "message_stop"})  # seen by its prefix: nothing else to read
            elif not data.startswith(_SKIPPED_CHUNKS, start):
                # message_start and message_delta (the usage), errors, anything unexpected
                payload = self._reader.chunk_payload(data, at, start, end)
                if payload is None and not self._reader.broken:
                    parsed = self._reader.parse(data[at:end])
                    if parsed is not None and parsed[0].get(":event-type") == "chunk":
                        payload = parsed[1]
                if payload is not None:
                    self._read(payload)
        if deltas:
            # base64 is 4 characters for 3 bytes; ~80 bytes of each event are its JSON frame.
            self._events.count_delta(max(0, chars * 3 // 4 - 80 * deltas))
        return chunk

    def _read(self, payload: bytes) -> None:
        try:
            if payload.startswith(b'{"bytes":"'):
                # No base64 character needs escaping in JSON, so the value ends at the next quote
                # (a writer may still escape `/` as `\/`: non-strict decoding drops the backslash).
                encoded = payload[_BYTES_AT : payload.index(b'"', _BYTES_AT)]
            else:
                encoded = orjson.loads(payload)["bytes"]
            event = orjson.loads(binascii.a2b_base64(encoded))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        if isinstance(event, dict):
            self._events.on_event(event)

    def flush(self) -> bytes:
        return b""

    @property
    def finished(self) -> bool:
        return self._events.finished or self._reader.error is not None

    def result(self) -> Metered:
        result = self._events.result()
        if self._reader.error is not None:
            result = result._replace(error_type=result.error_type or self._reader.error, complete=False)
        if self._reader.broken:
            result = result._replace(estimated=True, complete=False)
        return result


class ConverseStreamMeter:
    """ConverseStream: JSON events; usage arrives in the last one, `metadata`."""

    __slots__ = ("_delta_chars", "_reader", "_usage")

    def __init__(self) -> None:
        self._reader = _EventStreamReader()
        self._usage: Usage | None = None
        self._delta_chars = 0

    def feed(self, chunk: bytes) -> bytes:
        data, spans = self._reader.scan(chunk)
        for at, start, end in spans:
            if data.find(_CONVERSE_DELTA, at + _PRELUDE, start) != -1:
                # Only needed if the stream is cut before `metadata`: count, don't parse.
                self._delta_chars += max(0, end - start - 64)
                continue
            parsed = self._reader.parse(data[at:end])
            if parsed is None or parsed[0].get(":event-type") != "metadata":
                continue
            try:
                usage = orjson.loads(parsed[1]).get("usage")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(usage, dict):
                self._usage = converse_usage(usage)
        return chunk

    def flush(self) -> bytes:
        return b""

    @property
    def finished(self) -> bool:
        return self._usage is not None or self._reader.error is not None

    def result(self) -> Metered:
        if self._usage is not None:
            return Metered(
                usage=self._usage, complete=self._reader.error is None, error_type=self._reader.error
            )
        # Cut before `metadata`: output estimated from the text seen; the prompt is estimated on settling.
        output = rough_tokens(self._delta_chars) if self._delta_chars else 0
        return Metered(usage=Usage(output_tokens=output), estimated=True, error_type=self._reader.error)
