"""Reports on a calendar (SPENDGATE_REPORTS_FILE): which report, when, and where it goes.

```toml
[smtp]                       # only needed for email
host = "smtp.acme.example"
port = 587
starttls = true
username = "spendgate"
password = "env:SMTP_PASSWORD"
from = "spendgate@acme.example"

[[report]]
name = "monthly-finance"
report = "finance"           # or governance
day = 1                      # of the month (every = "month", the default)
time = "07:00"
timezone = "Europe/Berlin"
format = "both"              # html, pdf or both
folder = "/srv/reports"      # and/or
email = ["cfo@acme.example"]
```

A monthly entry produces the previous UTC month's report once its day and time have come in its
time zone; a weekly one (`every = "week"`, `weekday = "monday"`) the previous ISO week (UTC). Each
(entry, period) is claimed in the database (`report_runs`) before any work, so it is produced and
sent once even when several passes, processes or replicas sharing the database race; a failed run
drops its claim and the next pass tries again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import socket
import ssl
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from spendgate.clock import iso
from spendgate.config import Settings, resolve_env_refs
from spendgate.config_files import FileModel, checked
from spendgate.reports.data import ReportSource
from spendgate.reports.produce import FORMATS, KINDS, Produced, produce, write
from spendgate.store.reports import ReportRun, ReportStore


class ScheduleStore(ReportSource, ReportStore, Protocol):
    """The reports' figures and the runs claimed once across replicas."""

log = logging.getLogger(__name__)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
STALE_CLAIM_S = 3600  # a claim this old that never finished (a crash) is taken over


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str
    sender: str
    port: int = 25
    ssl: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    report: str  # finance or governance
    every: str = "month"  # or week
    day: int = 1  # day of the month (1-28; larger days mean the month's last day when shorter)
    weekday: int = 0  # Monday
    at: time = time(7, 0)
    timezone: str = "UTC"
    formats: tuple[str, ...] = FORMATS
    folder: Path | None = None
    email: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Schedule:
    entries: tuple[Entry, ...]
    smtp: Smtp | None = None


@dataclass(frozen=True, slots=True)
class Period:
    key: str  # '2026-10' or '2026-W44'
    month: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(slots=True)
class RunResult:
    entry: str
    period: str
    files: list[str] = field(default_factory=list)
    emailed: list[str] = field(default_factory=list)
    error: str | None = None


# --- the file ------------------------------------------------------------------------------------
class _Smtp(FileModel):
    host: str
    sender: str = Field(alias="from")
    port: int = 25
    ssl: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0


class _Entry(FileModel):
    name: str
    report: str
    every: str = "month"
    day: int = 1
    weekday: str = "monday"
    at: time = Field(time(7, 0), alias="time")
    timezone: str = "UTC"
    format: str = "both"
    folder: str | None = None
    email: str | list[str] = []


class _ReportsFile(FileModel):
    smtp: _Smtp | None = None
    report: list[_Entry] = []


def load_schedule(path: Path) -> Schedule:
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    return parse_schedule(raw, base=path.parent, source=str(path))


def parse_schedule(raw: dict[str, Any], base: Path = Path("."), source: str = "the reports file") -> Schedule:
    raw = checked(_ReportsFile, resolve_env_refs(raw, source), source)
    smtp = _smtp(raw["smtp"]) if "smtp" in raw else None
    entries = [_entry(item, base) for item in raw.get("report", [])]
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError("each [[report]] needs its own name")
    if smtp is None and any(e.email for e in entries):
        raise ValueError("a [[report]] has email recipients: add an [smtp] section")
    return Schedule(tuple(entries), smtp)


