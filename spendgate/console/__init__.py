"""The web console under /ui/: sign-in (OIDC, trusted header, one-time links), roles, and the pages
for engineers, team leads, approvers and finance. `create_console_app` builds it from the Gateway."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from spendgate.extras import MissingExtra, missing

if TYPE_CHECKING:
    from spendgate.gateway import Gateway


def static_dir() -> str:
    return str(files("spendgate.console") / "static")


def console_app(gw: Gateway) -> ASGIApp:
    """The console to mount at /ui; without the 'console' extra, a 503 that says how to install it
    (the gateway itself runs either way)."""
    module = missing("console")
    if module is None:
        from spendgate.console.app import create_console_app

        return create_console_app(gw)
    message = str(MissingExtra("console", "The web console", module))

    async def unavailable(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(message + "\n", status_code=503)(scope, receive, send)

    return unavailable
