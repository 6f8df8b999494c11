"""Produce a report as files: gather, draw, render to HTML and/or PDF, write or hand back bytes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from spendgate.extras import require
from spendgate.finance.focus import month_bounds
from spendgate.reports import data
from spendgate.reports.data import ReportSource
from spendgate.reports.layout import Document, finance_document, governance_document
from spendgate.routing.baseline import Baseline

if TYPE_CHECKING:
    from spendgate.reports.charts import Chart

KINDS = ("finance", "governance")
FORMATS = ("html", "pdf")
MIME = {"html": "text/html", "pdf": "application/pdf"}


@dataclass(frozen=True, slots=True)
class Output:
    filename: str  # spendgate-finance-2026-11.pdf
    format: str  # html or pdf
    content: bytes

    @property
    def mime(self) -> str:
        return MIME[self.format]


@dataclass(frozen=True, slots=True)
class Produced:
    document: Document  # what the report says (its key figures go in an email's body)
    outputs: list[Output]


def previous_month(now: datetime) -> str:
    """The last complete UTC month before `now`."""
    first = now.astimezone(UTC).replace(day=1)
    year, month = (first.year, first.month - 1) if first.month > 1 else (first.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def produce(
    store: ReportSource,
    kind: str,
    *,
    month: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    formats: tuple[str, ...] = FORMATS,
    now: datetime | None = None,
    on_step: Callable[[str], None] = lambda _: None,
    baseline: Baseline | None = None,
) -> Produced:
    """The report as files. Finance covers one UTC month (default: the last complete one), its
    savings also stated against `baseline` (default: claude-opus-4-6 for every call); governance a
    month too, or [since, until) when both are given. `on_step` hears each step as it starts
    (reading, charts, then each format: a progress bar's steps, 2 + len(formats))."""
    require("reports", f"the {kind} report")
    on_step("Reading the ledger")
    from spendgate.reports import charts as ch  # matplotlib loads only when a report is made

    now = now or datetime.now(UTC)
    if kind == "finance":
        label = month or previous_month(now)
        finance = data.finance_report(store, label, now, baseline)
        document: Document = finance_document(finance)
        on_step("Drawing the charts")
        charts = ch.finance_charts(finance)
    elif kind == "governance":
        if since is not None and until is not None:
            if until <= since:
                raise ValueError("--until must be after --since")
            label = f"{since:%Y-%m-%d}_{until:%Y-%m-%d}"
            title = f"{since:%Y-%m-%d} to {until:%Y-%m-%d}"
        else:
            label = month or previous_month(now)
            since, until = month_bounds(label)
            title = data.month_label(label)
        if since > now:
            raise ValueError(f"{title} has not started yet")
        governance = data.governance_report(store, since, until, title, now)
        document = governance_document(governance)
        on_step("Drawing the charts")
        charts = ch.governance_charts(governance)
    else:
        raise ValueError(f"a report is one of {', '.join(KINDS)}, not {kind!r}")
    return Produced(document, render(document, charts, f"spendgate-{kind}-{label}", formats, on_step))


def render(
    document: Document,
    charts: list[Chart],
    stem: str,
    formats: tuple[str, ...],
    on_step: Callable[[str], None] = lambda _: None,
) -> list[Output]:
    out = []
    for fmt in formats:
        on_step(f"Rendering the {fmt.upper()}")
        if fmt == "html":
            from spendgate.reports.html import render_html

            out.append(Output(f"{stem}.html", "html", render_html(document, charts).encode()))
        elif fmt == "pdf":
            from spendgate.reports.pdf import render_pdf

            out.append(Output(f"{stem}.pdf", "pdf", render_pdf(document, charts)))
        else:
            raise ValueError(f"a report format is one of {', '.join(FORMATS)}, not {fmt!r}")
    return out


def write(outputs: list[Output], target: Path) -> list[Path]:
    """Write into the folder `target`; or, for a single output, to the file `target` when it has
    that output's suffix (report.pdf). Written atomically (temp file, then rename)."""
    paths = []
    for output in outputs:
        if len(outputs) == 1 and target.suffix.lower() == f".{output.format}":
            path = target
        else:
            path = target / output.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_bytes(output.content)
        temp.replace(path)
        paths.append(path)
    return paths
