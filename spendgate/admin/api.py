from __future__ import annotations

from starlette.applications import Starlette

from spendgate.gateway import Gateway


def create_admin_app(gw: Gateway) -> Starlette:
    return Starlette()
