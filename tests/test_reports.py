"""The finance and governance reports: figures from a known ledger, the PDF (pages, text, embedded
charts) and the HTML (inline SVG charts), the CLI, and the schedule (once per period, into a folder
and by email to a local SMTP server)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from spendgate.cli import build_app
from spendgate.reports import data
from spendgate.reports.produce import produce
from spendgate.reports.schedule import due_period, load_schedule, parse_schedule, produced, run_due
from spendgate.store import Store, open_store
from tests.mailbox import Mailbox
from tests.reports_seed import NOW, USD, seed


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path}/reports.db")
    store.migrate()
    seed(store)
    yield store
    store.close()


def pdf_text(content: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(content))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


# --- figures ---------------------------------------------------------------------------------------
def test_finance_figures_on_every_backend(database_url: str) -> None:
    store = open_store(database_url)
    store.migrate()
    try:
        seed(store)
        report = data.finance_report(store, "2026-10", NOW)
    finally:
        store.close()
    assert report.total_nanos == 4300 * USD and report.requests == 54
    assert report.previous_nanos == 1900 * USD and not report.partial
    assert report.monthly[-2:] == (("2026-09", 1900 * USD), ("2026-10", 4300 * USD))
    assert len(report.daily) == 31 and report.daily[14].cost_nanos == 250 * USD
    platform = next(t for t in report.cost_per_pr if t.team == "platform")
    october = platform.at("2026-10")
    assert october is not None and october.merged_prs == 85
    assert october.cost_per_pr == Decimal(3200) / 85
    # Sept $100/PR -> Oct $37.647...: the least-squares slope of two points is their difference.
    assert platform.slope_usd_per_month is not None
    assert round(platform.slope_usd_per_month, 20) == round(Decimal(3200) / 85 - 100, 20)
    assert report.merged_prs == 105
    [budget] = report.budgets
    assert (budget.amount_nanos, budget.actual_nanos, budget.used) == (3000 * USD, 3200 * USD, "106.7%")
    # A past month: November at the run-rate of October's last 7 days ($100/day, platform only).
    assert report.forecast.kind == "next-month" and report.forecast.month == "2026-11"
    assert report.forecast.projected_nanos == 3000 * USD
    assert [u.name for u in report.use_cases] == ["code-review", "autonomous-agent", "chat"]
    assert report.savings is not None
    assert (report.savings.saved_nanos, report.savings.routed_requests) == (400 * USD, 1)
    assert [(r.name, r.cost_nanos) for r in report.savings.by_rule] == [("cheap-review", 400 * USD)]


def test_month_in_progress_projects_its_end(store: Store) -> None:
    report = data.finance_report(store, "2026-10", datetime(2026, 10, 21, 0, 0, tzinfo=UTC))
    assert report.partial and len(report.daily) == 20
    assert report.forecast.kind == "month-end" and report.forecast.month == "2026-10"
    platform = next(p for p in report.forecast.projections if p.name == "platform")
    # Oct 1-20: $2,000 + the routed $100; run-rate Oct 14-20 = $800/7 a day; 11 days left.
    assert platform.mtd_nanos == 2100 * USD
    assert platform.projected_nanos == round(2100 * USD + Decimal(800 * USD) / 7 * 11)
    with pytest.raises(ValueError, match="not started"):
        data.finance_report(store, "2026-12", NOW)


def test_no_routing_no_savings_section(tmp_path: Path) -> None:
    plain = open_store(f"sqlite:///{tmp_path}/plain.db")
    plain.migrate()
    seed(plain, routing=False)
    report = produce(plain, "finance", month="2026-10", formats=("html",), now=NOW)
    plain.close()
    html = report.outputs[0].content.decode()
    assert "Routing savings" not in html and 'id="chart-routing-savings"' not in html
    assert 'id="chart-cost-per-pr"' in html


def test_usd_rounds_half_up_to_the_cent() -> None:
    assert data.usd(3200 * USD) == "$3,200.00"
    assert data.usd(37_645_000_000) == "$37.65"
    assert data.usd(-5_000_000) == "-$0.01"
    assert data.usd_exact(4300 * USD + 1) == "4300.000000001"


# --- the finance PDF and HTML ---------------------------------------------------------------------
def test_finance_pdf_renders_with_its_charts_and_figures(store: Store) -> None:
    report = produce(store, "finance", month="2026-10", formats=("pdf",), now=NOW)
    [output] = report.outputs
    assert output.filename == "spendgate-finance-2026-10.pdf" and output.content.startswith(b"%PDF-")
    reader, text = pdf_text(output.content)
    assert 2 <= len(reader.pages) <= 4
    assert reader.metadata is not None and reader.metadata.title == "Spendgate finance report: October 2026"
    first = reader.pages[0].extract_text()
    assert "Spendgate finance report: October 2026" in first
    assert "$4,300.00" in first and "exactly $4300" in first  # total spend, rounded and exact
    assert "$40.95" in first  # $4,300 / 105 merged PRs
    for figure in ("$37.65", "$55.00", "-62.4%", "$3,200.00", "106.7%", "$3,000.00", "$400.00"):
        assert figure in text, figure
    for heading in (
        "Spend trend",
        "Cost per merged PR",
        "Budget versus actual",
        "Forecast",
        "Top use cases",
        "Routing savings",
    ):
        assert heading in text, heading
    # One embedded image per chart: trend, cost per PR, budget, forecast, use cases, savings.
    images = [image for page in reader.pages for image in page.images]
    assert len(images) == 6
    assert all(image.image is not None and image.image.width > 600 for image in images)


def test_finance_html_has_inline_svg_charts_and_figures(store: Store) -> None:
    report = produce(store, "finance", month="2026-10", formats=("html",), now=NOW)
    html = report.outputs[0].content.decode()
    assert html.startswith("<!doctype html>")
    charts = (
        "spend-trend",
        "cost-per-pr",
        "budget-vs-actual",
        "forecast",
        "top-use-cases",
        "routing-savings",
    )
    for name in charts:
        start = html.index(f'id="chart-{name}"')
        assert html[start : start + 200].count("<svg") == 1, name
    assert html.count("<svg") == len(charts)
    assert "<?xml" not in html  # inline SVG, no XML declaration
    for figure in ("$4,300.00", "$40.95", "$37.65", "$55.00", "106.7%", "$400.00"):
        assert figure in html, figure
    assert ">platform<" in html  # team names in the chart legends are text, not paths


def test_html_escapes_names(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/x.db")
    store.migrate()
    seed(store)
    store.create_team("acme", "<script>alert(1)</script>", "CC-9")
    team = next(t for t in store.list_teams() if t.name.startswith("<"))
    from tests.reports_seed import _row

    store.insert_ledger_rows([_row("2026-10-03", team.id, 5, "code-review")])
    html = produce(store, "governance", month="2026-10", formats=("html",), now=NOW).outputs[0].content
    store.close()
    assert b"<script>alert(1)</script>" not in html
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- governance ----------------------------------------------------------------------------------
def test_governance_report_pdf_and_html(store: Store) -> None:
    report = produce(store, "governance", month="2026-10", now=NOW)
    html, pdf = (o.content for o in report.outputs)
    reader, text = pdf_text(pdf)
    for expected in (
        "Spendgate governance report: October 2026",
        "$4,300.00",
        "platform",
        "mobile",
        "claude-sonnet-4-6",
        "gpt-4.1",
        "ada",
        "grace",
        "Top keys",
        "platform spent $200",
    ):
        assert expected in text, expected
        assert expected in html.decode(), expected
    images = [image for page in reader.pages for image in page.images]
    assert len(images) == 6  # daily, teams, use cases, models, keys, users
    assert html.decode().count("<svg") == 6


# --- the CLI -------------------------------------------------------------------------------------
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("SPENDGATE_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    result = CliRunner().invoke(build_app(), list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_writes_finance_both_formats_and_a_named_pdf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = open_store(f"sqlite:///{tmp_path}/cli.db")
    seeded.migrate()
    seed(seeded)
    seeded.close()
    out = tmp_path / "out"
    printed = cli(tmp_path, monkeypatch, "report", "finance", "--month", "2026-10", "-o", str(out))
    assert printed.split() == [
        str(out / "spendgate-finance-2026-10.html"),
        str(out / "spendgate-finance-2026-10.pdf"),
    ]
    assert (out / "spendgate-finance-2026-10.pdf").read_bytes().startswith(b"%PDF-")
    named = tmp_path / "board.pdf"
    cli(tmp_path, monkeypatch, "report", "finance", "--month", "2026-10", "--format", "pdf", "-o", str(named))
    assert "$37.65" in pdf_text(named.read_bytes())[1]
    gov = cli(
        tmp_path,
        monkeypatch,
        "report",
        "governance",
        "--since",
        "2026-10-01",
        "--until",
        "2026-10-08",
        "--format",
        "html",
        "-o",
        str(out),
    )
    assert gov.strip() == str(out / "spendgate-governance-2026-10-01_2026-10-08.html")
    # The aliases answer like the top-level commands.
    alias = cli(tmp_path, monkeypatch, "report", "chargeback", "--month", "2026-10", "--format", "json")
    assert json.loads(alias)["total_usd"] == "4300"
    top = cli(tmp_path, monkeypatch, "chargeback", "--month", "2026-10", "--format", "json")
    assert top == alias


# --- the schedule --------------------------------------------------------------------------------
def write_schedule(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "reports.toml"
    path.write_text(
        f"""
