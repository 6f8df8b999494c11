"""Spendgate's SigV4 against botocore's: the same request, credentials and time must give the same
headers (X-Amz-Date, X-Amz-Security-Token, Authorization) as `botocore.auth.SigV4Auth`, for the
paths, queries and header shapes Spendgate sends and for the awkward ones SigV4 defines."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from spendgate.fake_upstream.sigv4 import verify
from spendgate.providers.aws_signer import TIMESTAMP, AwsSigner, SigV4
from spendgate.providers.bedrock import BedrockProvider
from tests.cloud import AWS_KEY_ID, AWS_SECRET

RUNTIME = "https://bedrock-runtime.us-east-1.amazonaws.com"
BODY = b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[]}'
JSON = {"content-type": "application/json"}
INVOKE = f"{RUNTIME}/model/m/invoke"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"

LISTING = "https://bedrock.us-east-1.amazonaws.com"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
CASES: dict[str, tuple[str, str, dict[str, str], bytes]] = {
    "stream call": ("POST", f"{RUNTIME}/model/{CLAUDE}/invoke-with-response-stream", JSON, BODY),
    # an ARN's `/` is sent encoded, so SigV4 encodes it twice; its `:` is sent as it is
    "ARN in the path": ("POST", f"{RUNTIME}/model/{ARN.replace('/', '%2F')}/invoke", JSON, BODY),
    "loopback with a port": ("POST", "http://127.0.0.1:8123/model/global.anthropic.m/converse", JSON, BODY),
    "default port, upper-case host": (
        "POST", "https://Bedrock-Runtime.US-EAST-1.amazonaws.com:443/model/m/invoke", JSON, BODY,
    ),
    "listing with a query": (
        "GET", f"{LISTING}/inference-profiles?type=SYSTEM_DEFINED&maxResults=50", {"accept": "*/*"}, b"",
    ),
    "unsorted, repeated and encoded query": ("GET", f"{LISTING}/x?b=2&a=3&a=1&c&n%20ame=v%2Fw", {}, b""),
    "dot segments and double slashes": ("POST", f"{RUNTIME}/model/./a//b/../c/invoke/", JSON, BODY),
    "no path": ("GET", LISTING, {}, b""),
    "no path, a query": ("GET", f"{LISTING}?x=1", {}, b""),
    "spaces in values, mixed-case names": (
        "POST", INVOKE, {"Content-Type": " application/json ", "X-Amz-Target": "a  b\tc"}, BODY,
    ),
    "host given": ("POST", INVOKE, {"host": RUNTIME.removeprefix("https://"), **JSON}, BODY),
    "stale signature headers": (
        "POST", INVOKE, {**JSON, "X-Amz-Date": "20200101T000000Z", "Authorization": "x"}, BODY,
    ),
    "characters SigV4 encodes": ("POST", f"{RUNTIME}/model/a~b!c$d'e(f)g*h+i,j;k=l@m/invoke", JSON, BODY),
}  # fmt: skip


def botocore_headers(
    monkeypatch: pytest.MonkeyPatch,
    when: datetime,
    credentials: Credentials,
    case: tuple[str, str, dict[str, str], bytes],
    service: str = "bedrock",
    region: str = "us-east-1",
) -> dict[str, str]:
    """What botocore's SigV4Auth adds to the request at `when`: the reference."""
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: when)
    method, url, headers, body = case
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())


def spendgate_headers(
    when: datetime,
    credentials: Credentials,
    case: tuple[str, str, dict[str, str], bytes],
    service: str = "bedrock",
    region: str = "us-east-1",
    signer: SigV4 | None = None,
) -> dict[str, str]:
    method, url, headers, body = case
    if signer is None:
        signer = SigV4(credentials.access_key, credentials.secret_key, credentials.token, service, region)
    return signer.sign(method, url, headers, body, when.strftime(TIMESTAMP))


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("token", [None, "session-token/+="])
def test_same_headers_as_botocore(monkeypatch: pytest.MonkeyPatch, name: str, token: str | None) -> None:
    credentials = Credentials(AWS_KEY_ID, AWS_SECRET, token)
    when = datetime(2026, 11, 29, 18, 7, 5)
    expected = botocore_headers(monkeypatch, when, credentials, CASES[name])
    assert spendgate_headers(when, credentials, CASES[name]) == expected
    assert expected["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/20261129/")


