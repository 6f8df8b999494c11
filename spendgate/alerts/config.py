"""The alerts file (SPENDGATE_ALERTS_FILE): detection settings, channels and per-team routes.

Any string value written as ``env:NAME`` is read from the environment variable NAME, so secrets
(webhook URLs, routing keys, SMTP passwords) need not sit in the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from spendgate.config import resolve_env_refs
from spendgate.config_files import FileModel, checked
from spendgate.dimensions import ALERT_BY
from spendgate.pricing import NANOS_PER_USD

CHANNEL_TYPES = ("slack", "pagerduty", "webhook", "email")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


def usd_nanos(value: float | int | str) -> int:
    from decimal import Decimal

    return int(Decimal(str(value)) * NANOS_PER_USD)


@dataclass(frozen=True, slots=True)
class DetectParams:
    """How the detector decides; every field has the default docs/alerts.md explains."""

    by: str = "team"
    threshold: float = 3.0
    check_time: time = time(16, 0)
    timezone: str = "UTC"
    baseline_days: int = 7
    same_weekday_weeks: int = 0  # > 0: baseline = the same weekday over the last N weeks
    min_baseline_nanos: int = usd_nanos(5)  # a smaller baseline counts as this much
    min_spend_nanos: int = usd_nanos(20)  # never alert below this spend
    min_history_days: int = 3  # fewer days with spend in the baseline window: "no history"
    new_floor_nanos: int = usd_nanos(100)  # a group with no history alerts only above this
    burn_window_hours: float = 2.0
    burn_day_fraction: float = 1.0  # burn alert: the window spent this many baseline days
    forecast: bool = True
    forecast_days: int = 7  # run-rate window of the month-end forecast
    budget_events: bool = True

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    detect: DetectParams = field(default_factory=DetectParams)
    channels: dict[str, Channel] = field(default_factory=dict)
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # team name/id (or value) -> channels

    def channels_for(self, *refs: str | None) -> list[Channel]:
        """The channels routed to the first ref that has a route (a team id, then its name), else default."""
        for ref in refs:
            if ref is not None and ref in self.routes:
                return [self.channels[name] for name in self.routes[ref]]
        return [self.channels[name] for name in self.routes.get("default", ())]


class _Detect(FileModel):
    by: str = "team"
    threshold: float = 3.0
    check_time: time = time(16, 0)
    timezone: str = "UTC"
    baseline_days: int = 7
    same_weekday_weeks: int = 0
    min_baseline_usd: Decimal = Decimal(5)
    min_spend_usd: Decimal = Decimal(20)
    min_history_days: int = 3
    new_floor_usd: Decimal = Decimal(100)
    burn_window_hours: float = 2.0
    burn_day_fraction: float = 1.0
    forecast: bool = True
    forecast_days: int = 7
    budget_events: bool = True


class _Channel(FileModel):
    type: Literal["slack", "pagerduty", "webhook", "email"]
    url: str | None = None
    secret: str | None = None
    routing_key: str | None = None
    host: str | None = None
    port: int = 25
    ssl: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    sender: str | None = Field(None, alias="from")
    to: str | list[str] | None = None


class _AlertsFile(FileModel):
    detect: _Detect = _Detect()
    channels: dict[str, _Channel] = {}
    routes: dict[str, str | list[str]] = {}


def load_alerts_config(path: Path | None) -> AlertsConfig:
    if path is None:
        return AlertsConfig()
    with path.open("rb") as handle:
        return parse_alerts_config(tomllib.load(handle), str(path))


def parse_alerts_config(data: dict[str, Any], source: str = "the alerts file") -> AlertsConfig:
    data = checked(_AlertsFile, resolve_env_refs(data, source), source)
    detect = _detect(data.get("detect", {}))
    channels: dict[str, Channel] = {}
    for name, options in data.get("channels", {}).items():
        kind = options.get("type")
        if kind not in CHANNEL_TYPES:
            raise ValueError(f"channel {name!r}: type must be one of {', '.join(CHANNEL_TYPES)}")
        required = {"slack": ("url",), "pagerduty": ("routing_key",), "webhook": ("url", "secret")}
        required["email"] = ("host", "from", "to")
        missing = [key for key in required[kind] if not options.get(key)]
        if missing:
            raise ValueError(f"channel {name!r} ({kind}) needs {', '.join(missing)}")
        channels[name] = Channel(name, kind, {k: v for k, v in options.items() if k != "type"})
    routes: dict[str, tuple[str, ...]] = {}
    for ref, names in data.get("routes", {}).items():
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            if name not in channels:
                raise ValueError(f"route {ref!r} names an unknown channel {name!r}")
        routes[ref] = tuple(names)
    return AlertsConfig(detect=detect, channels=channels, routes=routes)


def _detect(raw: dict[str, Any]) -> DetectParams:
    defaults = DetectParams()
    values: dict[str, Any] = {}
    money = {"min_baseline_usd", "min_spend_usd", "new_floor_usd"}
    for key, value in raw.items():
        if key in money:
            values[key.removesuffix("_usd") + "_nanos"] = usd_nanos(value)
        elif key == "check_time":
            values[key] = time.fromisoformat(str(value))
        elif key in DetectParams.__dataclass_fields__ and not key.endswith("_nanos"):
            values[key] = type(getattr(defaults, key))(value)
        else:
            raise ValueError(f"unknown [detect] setting {key!r}")
    params = DetectParams(**values)
    if params.by not in ALERT_BY:
        raise ValueError(f"[detect] by must be one of {', '.join(ALERT_BY)}")
    if params.threshold <= 1:
        raise ValueError("[detect] threshold must be above 1")
    if params.baseline_days < 1 or params.same_weekday_weeks < 0:
        raise ValueError("[detect] baseline_days must be >= 1 and same_weekday_weeks >= 0")
    try:
        ZoneInfo(params.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"[detect] unknown time zone {params.timezone!r}") from None
    return params