[smtp]
host = "127.0.0.1"
port = {port}
from = "spendgate@acme.example"

[[report]]
name = "monthly-finance"
report = "finance"
day = 1
time = "07:00"
timezone = "Europe/Berlin"
format = "both"
folder = "out/finance"
email = ["cfo@acme.example", "bu-lead@acme.example"]

[[report]]
name = "weekly-governance"
report = "governance"
every = "week"
weekday = "monday"
time = "08:00"
format = "pdf"
folder = "out/governance"
"""
    )
    return path


def test_schedule_runs_each_report_once_per_period_into_a_folder_and_by_email(
    store: Store, smtp: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, port = smtp
    schedule = load_schedule(write_schedule(tmp_path, port))
    # 1 Nov 2026 05:30 UTC is 06:30 in Berlin: October's finance report is not due yet; the weekly
    # governance report (Monday 26 Oct 08:00 UTC has passed) covers ISO week 43 (19-26 Oct).
    early = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    results = run_due(store, schedule, early)
    assert [(r.entry, r.period, r.error) for r in results] == [
        ("monthly-finance", "2026-09", None),  # the latest run before: 1 Oct 07:00 Berlin
        ("weekly-governance", "2026-W43", None),
    ]
    later = datetime(2026, 11, 1, 6, 5, tzinfo=UTC)  # 07:05 in Berlin
    [finance] = run_due(store, schedule, later)
    assert (finance.entry, finance.period, finance.error) == ("monthly-finance", "2026-10", None)
    folder = tmp_path / "out" / "finance"
    assert sorted(p.name for p in folder.iterdir()) == [
        "spendgate-finance-2026-09.html",
        "spendgate-finance-2026-09.pdf",
        "spendgate-finance-2026-10.html",
        "spendgate-finance-2026-10.pdf",
    ]
    assert [p.name for p in (tmp_path / "out" / "governance").iterdir()] == [
        "spendgate-governance-2026-10-19_2026-10-26.pdf"
    ]
    # Twice more in the same period: nothing is produced or sent again.
    assert run_due(store, schedule, later) == []
    assert run_due(store, schedule, datetime(2026, 11, 1, 23, 59, tzinfo=UTC)) == []
    assert len(box.messages) == 2
    envelope = box.messages[-1]
    assert envelope.rcpt_tos == ["cfo@acme.example", "bu-lead@acme.example"]
    mail: Message = message_from_bytes(envelope.content)
    assert mail["Subject"] == "Spendgate finance report: October 2026"
    parts = {part.get_filename(): part for part in mail.walk() if part.get_filename()}
    assert set(parts) == {"spendgate-finance-2026-10.html", "spendgate-finance-2026-10.pdf"}
    pdf = parts["spendgate-finance-2026-10.pdf"].get_payload(decode=True)
    assert isinstance(pdf, bytes) and "$37.65" in pdf_text(pdf)[1]
    body = next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert isinstance(body, bytes) and b"Total spend: $4,300.00" in body
    records = {(r.entry, r.period): r for r in produced(store)}
    assert records[("monthly-finance", "2026-10")].status == "done"
    assert records[("monthly-finance", "2026-10")].emailed == ["cfo@acme.example", "bu-lead@acme.example"]


def test_a_failed_run_is_retried_on_the_next_pass(store: Store, tmp_path: Path) -> None:
    schedule = parse_schedule(
        {
            "smtp": {"host": "127.0.0.1", "port": 1, "from": "s@acme.example", "timeout_s": 2},
            "report": [{"name": "fin", "report": "finance", "email": "cfo@acme.example"}],
        },
    )
    [failed] = run_due(store, schedule, NOW)  # nothing listens on port 1
    assert failed.period == "2026-10" and failed.error is not None
    assert produced(store) == []
    sent: list[Any] = []
    [ok] = run_due(store, schedule, NOW, send=lambda smtp, mail: sent.append(mail))
    assert ok.error is None and ok.emailed == ["cfo@acme.example"] and len(sent) == 1
    assert run_due(store, schedule, NOW, send=lambda smtp, mail: sent.append(mail)) == []


def test_due_period_edges() -> None:
    schedule = parse_schedule(
        {"report": [{"name": "f", "report": "finance", "day": 31, "time": "00:00", "folder": "x"}]},
    )
    [entry] = schedule.entries
    # Day 31 in a 30-day month runs on the 30th.
    assert due_period(entry, datetime(2026, 11, 29, 23, 0, tzinfo=UTC)).key == "2026-09"
    assert due_period(entry, datetime(2026, 11, 30, 0, 0, tzinfo=UTC)).key == "2026-10"
    assert due_period(entry, datetime(2027, 1, 31, 0, 0, tzinfo=UTC)).key == "2026-12"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"report": [{"name": "a", "report": "cfo", "folder": "x"}]}, "report must be one of"),
        ({"report": [{"name": "a", "report": "finance"}]}, "folder, email recipients, or both"),
        ({"report": [{"name": "a", "report": "finance", "email": "x@y"}]}, "add an \\[smtp\\] section"),
        ({"report": [{"name": "a", "report": "finance", "every": "week", "folder": "x"}]}, "every must be"),
        (
            {"report": [{"name": "a", "report": "finance", "timezone": "Mars/Base", "folder": "x"}]},
            "time zone",
        ),
        ({"reports": []}, "reports: Extra inputs are not permitted"),
        ({"smtp": {"host": "h", "from": "f", "port": "abc"}}, "smtp.port: Input should be a valid integer"),
        (
            {"smtp": {"host": "h", "from": "f", "starttls": "perhaps"}},
            "smtp.starttls: Input should be a valid boolean",
        ),
    ],
)
def test_schedule_file_is_validated(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(raw)


def test_cli_run_due_and_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded = open_store(f"sqlite:///{tmp_path}/cli.db")
    seeded.migrate()
    seed(seeded)
    seeded.close()
    path = tmp_path / "reports.toml"
    path.write_text('[[report]]\nname = "fin"\nreport = "finance"\nformat = "pdf"\nfolder = "out"\n')
    monkeypatch.setenv("SPENDGATE_REPORTS_FILE", str(path))
    now = "2026-11-01T08:00:00Z"
    before = json.loads(cli(tmp_path, monkeypatch, "report", "schedule", "--now", now, "--format", "json"))
    assert before["entries"][0]["due_period"] == "2026-10" and before["entries"][0]["status"] == "due"
    ran = json.loads(cli(tmp_path, monkeypatch, "report", "run-due", "--now", now, "--format", "json"))
    assert [(r["entry"], r["period"]) for r in ran] == [("fin", "2026-10")]
    assert ran[0]["files"] == [str(tmp_path / "out" / "spendgate-finance-2026-10.pdf")]
    assert json.loads(cli(tmp_path, monkeypatch, "report", "run-due", "--now", now, "--format", "json")) == []
    after = json.loads(cli(tmp_path, monkeypatch, "report", "schedule", "--now", now, "--format", "json"))
    assert after["entries"][0]["status"] == "done"


def test_the_gateway_loop_produces_due_reports_until_cancelled(store: Store, tmp_path: Path) -> None:
    import asyncio

    from spendgate.config import Settings
    from spendgate.reports.schedule import run_reports_forever

    schedule = parse_schedule(
        {"report": [{"name": "fin", "report": "finance", "format": "html", "folder": "out"}]},
        base=tmp_path,
    )

    async def go() -> None:
        task = asyncio.create_task(
            run_reports_forever(
                store, Settings(reports_interval_s=0.05), schedule=schedule, clock=lambda: NOW
            )
        )
        for _ in range(200):
            if (tmp_path / "out" / "spendgate-finance-2026-10.html").exists():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # a few more passes: nothing is produced twice
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert [(r.entry, r.period, r.status) for r in produced(store)] == [("fin", "2026-10", "done")]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["spendgate-finance-2026-10.html"]


def test_forty_teams_fit_the_page(tmp_path: Path) -> None:
    """A large org: charts draw the top lines (the tables list all) and every chart fits a page."""
    from spendgate.finance.github import MergedPR
    from tests.reports_seed import _row

    store = open_store(f"sqlite:///{tmp_path}/big.db")
    store.migrate()
    org = store.create_org("big")
    rows, prs = [], []
    for t in range(40):
        team = store.create_team(org.name, f"team-{t:02d}", f"CC-{t % 8}")
        user = store.create_user(team.name, f"dev-{t:02d}", None)
        store.map_github_login(f"gh-{t:02d}", user.id)
        store.create_budget(name=f"b-{t:02d}", scope_type="team", scope_value=team.id, amount_nanos=500 * USD)
        for month in ("2026-08", "2026-09", "2026-10"):
            rows += [_row(f"{month}-{d:02d}", team.id, 10 + t, f"use-{d % 17}") for d in range(1, 29, 3)]
            prs += [
                MergedPR(
                    "big/repo", 1000 * t + n + 100 * int(month[-1]), f"gh-{t:02d}", f"{month}-15T12:00:00Z"
                )
                for n in range(3)
            ]
    store.insert_ledger_rows(rows)
    store.upsert_pull_requests(prs, "test")
    from spendgate.reports import charts

    titles = [c.title for c in charts.finance_charts(data.finance_report(store, "2026-10", NOW))]
    assert "Budget versus actual (top 15 of 40)" in titles
    assert "Cost per merged PR by team (top 8 of 40)" in titles
    report = produce(store, "finance", month="2026-10", formats=("pdf",), now=NOW)
    store.close()
    reader, text = pdf_text(report.outputs[0].content)
    assert "team-39" in text and "team-00" in text  # the tables still list every team
    assert len([image for page in reader.pages for image in page.images]) >= 5


def test_replicas_sharing_the_database_make_each_report_once(database_url: str, tmp_path: Path) -> None:
    """Two stores on one database (two replicas) race for the same period: one makes it."""
    import threading

    first, second = open_store(database_url), open_store(database_url)
    first.migrate()
    seed(first)
    schedule = parse_schedule(
        {"report": [{"name": "fin", "report": "finance", "format": "html", "folder": "out"}]}, base=tmp_path
    )
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def replica(store: Store) -> None:
        barrier.wait()
        results.extend(run_due(store, schedule, NOW))

    threads = [threading.Thread(target=replica, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [(r.entry, r.period, r.error) for r in results] == [("fin", "2026-10", None)]
    runs = second.list_report_runs()
    assert [(r.entry, r.period, r.status) for r in runs] == [("fin", "2026-10", "done")]
    assert runs[0].files == [str(tmp_path / "out" / "spendgate-finance-2026-10.html")]
    # a claim left 'running' by a process that died is taken over once it is an hour old
    assert first.claim_report_run(
        entry="gov",
        period="2026-10",
        report="governance",
        now="2026-11-01T08:00:00.000000Z",
        by="a:1",
        stale_before="2026-11-01T07:00:00.000000Z",
    )
    assert not second.claim_report_run(
        entry="gov",
        period="2026-10",
        report="governance",
        now="2026-11-01T08:30:00.000000Z",
        by="b:2",
        stale_before="2026-11-01T07:30:00.000000Z",
    )
    assert second.claim_report_run(
        entry="gov",
        period="2026-10",
        report="governance",
        now="2026-11-01T09:30:00.000000Z",
        by="b:2",
        stale_before="2026-11-01T08:30:00.000000Z",
    )
    first.close()
    second.close()
