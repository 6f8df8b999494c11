"""Google OAuth access tokens for Vertex AI from Application Default Credentials (google-auth).

Finding the credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, the metadata server)
and refreshing the token are blocking HTTP calls: they run in a thread, once at first use and
then ahead of the token's expiry, so a call only reads a cached string. A service-account key
file's `token_uri` is honoured, as google-auth does. The token is never logged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spendgate.errors import NotConfigured
from spendgate.extras import require
from spendgate.providers.credential_refresh import CredentialRefresh

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ADVISORY_REFRESH_S = 5 * 60  # refresh in the background this long before expiry
MANDATORY_REFRESH_S = 30  # below this, a call waits for the new token


class NoGoogleCredentials(NotConfigured):
    """Application Default Credentials found nothing usable, or the token grant failed."""


class GoogleTokenSource:
    def __init__(self) -> None:
        self._credentials: Any = None
        self._token: str | None = None
        self._expiry: datetime | None = None
        self._refreshing = CredentialRefresh(self._refresh)

    def _seconds_left(self) -> float:
        if self._expiry is None:
            return float("inf")
        return (self._expiry - datetime.now(UTC)).total_seconds()

    async def token(self) -> str:
        """A valid access token; waits only at first use or when the cached one is about to expire."""
        left = self._seconds_left() if self._token else 0.0
        await self._refreshing.ensure(usable=left > MANDATORY_REFRESH_S, due_soon=left < ADVISORY_REFRESH_S)
        assert self._token is not None
        return self._token

    def _refresh(self) -> None:
        require("vertex", "Google Vertex AI support")
        import google.auth
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import Request

        try:
            if self._credentials is None:
                self._credentials, _ = google.auth.default(scopes=[SCOPE])  # type: ignore[no-untyped-call]
            self._credentials.refresh(Request())
        except GoogleAuthError as exc:
            # google-auth's messages name the file or endpoint, never the key or token.
            raise NoGoogleCredentials(f"Google credentials: {type(exc).__name__}: {exc}") from None
        self._token = self._credentials.token
        expiry = self._credentials.expiry  # naive UTC, as google-auth keeps it
        self._expiry = expiry.replace(tzinfo=UTC) if expiry is not None else None