@pytest.mark.parametrize(("service", "region"), [("bedrock", "eu-west-3"), ("sts", "ap-southeast-2")])
def test_other_services_and_regions(monkeypatch: pytest.MonkeyPatch, service: str, region: str) -> None:
    credentials = Credentials(AWS_KEY_ID, AWS_SECRET)
    when = datetime(2026, 1, 2, 3, 4, 5)
    case = CASES["stream call"]
    expected = botocore_headers(monkeypatch, when, credentials, case, service, region)
    assert spendgate_headers(when, credentials, case, service, region) == expected


def test_a_stale_session_token_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where Spendgate departs from botocore on purpose: without a session token of its own,
    # botocore signs and sends whatever X-Amz-Security-Token the caller left; Spendgate drops it
    # (with one, both replace it). The provider strips the client's x-amz-* headers anyway.
    method, url, headers, body = CASES["stream call"]
    stale = (method, url, {**headers, "x-amz-security-token": "old"}, body)
    when = datetime(2026, 11, 29, 18, 7, 5)
    credentials = Credentials(AWS_KEY_ID, AWS_SECRET)
    assert spendgate_headers(when, credentials, stale) == botocore_headers(
        monkeypatch, when, credentials, CASES["stream call"]
    )


def test_signing_key_follows_the_day(monkeypatch: pytest.MonkeyPatch) -> None:
    # The derived key is kept for the day: the next day's signature must use the next day's key.
    credentials = Credentials(AWS_KEY_ID, AWS_SECRET)
    signer = SigV4(AWS_KEY_ID, AWS_SECRET, None, "bedrock", "us-east-1")
    days = (datetime(2026, 11, 29, 23, 59, 59), datetime(2026, 11, 30, 0, 0, 1), datetime(2026, 11, 29, 12))
    for when in days:
        for name in ("stream call", "ARN in the path", "stream call"):  # the path cache, too
            expected = botocore_headers(monkeypatch, when, credentials, CASES[name])
            assert spendgate_headers(when, credentials, CASES[name], signer=signer) == expected


def test_bedrock_call_signs_what_aws_requires_and_the_fake_accepts() -> None:
    """The provider's own signing: host, body, content type and x-amz-* are signed, the client's other
    headers travel unsigned, its credential never; botocore (in the fake's verifier) accepts it."""
    from botocore.credentials import RefreshableCredentials

    provider = BedrockProvider("us-east-1", RUNTIME)
    signer = AwsSigner("us-east-1")
    metadata = {
        "access_key": AWS_KEY_ID, "secret_key": AWS_SECRET, "token": "tok", "expiry_time": "2099-01-01T00:00Z"
    }
    signer._credentials = RefreshableCredentials.create_from_metadata(metadata, lambda: metadata, "test")
    provider._signer = signer
    asyncio.run(provider.ready())
    incoming = {
        "authorization": "Bearer sk-sg-virtual-key", "content-type": "application/json",
        "anthropic-beta": "x", "x-claude-code-session-id": "s-1", "x-amz-date": "20200101T000000Z",
        "host": "spendgate.example.com",
    }  # fmt: skip
    url = f"{RUNTIME}/model/m/invoke-with-response-stream"
    headers = provider.sign("POST", url, provider.upstream_headers(incoming), BODY)
    assert "authorization" not in headers and "host" not in headers
    assert headers["anthropic-beta"] == "x" and headers["x-claude-code-session-id"] == "s-1"
    assert headers["X-Amz-Security-Token"] == "tok"
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in headers["Authorization"]
    lower: dict[str, Any] = {k.lower(): v for k, v in headers.items()}
    lower["host"] = "bedrock-runtime.us-east-1.amazonaws.com"
    verify(
        method="POST", url=url, headers=lower, body=BODY, access_key_id=AWS_KEY_ID,
        secret_access_key=AWS_SECRET, service="bedrock",
    )  # fmt: skip
