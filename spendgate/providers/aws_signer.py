"""SigV4 for Bedrock, credentials from the standard AWS chain (botocore), off the event loop.

The chain (environment, shared config and credentials files, SSO, web identity, container and
instance roles) may read files or call a metadata endpoint: that happens in a thread, once at
first use and then again before the credentials expire, never inside a call. Signing itself
is CPU only. Credentials are never logged or put in an error message.

The signature is computed here (`SigV4`) rather than by botocore's `SigV4Auth`, which took ~42 us
a call and half the instructions the Bedrock path added over the Anthropic one (docs/benchmarks.md):
it builds an `AWSRequest` with `email.message` headers, parses the URL three times and derives the
signing key with four HMACs on every call. `SigV4` follows `SigV4Auth` step by step (~7 us), derives
the key once a day and canonicalises each URL once; tests/test_cloud_signing.py checks that both
give the same headers for the same inputs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from spendgate.errors import NotConfigured
from spendgate.extras import require
from spendgate.providers.credential_refresh import CredentialRefresh

# Refresh in the background this long before expiry; below the second bound, a call waits for it.
ADVISORY_REFRESH_S = 15 * 60
MANDATORY_REFRESH_S = 60


class NoAwsCredentials(NotConfigured):
    """The standard chain found no credentials (or the region is unknown)."""


def _botocore() -> Any:
    require("bedrock", "Amazon Bedrock support")
    import botocore.session

    return botocore.session


def default_region() -> str | None:
    """The region the AWS configuration names (AWS_REGION, AWS_DEFAULT_REGION, the profile's)."""
    if os.environ.get("AWS_REGION"):
        return os.environ["AWS_REGION"]
    region = _botocore().get_session().get_config_variable("region")
    return str(region) if region else None


class AwsSigner:
    """Signs requests for one service and region with the chain's current credentials."""

    def __init__(self, region: str, service: str = "bedrock") -> None:
        self.region = region
        self.service = service
        self._credentials: Any = None  # botocore Credentials (maybe refreshable)
        self._sigv4: SigV4 | None = None  # signs with the current frozen credentials
        self._refresh = CredentialRefresh(self._resolve)
        self._second, self._stamp = -1, ""  # the last X-Amz-Date and its second

    async def ready(self) -> None:
        """Make sure usable credentials are at hand; waits only at first use or past expiry."""
        await self._refresh.ensure(
            usable=self._sigv4 is not None and not self._refresh_needed(MANDATORY_REFRESH_S),
            due_soon=self._refresh_needed(ADVISORY_REFRESH_S),
        )

    def _resolve(self) -> None:
        from botocore.exceptions import BotoCoreError

        try:
            self._load_credentials()
        except BotoCoreError as exc:
            # botocore names the source that failed (a profile, an endpoint), never a secret.
            raise NoAwsCredentials(f"AWS credentials could not be loaded: {exc}") from None

    def _load_credentials(self) -> None:
        if self._credentials is None:
            credentials = _botocore().get_session().get_credentials()
            if credentials is None:
                raise NoAwsCredentials(
                    "no AWS credentials in the standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                    "AWS_PROFILE, web identity, container or instance role)"
                )
            self._credentials = credentials
        # get_frozen_credentials refreshes a refreshable set when it is due (blocking: we are in a thread)
        frozen = self._credentials.get_frozen_credentials()
        # One assignment: a call signing meanwhile uses either the old set or the new one, whole.
        self._sigv4 = SigV4(frozen.access_key, frozen.secret_key, frozen.token, self.service, self.region)

    def _refresh_needed(self, within_s: int) -> bool:
        check = getattr(self._credentials, "refresh_needed", None)
        return bool(check(within_s)) if callable(check) else False

    def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """`headers` plus X-Amz-Date, the session token if any, and Authorization. Call `ready()` first.

        The signature covers the host, the body, the content type and any x-amz-* header: what AWS
        requires. The other headers travel unsigned, as SigV4 allows (a Claude Code call carries a
        dozen, and each signed header is work on every call).
        """
        sigv4 = self._sigv4
        if sigv4 is None:
            raise NoAwsCredentials("AWS credentials are not loaded yet")
        signed: dict[str, str] = {}
        out: dict[str, str] = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower == "content-type" or lower.startswith("x-amz"):
                signed[name] = value
            else:
                out[name] = value
        out.update(sigv4.sign(method, url, signed, body, self._timestamp()))
        return out

    def _timestamp(self) -> str:
        """X-Amz-Date for now, formatted once a second (calls come many a second)."""
        second = int(time.time())
        if second != self._second:
            self._stamp, self._second = time.strftime(TIMESTAMP, time.gmtime(second)), second
        return self._stamp


