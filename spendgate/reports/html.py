"""The HTML report: one self-contained file (inline CSS and SVG charts), from a Jinja2 template
with autoescaping on; only the SVG that matplotlib drew is inserted unescaped."""

from __future__ import annotations

import re
from collections.abc import Sequence

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from spendgate.reports.charts import Chart
from spendgate.reports.layout import Document

_CODE = re.compile(r"`([^`]+)`")


def prose(text: str) -> Markup:
    """Escape, then show `command` spans as code."""
    return Markup(_CODE.sub(r"<code>\1</code>", str(escape(text))))


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("spendgate.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["prose"] = prose
    return env


def render_html(document: Document, charts: Sequence[Chart]) -> str:
    svgs = {chart.name: Markup(chart.svg()) for chart in charts}
    template = environment().get_template("report.html.j2")
    return template.render(doc=document, charts=svgs)
