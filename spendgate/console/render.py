"""HTML or JSON from one page's data: Jinja templates (autoescaped) shipped in the package, and the
filters that turn exact money strings into what people read."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from spendgate import __version__
from spendgate.console.charts import bar_chart, line_chart


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("spendgate.console", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = usd
    env.filters["when"] = when
    env.globals["bar_chart"] = bar_chart
    env.globals["line_chart"] = line_chart
    env.globals["points"] = points
    env.globals["version"] = __version__
    return env


def points(rows: list[dict[str, Any]], label: str, value: str) -> list[tuple[Any, Any]]:
    """Chart points from a page's rows."""
    return [(row[label], row[value]) for row in rows]


def usd(value: Any, places: int = 2) -> str:
    """'1234.5678' -> '$1,234.57'; amounts under a cent keep 4 places so they do not read as zero."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if amount != 0 and abs(amount) < Decimal("0.01"):
        places = 4
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{places}f}"


def when(value: Any) -> str:
    """'2026-11-28T16:04:05.123456Z' -> '2026-11-28 16:04 UTC'."""
    if not value:
        return "—"
    text = str(value)
    if "T" not in text:
        return text
    return f"{text[:10]} {text[11:16]} UTC"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def html_response(
    env: Environment, template: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    return HTMLResponse(env.get_template(template).render(**context), status_code=status)
