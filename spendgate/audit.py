"""The audit log: every change a person makes, with who, when, what and through which door
(the CLI, the admin API or the console). Read back with `spendgate audit` or the console's
/ui/audit page.

Who the actor is depends on the door: the console knows the signed-in email; the admin API knows
only that the master key was used (a caller may name the person in `x-spendgate-actor`); the CLI
uses SPENDGATE_ACTOR, else the operating-system user running it.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from spendgate.clock import utc_now_iso
from spendgate.store.people import AuditEntry, PeopleStore

if TYPE_CHECKING:
    from spendgate.store.base import Store

ACTOR_ENV = "SPENDGATE_ACTOR"
ACTOR_HEADER = "x-spendgate-actor"


@dataclass(frozen=True, slots=True)
class Actor:
    who: str
    via: str  # cli, api, console


def cli_actor() -> Actor:
    who = os.environ.get(ACTOR_ENV, "").strip()
    if not who:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            who = f"uid:{os.getuid()}"
    return Actor(who, "cli")


def api_actor(header_value: str | None) -> Actor:
    named = (header_value or "").strip()[:200]
    return Actor(f"master-key ({named})" if named else "master-key", "api")


# The admin API's actor for the request being served: set by a dependency of every admin route,
# read by the audited store in the same request's context (contextvars follow it into the threadpool).
API_ACTOR: ContextVar[Actor] = ContextVar("spendgate_api_actor", default=Actor("master-key", "api"))  # noqa: B039 (frozen)


def record(
    store: PeopleStore,
    actor: Actor,
    action: str,
    target: str,
    team_id: str | None = None,
    **details: Any,
) -> AuditEntry:
    """Append one entry. `details` must be JSON-ready and never hold a secret."""
    entry = AuditEntry(
        id=f"aud_{secrets.token_hex(8)}",
        at=utc_now_iso(),
        actor=actor.who,
        via=actor.via,
        action=action,
        target=target,
        team_id=team_id,
        details={k: v for k, v in details.items() if v is not None},
    )
    store.record_audit(entry)
    return entry


def entry_view(entry: AuditEntry, team_names: dict[str, str] | None = None) -> dict[str, Any]:
    names = team_names or {}
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "via": entry.via,
        "action": entry.action,
        "target": entry.target,
        "team": names.get(entry.team_id, entry.team_id) if entry.team_id else None,
        "details": entry.details,
    }


# --- changes made through the CLI and the admin API ---------------------------------------------
# store method -> audit action. Each is a change a person asks for; what it returns names the target.
# Roles are recorded by `spendgate.roles` itself (it knows the role and team in words).
AUDITED_METHODS: dict[str, str] = {
    "create_org": "org.create",
    "revoke_org": "org.revoke",
    "create_team": "team.create",
    "revoke_team": "team.revoke",
    "create_user": "user.create",
    "revoke_user": "user.revoke",
    "set_user_slack": "user.slack",
    "create_key": "key.create",
    "revoke_key": "key.revoke",
    "set_key_limits": "key.limits",
    "create_budget": "budget.create",
    "revoke_budget": "budget.revoke",
    "create_exemption": "exemption.request",
    "decide_exemption": "exemption.decide",
    "map_github_login": "identity.map",
    "map_repo_team": "identity.repo",
}
# Never copied into the log, whatever a method is given.
_SECRET_ARGS = frozenset({"key_hash", "secret", "token", "token_hash"})


class AuditedStore:
    """A store whose changes listed in AUDITED_METHODS are each written to the audit log, after they
    succeed, as made by `actor()`. The CLI and the admin API hand this to the shared operations, so
    every change through them is logged without each command saying so."""

    def __init__(self, inner: Any, actor: Any) -> None:
        self._inner = inner
        self._actor = actor  # () -> Actor, asked at each change (the admin API's differs per request)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        action = AUDITED_METHODS.get(name)
        if action is None:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            self._log(action, args, kwargs, result)
            return result

        return call

    def _log(self, action: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        target = getattr(result, "name", None) or getattr(result, "id", None)
        if action.startswith("user."):
            target = getattr(result, "email", None) or target
        team_id = getattr(result, "team_id", None)
        details: dict[str, Any] = {"id": getattr(result, "id", None)}
        if action == "exemption.decide":
            action = "exemption.approve" if getattr(result, "status", "") == "approved" else "exemption.deny"
        if action.startswith("exemption."):
            budget = self._inner.get_budget(result.budget_id)
            target = f"{result.id} ({budget.name})"
            team_id = budget.scope_value if budget.scope_type == "team" else None
            details.update(reason=result.reason, note=result.decision_note, requested_by=result.requested_by)
        elif action.startswith("budget."):
            team_id = result.scope_value if result.scope_type == "team" else None
            details.update(scope=result.scope_label(), amount_nanos=result.amount_nanos, mode=result.mode)
        elif isinstance(result, dict) or result is None:
            target = (
                str(args[0]) if args else str(kwargs.get("ref") or kwargs.get("login") or kwargs.get("repo"))
            )
            details.update({k: v for k, v in kwargs.items() if k not in _SECRET_ARGS})
            extra = dict(result or {})
            team_id = extra.pop("team_id", None) or team_id
            details.update({k: v for k, v in extra.items() if k not in _SECRET_ARGS})
        if action == "key.limits":
            details.update(zip(("rpm", "tpm", "concurrency"), args[1:], strict=False))
        if action == "key.create":
            details["prefix"] = getattr(result, "key_prefix", None)
        record(self._inner, self._actor(), action, str(target), team_id, **details)


def audited(inner: Store, actor: Any) -> Store:
    """`inner`, with its changes audited as made by `actor()`."""
    return cast("Store", AuditedStore(inner, actor))


def record_policy_load(store: PeopleStore, path: Path, actor: Actor) -> bool:
    """A routing policy file the gateway starts with is a change someone made: logged when its
    content differs from the last one logged (restarts with the same file add nothing)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    last = store.list_audit(action="routing.load", limit=1)
    if last and last[0].details.get("sha256") == digest:
        return False
    record(store, actor, "routing.load", str(path), None, sha256=digest)
    return True