def _smtp(raw: dict[str, Any]) -> Smtp:
    known = {"host", "port", "ssl", "starttls", "username", "password", "from", "timeout_s"}
    if set(raw) - known:
        raise ValueError(f"unknown [smtp] settings: {', '.join(sorted(set(raw) - known))}")
    if not raw.get("host") or not raw.get("from"):
        raise ValueError("[smtp] needs host and from")
    return Smtp(
        host=str(raw["host"]),
        sender=str(raw["from"]),
        port=int(raw.get("port", 25)),
        ssl=bool(raw.get("ssl", False)),
        starttls=bool(raw.get("starttls", False)),
        username=raw.get("username"),
        password=raw.get("password"),
        timeout_s=float(raw.get("timeout_s", 30.0)),
    )


def _entry(raw: dict[str, Any], base: Path) -> Entry:
    known = {"name", "report", "every", "day", "weekday", "time", "timezone", "format", "folder", "email"}
    name = str(raw.get("name") or "")
    if not name:
        raise ValueError("each [[report]] needs a name")
    where = f"[[report]] {name!r}"
    if set(raw) - known:
        raise ValueError(f"{where}: unknown settings {', '.join(sorted(set(raw) - known))}")
    if raw.get("report") not in KINDS:
        raise ValueError(f"{where}: report must be one of {', '.join(KINDS)}")
    every = str(raw.get("every", "month"))
    if every not in ("month", "week") or (every == "week" and raw["report"] == "finance"):
        raise ValueError(f"{where}: every must be 'month' (finance) or 'month'/'week' (governance)")
    day = int(raw.get("day", 1))
    if not 1 <= day <= 31:
        raise ValueError(f"{where}: day must be 1..31")
    weekday = str(raw.get("weekday", "monday")).lower()
    if weekday not in WEEKDAYS:
        raise ValueError(f"{where}: weekday must be one of {', '.join(WEEKDAYS)}")
    zone = str(raw.get("timezone", "UTC"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{where}: unknown time zone {zone!r}") from None
    fmt = str(raw.get("format", "both"))
    if fmt not in (*FORMATS, "both"):
        raise ValueError(f"{where}: format must be html, pdf or both")
    email = raw.get("email", [])
    email = (email,) if isinstance(email, str) else tuple(str(e) for e in email)
    folder = Path(raw["folder"]) if raw.get("folder") else None
    if folder is None and not email:
        raise ValueError(f"{where}: give a folder, email recipients, or both")
    return Entry(
        name=name,
        report=raw["report"],
        every=every,
        day=day,
        weekday=WEEKDAYS.index(weekday),
        at=time.fromisoformat(str(raw.get("time", "07:00"))),
        timezone=zone,
        formats=FORMATS if fmt == "both" else (fmt,),
        folder=None if folder is None else (folder if folder.is_absolute() else base / folder),
        email=email,
    )


# --- when ----------------------------------------------------------------------------------------
def due_period(entry: Entry, now: datetime) -> Period:
    """The period the entry's latest scheduled run (at or before `now`) reports on."""
    zone = ZoneInfo(entry.timezone)
    local = now.astimezone(zone)
    if entry.every == "week":
        run_day = local.date() - timedelta(days=(local.weekday() - entry.weekday) % 7)
        if datetime.combine(run_day, entry.at, zone) > local:
            run_day -= timedelta(days=7)
        monday = run_day - timedelta(days=run_day.weekday() + 7)
        since = datetime.combine(monday, time(0), UTC)
        year, week, _ = monday.isocalendar()
        return Period(f"{year:04d}-W{week:02d}", since=since, until=since + timedelta(days=7))
    run = _monthly_run(local.year, local.month, entry, zone)
    if run > local:
        first = local.date().replace(day=1) - timedelta(days=1)
        run = _monthly_run(first.year, first.month, entry, zone)
    previous = run.date().replace(day=1) - timedelta(days=1)
    return Period(f"{previous:%Y-%m}", month=f"{previous:%Y-%m}")


def _monthly_run(year: int, month: int, entry: Entry, zone: ZoneInfo) -> datetime:
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return datetime.combine(date(year, month, min(entry.day, last)), entry.at, zone)


# --- once per period -----------------------------------------------------------------------------
def produced(store: ReportStore) -> list[ReportRun]:
    """What the schedule has produced (or is producing): one record per (entry, period)."""
    return store.list_report_runs()


def run_due(
    store: ScheduleStore,
    schedule: Schedule,
    now: datetime | None = None,
    send: Callable[[Smtp, EmailMessage], None] | None = None,
) -> list[RunResult]:
    """Produce every report that is due and not yet produced for its period (blocking)."""
    now = now or datetime.now(UTC)
    results = []
    for entry in schedule.entries:
        period = due_period(entry, now)
        claimed = store.claim_report_run(
            entry=entry.name,
            period=period.key,
            report=entry.report,
            now=iso(now),
            by=f"{socket.gethostname()}:{os.getpid()}",
            stale_before=iso(now - timedelta(seconds=STALE_CLAIM_S)),
        )
        if not claimed:
            continue
        result = RunResult(entry.name, period.key)
        try:
            report = produce(
                store,
                entry.report,
                month=period.month,
                since=period.since,
                until=period.until,
                formats=entry.formats,
                now=now,
            )
            if entry.folder is not None:
                result.files = [str(p) for p in write(report.outputs, entry.folder)]
            if entry.email:
                assert schedule.smtp is not None
                (send or send_mail)(schedule.smtp, email_message(report, schedule.smtp.sender, entry.email))
                result.emailed = list(entry.email)
        except Exception as exc:
            store.release_report_run(entry=entry.name, period=period.key)  # the next pass tries again
            result.error = f"{type(exc).__name__}: {exc}"
            log.exception("report %s for %s failed", entry.name, period.key)
        else:
            store.finish_report_run(
                entry=entry.name,
                period=period.key,
                finished_at=iso(datetime.now(UTC)),
                files=result.files,
                emailed=result.emailed,
            )
        results.append(result)
    return results


# --- email ---------------------------------------------------------------------------------------
def email_message(report: Produced, sender: str, to: tuple[str, ...]) -> EmailMessage:
    doc = report.document
    mail = EmailMessage()
    mail["Subject"] = doc.title
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    lines = [doc.title, doc.period, ""]
    lines += [f"{f.label}: {f.value}" + (f" ({f.note})" if f.note else "") for f in doc.figures]
    lines += ["", "The full report with its charts is attached.", f"Generated by Spendgate, {doc.generated}."]
    mail.set_content("\n".join(lines) + "\n")
    for output in report.outputs:
        main, _, sub = output.mime.partition("/")
        mail.add_attachment(output.content, maintype=main, subtype=sub, filename=output.filename)
    return mail


def send_mail(smtp: Smtp, mail: EmailMessage) -> None:
    client: smtplib.SMTP
    if smtp.ssl:
        context = ssl.create_default_context()
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
    with client:
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
        if smtp.username:
            client.login(smtp.username, smtp.password or "")
        client.send_message(mail)


# --- in the gateway ------------------------------------------------------------------------------
async def run_reports_forever(
    store: ScheduleStore,
    settings: Settings,
    *,
    schedule: Schedule | None = None,
    clock: Callable[[], datetime] | None = None,
) -> None:
    """Check the schedule every SPENDGATE_REPORTS_INTERVAL_S until cancelled; returns at once when
    SPENDGATE_REPORTS_FILE is unset and no `schedule` is given. Work runs in a thread."""
    if schedule is None:
        if settings.reports_file is None:
            return
        schedule = load_schedule(settings.reports_file)
    now = clock or (lambda: datetime.now(UTC))
    while True:
        try:
            for result in await asyncio.to_thread(run_due, store, schedule, now()):
                if result.error is None:
                    log.info("report %s for %s produced", result.entry, result.period)
        except Exception:
            log.exception("report pass failed")
        await asyncio.sleep(settings.reports_interval_s)