TIMESTAMP = "%Y%m%dT%H%M%SZ"  # SigV4's X-Amz-Date
# Set by the signature itself: a caller's own value would be sent beside ours (or signed in its place).
_SIGNATURE_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})


class SigV4:
    """AWS Signature Version 4 (header form) for one set of credentials, service and region.

    The steps and their details are botocore's `SigV4Auth.add_auth`, for a request whose headers
    are the ones to sign: the canonical path is the URL's path with dot segments and repeated
    slashes removed, then percent-encoded again (an `%2F` in an ARN is signed as `%252F`); the
    query's pairs are sorted as they are; header values are trimmed and their inner whitespace
    collapsed; the payload is always signed (sha256 of the body).
    """

    __slots__ = ("_access_key", "_day_key", "_region", "_secret", "_service", "_token", "_urls")

    def __init__(
        self, access_key: str, secret_key: str, token: str | None, service: str, region: str
    ) -> None:
        self._access_key = access_key
        self._secret = secret_key
        self._token = token
        self._service = service
        self._region = region
        self._day_key: tuple[str, bytes] = ("", b"")  # (yyyymmdd, signing key): four HMACs, once a day
        # url -> (canonical path, canonical query, host): the same few models are called over and over
        self._urls: dict[str, tuple[str, str, str]] = {}

    def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, timestamp: str
    ) -> dict[str, str]:
        """`headers` (each of them signed; `host` taken from the URL when absent) with X-Amz-Date,
        X-Amz-Security-Token (temporary credentials) and Authorization; `timestamp` as TIMESTAMP."""
        path, query, host = self._url_parts(url)
        out = {k: v for k, v in headers.items() if k.lower() not in _SIGNATURE_HEADERS}
        out["X-Amz-Date"] = timestamp
        if self._token:
            out["X-Amz-Security-Token"] = self._token
        signed: dict[str, list[str]] = {}
        for name, value in out.items():
            signed.setdefault(name.lower(), []).append(" ".join(value.split()))
        if "host" not in signed:
            signed["host"] = [host]
        names = sorted(signed)
        signed_headers = ";".join(names)
        canonical = "\n".join(
            (
                method.upper(),
                path,
                query,
                "".join(f"{name}:{','.join(signed[name])}\n" for name in names),
                signed_headers,
                hashlib.sha256(body).hexdigest(),
            )
        )
        day = timestamp[:8]
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.digest(self._signing_key(day), to_sign.encode(), "sha256").hex()
        out["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )
        return out

    def _signing_key(self, day: str) -> bytes:
        cached_day, key = self._day_key
        if cached_day != day:
            key = f"AWS4{self._secret}".encode()
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._day_key = (day, key)
        return key

    def _url_parts(self, url: str) -> tuple[str, str, str]:
        parts = self._urls.get(url)
        if parts is None:
            if len(self._urls) > 1000:  # bounded: a client may invent model ids
                self._urls.clear()
            path, query = _path_and_query(url)
            canonical_path = quote(_remove_dot_segments(path) if path else "/", safe="/~")
            parts = self._urls[url] = (canonical_path, _canonical_query(query), _host(url))
        return parts


def _path_and_query(url: str) -> tuple[str, str]:
    """scheme://authority/path?query#fragment -> (path, query), as urlsplit reads them."""
    rest = url.partition("://")[2]
    ends = [at for at in (rest.find("/"), rest.find("?"), rest.find("#")) if at != -1]
    path, _, query = rest[min(ends) :].partition("#")[0].partition("?") if ends else ("", "", "")
    return path, query


def _canonical_query(query: str) -> str:
    """botocore's: the pairs as they are in the URL (already encoded), sorted by key then value."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{key}={value}" for key, value in pairs)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, and repeated slashes dropped, as AWS (and botocore) canonicalise a path."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment and segment != ".":
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def _host(url: str) -> str:
    """scheme://host[:port]/... -> host[:port] in lower case, without a default port (as HTTP
    clients send it)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2].lower()
    default = ":443" if scheme == "https" else ":80"
    return host.removesuffix(default)
