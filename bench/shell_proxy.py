"""Spendgate's server and process around the bare proxy's relay: what Spendgate's surroundings cost.

    SPENDGATE_...=... python bench/shell_proxy.py serve --host 127.0.0.1 --port 8791

Runs `spendgate serve` as it is, from the same SPENDGATE_* settings: the app factory, the server
protocol and its limits, the garbage collector's settings, the ledger writer and its ingest
child, the metrics, every imported module. Only POST /v1/messages and /v1/chat/completions go to
`bench/bare_proxy.py`'s relay instead of Spendgate's metered path: no auth, no metering, no ledger
row. Beside the bare proxy and Spendgate (bench/gap.py), it splits Spendgate's gap into what its
surroundings cost and what its own path costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run with -P: bare_proxy is beside us

from bare_proxy import Relay

import spendgate.app
from spendgate.cli.serve_cmd import run_server
from spendgate.config import Settings


def relayed(relay: Relay, url: str, auth: dict[str, str]) -> ASGIApp:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        if relay.session is None:  # started on first use: the app's lifespan is Spendgate's
            await relay.start()
        await relay.forward(scope, receive, send, url, auth)

    return route


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings()
    keys = [k.get_secret_value() if k else "" for k in (settings.anthropic_api_key, settings.openai_api_key)]
    relay = Relay(settings.anthropic_base_url, settings.openai_base_url, *keys)
    served = spendgate.app.create_served_app

    def shell(chosen: Settings | None = None) -> spendgate.app.SpendgateApp:
        app = served(chosen)
        routes: dict[str, Any] = {  # raw ASGI apps where SpendgateApp keeps its ProxyEndpoints
            "/v1/messages": relayed(relay, relay.anthropic_url, relay.anthropic_auth),
            "/v1/chat/completions": relayed(relay, relay.openai_url, relay.openai_auth),
        }
        app.proxies = routes
        return app

    # run_server imports create_served_app from spendgate.app when it runs: this one is found.
    spendgate.app.create_served_app = shell  # type: ignore[assignment]
    run_server(settings, args.host, args.port)


if __name__ == "__main__":
    main()
