"""Cloud credentials on the hot path: resolved once in a thread, refreshed ahead of expiry in the
background, waited for only when they have run out; never blocking the event loop meanwhile."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.credentials import RefreshableCredentials

from spendgate.providers.aws_signer import AwsSigner


class Chain:
    """A refreshable credential source whose refreshes are counted and can be made slow."""

    def __init__(self, lifetime: timedelta) -> None:
        self.lifetime = lifetime
        self.refreshes = 0
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()

    def refresh(self) -> dict[str, Any]:
        self.gate.wait(10)
        self.refreshes += 1
        self.threads.add(threading.current_thread().name)
        return {
            "access_key": f"AKIDREFRESH{self.refreshes:04d}",
            "secret_key": "secret",
            "token": f"session-{self.refreshes}",
            "expiry_time": (datetime.now(UTC) + self.lifetime).isoformat(),
        }


def signer_over(chain: Chain) -> AwsSigner:
    signer = AwsSigner("us-east-1")
    signer._credentials = RefreshableCredentials.create_from_metadata(chain.refresh(), chain.refresh, "test")
    chain.refreshes = 0  # that first fetch was the test's own
    chain.threads.clear()
    return signer


def access_key(signer: AwsSigner) -> str:
    headers = signer.sign("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke", {}, b"{}")
    return headers["Authorization"].split("Credential=")[1].split("/")[0]


def test_long_lived_credentials_are_not_refreshed() -> None:
    chain = Chain(timedelta(hours=1))
    signer = signer_over(chain)

    async def calls() -> None:
        for _ in range(50):
            await signer.ready()
            access_key(signer)

    asyncio.run(calls())
    assert chain.refreshes == 0


def test_credentials_near_expiry_refresh_in_the_background() -> None:
    chain = Chain(timedelta(minutes=5))  # inside the 15-minute advisory window, outside the mandatory one
    signer = signer_over(chain)

    async def calls() -> tuple[str, str]:
        await signer.ready()  # first use: resolved (in a thread)
        first = access_key(signer)
        chain.gate.clear()  # the next refresh hangs until released
        chain.lifetime = timedelta(hours=1)
        await asyncio.wait_for(signer.ready(), 1)  # does not wait for the refresh
        during = access_key(signer)
        chain.gate.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if access_key(signer) != during:
                break
        return first, during

    first, during = asyncio.run(calls())
    assert during == first  # kept signing with the current credentials meanwhile
    assert access_key(signer) != first  # then switched to the refreshed ones
    assert "MainThread" not in chain.threads  # never on the event loop's thread


def test_expired_credentials_are_waited_for() -> None:
    chain = Chain(timedelta(seconds=30))  # inside botocore's and our mandatory windows
    signer = signer_over(chain)
    chain.lifetime = timedelta(hours=1)

    async def call() -> str:
        await signer.ready()
        return access_key(signer)

    assert asyncio.run(call()).startswith("AKIDREFRESH")
    assert chain.refreshes >= 1 and "MainThread" not in chain.threads


@pytest.mark.parametrize("missing", ["AWS_ACCESS_KEY_ID"])
def test_no_credentials_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, missing: str
) -> None:
    from spendgate.providers.aws_signer import NoAwsCredentials

    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(NoAwsCredentials, match="no AWS credentials"):
        asyncio.run(AwsSigner("us-east-1").ready())


class GoogleCredentials:
    """Stands in for a google-auth credentials object (the external side): counted, slow on demand."""

    def __init__(self, lifetime: timedelta) -> None:
        self.lifetime = lifetime
        self.refreshes = 0
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.token: str | None = None
        self.expiry: datetime | None = None

    def refresh(self, request: Any) -> None:
        self.gate.wait(10)
        self.refreshes += 1
        self.threads.add(threading.current_thread().name)
        self.token = f"ya29.token-{self.refreshes}"
        self.expiry = (datetime.now(UTC) + self.lifetime).replace(tzinfo=None)  # naive UTC, as google-auth


def test_google_token_cached_then_refreshed_ahead_of_expiry() -> None:
    from spendgate.providers.google_token import GoogleTokenSource

    credentials = GoogleCredentials(timedelta(hours=1))
    source = GoogleTokenSource()
    source._credentials = credentials

    async def calls() -> list[str]:
        tokens = [await source.token() for _ in range(20)]  # first: fetched in a thread; then cached
        credentials.lifetime = timedelta(hours=1)
        source._expiry = datetime.now(UTC) + timedelta(minutes=2)  # now inside the advisory window
        credentials.gate.clear()
        tokens.append(await asyncio.wait_for(source.token(), 1))  # the cached one, without waiting
        credentials.gate.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if await source.token() != tokens[-1]:
                break
        tokens.append(await source.token())
        return tokens

    tokens = asyncio.run(calls())
    assert set(tokens[:21]) == {"ya29.token-1"} and tokens[-1] == "ya29.token-2"
    assert credentials.refreshes == 2 and "MainThread" not in credentials.threads
