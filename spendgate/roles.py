"""Console roles: who may see and do what. One implementation for `spendgate roles`, the admin API
and the console, every grant and revocation in the audit log.

- admin: everything;
- finance: all money (every team, chargeback, reports); no key or budget changes;
- approver: approves or denies exemptions (never their own request); reads every team;
- lead of a team (one grant per team): that team's spend, budgets and alerts; requests
  exemptions; is paged for the team's alerts;
- every signed-in user: their own usage and keys.

Roles come from grants in the database and, for a session, from the identity provider's groups
(SPENDGATE_UI_GROUP_ROLES maps a group to a role, e.g. `platform-leads=lead:platform`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from spendgate.audit import Actor, record
from spendgate.clock import utc_now_iso
from spendgate.models import Team, User
from spendgate.store.base import NotFound
from spendgate.store.people import ROLES, PeopleStore, RoleGrant
from spendgate.store.principals import PrincipalStore


class PeopleReader(PeopleStore, PrincipalStore, Protocol):
    """What resolving a person's roles reads: grants, users and teams."""


ORG_WIDE = frozenset({"admin", "finance", "approver"})  # roles that read every team


@dataclass(frozen=True, slots=True)
class Roles:
    roles: frozenset[str]  # admin, finance, approver (and 'lead' when leading any team)
    lead_of: frozenset[str]  # team ids

    def has(self, *names: str) -> bool:
        return any(name in self.roles for name in names)

    @property
    def sees_org(self) -> bool:
        return bool(self.roles & ORG_WIDE)

    def sees_team(self, team_id: str | None) -> bool:
        return self.sees_org or (team_id is not None and team_id in self.lead_of)

    @property
    def decides_exemptions(self) -> bool:
        return self.has("admin", "approver")

    def requests_exemptions_for(self, team_id: str | None) -> bool:
        return self.has("admin") or (team_id is not None and team_id in self.lead_of)

    @property
    def sees_audit(self) -> bool:
        return self.sees_org


def find_team(store: PrincipalStore, ref: str) -> Team:
    matches = [t for t in store.list_teams() if ref in (t.id, t.name)]
    if not matches:
        raise NotFound(f"no team named {ref!r}")
    if len(matches) > 1:
        raise ValueError(f"{len(matches)} teams are named {ref!r}; use the id")
    return matches[0]


def _check(role: str, team: str | None) -> None:
    if role not in ROLES:
        raise ValueError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "lead" and not team:
        raise ValueError("a lead leads a team: give --team")
    if role != "lead" and team:
        raise ValueError(f"--team applies to the lead role only, not {role}")


def grant(store: PeopleReader, actor: Actor, user: str, role: str, team: str | None = None) -> dict[str, Any]:
    _check(role, team)
    person = store.get_user(user)
    team_row = find_team(store, team) if team else None
    team_id = team_row.id if team_row else None
    granted = store.grant_role(person.id, role, team_id, actor.who, utc_now_iso())
    if granted:
        record(store, actor, "role.grant", person.email or person.name, team_id, role=role, user_id=person.id)
    return {**grant_view(person, role, team_row), "changed": granted}


def revoke(
    store: PeopleReader, actor: Actor, user: str, role: str, team: str | None = None
) -> dict[str, Any]:
    _check(role, team)
    person = store.get_user(user)
    team_row = find_team(store, team) if team else None
    team_id = team_row.id if team_row else None
    revoked = store.revoke_role(person.id, role, team_id)
    if not revoked:
        raise NotFound(f"{person.name} does not hold {role}" + (f" of {team_row.name}" if team_row else ""))
    record(store, actor, "role.revoke", person.email or person.name, team_id, role=role, user_id=person.id)
    return {**grant_view(person, role, team_row), "changed": True}


def grant_view(user: User, role: str, team: Team | None) -> dict[str, Any]:
    return {
        "user": user.name,
        "user_id": user.id,
        "email": user.email,
        "role": role,
        "team": team.name if team else None,
        "team_id": team.id if team else None,
    }


def list_grants(
    store: PeopleReader, user: str | None = None, team: str | None = None
) -> list[dict[str, Any]]:
    user_id = store.get_user(user).id if user else None
    team_id = find_team(store, team).id if team else None
    users = {u.id: u for u in store.list_users(include_revoked=True)}
    teams = {t.id: t for t in store.list_teams(include_revoked=True)}
    out = []
    for g in store.list_role_grants(user_id=user_id, team_id=team_id):
        person = users.get(g.user_id)
        if person is None:
            continue
        out.append(
            {
                **grant_view(person, g.role, teams.get(g.team_id) if g.team_id else None),
                "granted_by": g.granted_by,
                "granted_at": g.granted_at,
            }
        )
    return out


def parse_group_roles(text: str) -> dict[str, tuple[str, ...]]:
    """'finops=finance,leads-platform=lead:platform' -> {group: (role, ...)}; a bad pair is an error at
    start-up, not a silent miss at sign-in."""
    out: dict[str, list[str]] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        group, sep, role = part.rpartition("=")
        name, _, team = role.partition(":")
        if not sep or not group.strip() or name not in ROLES or (name == "lead") != bool(team):
            raise ValueError(
                f"SPENDGATE_UI_GROUP_ROLES: {part!r} is not group=role (roles: admin, finance, approver, "
                "lead:TEAM)"
            )
        out.setdefault(group.strip(), []).append(role)
    return {g: tuple(r) for g, r in out.items()}


def roles_from_groups(mapping: dict[str, tuple[str, ...]], groups: Iterable[str]) -> tuple[str, ...]:
    found: list[str] = []
    for group in groups:
        found.extend(r for r in mapping.get(group.strip(), ()) if r not in found)
    return tuple(found)


def effective_roles(store: PeopleReader, user_id: str, extra: Sequence[str] = ()) -> Roles:
    """A user's grants plus `extra` roles from groups ('lead:TEAM' names a team by name or id)."""
    grants: list[RoleGrant] = store.list_role_grants(user_id=user_id)
    roles = {g.role for g in grants if g.role != "lead"}
    lead_of = {g.team_id for g in grants if g.role == "lead" and g.team_id}
    teams: list[Team] | None = None
    for role in extra:
        name, _, team = role.partition(":")
        if name != "lead":
            roles.add(name)
            continue
        teams = teams if teams is not None else store.list_teams()
        lead_of.update(t.id for t in teams if team in (t.id, t.name))
    if lead_of:
        roles.add("lead")
    return Roles(frozenset(roles), frozenset(lead_of))


def team_leads(store: PeopleReader, team_id: str) -> list[User]:
    """The users who lead a team (by grant), live ones only."""
    ids = {g.user_id for g in store.list_role_grants(team_id=team_id, role="lead")}
    return [u for u in store.list_users() if u.id in ids]
