"""SigV4 for Bedrock with botocore, credentials from the standard AWS chain, off the event loop.

The chain (environment, shared config and credentials files, SSO, web identity, container and
instance roles) may read files or call a metadata endpoint: that happens in a thread, once at
first use and then again before the credentials expire, never inside a call. Signing itself
is CPU only. Credentials are never logged or put in an error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

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
        self._frozen: Any = None  # ReadOnlyCredentials: what a signature uses
        self._auth: Any = None  # botocore's SigV4 signer over them
        self._refresh = CredentialRefresh(self._resolve)

    async def ready(self) -> None:
        """Make sure usable credentials are at hand; waits only at first use or past expiry."""
        await self._refresh.ensure(
            usable=self._frozen is not None and not self._refresh_needed(MANDATORY_REFRESH_S),
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
        self._auth = _signer_class()(frozen, self.service, self.region)
        self._frozen = frozen

    def _refresh_needed(self, within_s: int) -> bool:
        check = getattr(self._credentials, "refresh_needed", None)
        return bool(check(within_s)) if callable(check) else False

    def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """`headers` plus X-Amz-Date, the session token if any, and Authorization. Call `ready()` first.

        The signature covers the host, the body, the content type and any x-amz-* header: what AWS
        requires. The other headers travel unsigned, as SigV4 allows; botocore's header handling
        costs per header, and a Claude Code call carries a dozen.
        """
        from botocore.awsrequest import AWSRequest

        if self._frozen is None:
            raise NoAwsCredentials("AWS credentials are not loaded yet")
        signed = {
            k: v for k, v in headers.items() if k.lower() == "content-type" or k.lower().startswith("x-amz")
        }
        # The host as the HTTP client will send it (botocore would parse the URL twice for it).
        signed["host"] = _host(url)
        request = AWSRequest(method=method, url=url, headers=signed, data=body)
        self._auth.add_auth(request)
        out = {**headers, **request.headers}
        del out["host"]  # the HTTP client sets the same value itself
        return out


def _host(url: str) -> str:
    """scheme://host[:port]/... -> host[:port], without a default port (as HTTP clients send it)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    default = ":443" if scheme == "https" else ":80"
    return host.removesuffix(default)


def _signer_class() -> Any:
    """botocore's SigV4, reading the body it was given rather than preparing the whole request
    for it (a third of the signing time): the signature is the same."""
    from hashlib import sha256

    from botocore.auth import SigV4Auth

    class BodySigV4Auth(SigV4Auth):  # type: ignore[misc]
        def payload(self, request: Any) -> str:
            return sha256(request.data or b"").hexdigest()

    return BodySigV4Auth
