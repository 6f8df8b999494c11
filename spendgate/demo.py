"""The demo workload: a small org whose teams use Claude and GPT the way the brief describes.

Everything goes through the real gateway over HTTP with the official SDKs; only the
provider is the bundled fake.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass

import anthropic
import openai
from anthropic.types import MessageParam, TextBlockParam

from spendgate.admin.service import create_key
from spendgate.roles import PeopleReader
from spendgate.store.base import Conflict
from spendgate.store.budgets import BudgetStore
from spendgate.store.principals import PrincipalStore

ORG = "demo-corp"
TEAMS = {  # team -> (cost center, users)
    "platform": ("CC-100 Platform Engineering", ["ada", "linus"]),
    "payments": ("CC-200 Payments", ["grace"]),
    "data": ("CC-300 Data & ML", ["ken", "barbara"]),
}
# use case -> (model the tool asks for, share of calls, streamed?). Tools ask out of habit (Sonnet
# for everything, an Opus default here and there); the default routing policy maps each use case
# to the brief's task table, and the demo prints what that saved.
USE_CASES = {
    "autocomplete": ("claude-sonnet-4-6", 30, True),
    "code-explanation": ("claude-opus-4-6", 10, False),
    "code-review": ("claude-sonnet-4-6", 20, True),
    "test-generation": ("claude-opus-4-6", 10, False),
    "architecture": ("claude-opus-4-6", 5, False),
    "autonomous-agent": ("claude-opus-4-6", 10, True),
    "batch-classification": ("gpt-4.1", 15, False),
}
_SYSTEM = "You are a careful senior engineer. Follow the repository's conventions. " * 300


# The console's roles, one demo person each: `spendgate demo` prints a sign-in link per role.
ROLES = {  # role -> (user, team led)
    "user": ("linus", None),
    "lead": ("ada", "platform"),
    "approver": ("ken", None),  # plays the VP Engineering
    "finance": ("grace", None),
    "admin": ("barbara", None),
}


@dataclass(frozen=True)
class DemoKey:
    team: str
    user: str
    secret: str


def seed(store: PrincipalStore) -> list[DemoKey]:
    """Create the demo org, teams and users if missing; mint one fresh key per user."""
    _ignore_conflict(lambda: store.create_org(ORG))
    existing_teams = {t.name for t in store.list_teams()}
    existing_users = {(u.team_id, u.name) for u in store.list_users()}
    keys = []
    for team, (cost_center, users) in TEAMS.items():
        if team not in existing_teams:
            store.create_team(ORG, team, cost_center)
        team_id = next(t.id for t in store.list_teams() if t.name == team)
        for user in users:
            if (team_id, user) not in existing_users:
                store.create_user(team, user, f"{user}@demo-corp.example")
            _, secret = create_key(
                store, name=f"{user}-laptop-{random.randrange(16**6):06x}", team=team, user=user
            )
            keys.append(DemoKey(team, user, secret))
    return keys


def run_call(gateway_url: str, key: DemoKey, use_case: str, rng: random.Random, session: str) -> None:
    model, _, streamed = USE_CASES[use_case]
    headers = {"x-spendgate-tags": f"use_case={use_case},repo={rng.choice(['api', 'web', 'infra'])}"}
    if model.startswith("gpt"):
        oa = openai.OpenAI(
            base_url=f"{gateway_url}/v1", api_key=key.secret, max_retries=0, default_headers=headers
        )
        oa.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"Classify ticket #{rng.randrange(10_000)}"}]
        )
        oa.close()
        return
    headers["x-claude-code-session-id"] = session
    client = anthropic.Anthropic(
        base_url=gateway_url, api_key=key.secret, max_retries=0, default_headers=headers
    )
    # A long, cached system prompt: the first call writes the cache, later ones read it.
    system: list[TextBlockParam] = [
        {"type": "text", "text": _SYSTEM + use_case, "cache_control": {"type": "ephemeral"}}
    ]
    messages: list[MessageParam] = [
        {"role": "user", "content": f"{use_case}: change {rng.randrange(100_000)} " + "diff line\n" * 30}
    ]
    output = str(rng.choice([64, 128, 256, 512]))
    extra = {"x-fake-output-tokens": output}
    if streamed:
        with client.messages.stream(
            model=model,
            max_tokens=1024,
            system=system,
            messages=messages,
            extra_headers=extra,  # type: ignore[arg-type]
        ) as stream:
            for _ in stream.text_stream:
                pass
    else:
        client.messages.create(
            model=model,
            max_tokens=1024,
            system=system,
            messages=messages,
            extra_headers=extra,  # type: ignore[arg-type]
        )
    client.close()


def plan(keys: list[DemoKey], calls: int, seed_value: int = 7) -> list[tuple[DemoKey, str, str]]:
    """Which key makes which call: heavier agent work on platform, batch work on data."""
    rng = random.Random(seed_value)
    names = list(USE_CASES)
    weights = [USE_CASES[n][1] for n in names]
    out = []
    for i in range(calls):
        use_case = rng.choices(names, weights)[0]
        pool = [k for k in keys if (use_case != "batch-classification" or k.team == "data")] or keys
        key = rng.choice(pool)
        out.append((key, use_case, f"session-{key.user}-{i // 10}"))
    return out


def _ignore_conflict(action: Callable[[], object]) -> None:
    with contextlib.suppress(Conflict):
        action()


def curl_example(url: str, key: str) -> str:
    body = json.dumps(
        {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}
    )
    return (
        f"curl -s {url}/v1/messages -H 'x-api-key: {key}' -H 'anthropic-version: 2023-06-01' "
        f"-H 'content-type: application/json' -H 'x-spendgate-tags: use_case=exploration' -d '{body}'"
    )


def grant_roles(store: PeopleReader) -> dict[str, str]:
    """Give each demo role to its person (once); role -> that person's email."""
    from spendgate import roles
    from spendgate.audit import Actor

    demo = Actor("spendgate demo", "cli")
    out = {}
    for role, (user, team) in ROLES.items():
        email = f"{user}@demo-corp.example"
        if role != "user":
            roles.grant(store, demo, email, role, team)
        out[role] = email
    return out


def seed_exemption(store: BudgetStore) -> None:
    """A pending exemption from the platform lead, so the approver has something to decide."""
    from spendgate.admin.budget_service import create_budget, request_exemption

    if any(b.name == "team-platform" for b in store.list_budgets(include_revoked=True)):
        return
    create_budget(store, name="team-platform", scope="team", value="platform", amount_usd="500")
    request_exemption(
        store,
        budget="team-platform",
        amount_usd="250",
        hours=48,
        use_case="autonomous-agent",
        reason="launch week: agents refactor the billing service",
        requested_by="ada@demo-corp.example",
    )
