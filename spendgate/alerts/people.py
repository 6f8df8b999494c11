"""Reaching a person rather than a channel: team leads paged for their team's alerts, and the people
in an exemption's decision.

A person is reached through the alerts file's own transports: their Slack member id (set with
`spendgate roles slack`) mentioned in the first Slack channel, else their email through the first
email channel (its SMTP server and sender, with `to` set to them). Without such a channel in the
file a person cannot be reached, and nothing is sent to them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Protocol

from spendgate.alerts.channels import AlertMessage
from spendgate.alerts.config import AlertsConfig, Channel
from spendgate.models import User
from spendgate.roles import PeopleReader, team_leads
from spendgate.store.budgets import BudgetStore


class LeadSource(PeopleReader, BudgetStore, Protocol):
    """What finding a team's leads for an alert reads: budgets, grants and users."""


Outgoing = tuple[AlertMessage, list[Channel]]


def _first(config: AlertsConfig, kind: str) -> Channel | None:
    return next((c for c in config.channels.values() if c.type == kind), None)


def reach(config: AlertsConfig, msg: AlertMessage, people: Iterable[User]) -> list[Outgoing]:
    """One (message, [channel]) per person who can be reached; Slack mentions them by id."""
    slack, email = _first(config, "slack"), _first(config, "email")
    out: list[Outgoing] = []
    seen: set[str] = set()
    for person in people:
        if person.id in seen:
            continue
        seen.add(person.id)
        if person.slack_member_id and slack is not None:
            mention = dataclasses.replace(msg, summary=f"<@{person.slack_member_id}> {msg.summary}")
            out.append((mention, [dataclasses.replace(slack, name=f"{slack.name}:{person.slack_member_id}")]))
        elif person.email and email is not None:
            personal = Channel(
                f"{email.name}:{person.email}", "email", {**email.options, "to": [person.email]}
            )
            out.append((msg, [personal]))
    return out


def team_of(store: LeadSource, msg: AlertMessage) -> str | None:
    """The team id an alert is about: a team anomaly, or a budget scoped to a team."""
    details = msg.details
    about_team = details.get("group_by") == "team" or msg.group.startswith("team:")
    if about_team and details.get("group"):
        return str(details["group"])
    budget_name = msg.group.removeprefix("budget:") if msg.group.startswith("budget:") else None
    if budget_name:
        budget = next((b for b in store.list_budgets(include_revoked=True) if b.name == budget_name), None)
        if budget is not None and budget.scope_type == "team":
            return budget.scope_value
    return None


def with_leads(store: LeadSource, config: AlertsConfig, planned: Sequence[Outgoing]) -> list[Outgoing]:
    """The planned deliveries plus, for each alert about a team, one to each of its leads."""
    out = list(planned)
    leads: dict[str, list[User]] = {}
    for msg, _ in planned:
        team_id = team_of(store, msg)
        if team_id is None:
            continue
        if team_id not in leads:
            leads[team_id] = team_leads(store, team_id)
        out += reach(config, msg, leads[team_id])
    return out
