"""`spendgate route explain|policy` and `spendgate savings`, in-process against a fresh SQLite file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from spendgate.admin.service import create_key
from spendgate.attribution import Attribution
from spendgate.cli import build_app
from spendgate.models import LedgerRow, Principal
from spendgate.providers.anthropic import AnthropicProvider
from spendgate.routing.explain import complexity_parts, first_match, route_request_for
from spendgate.routing.policy import load_policy
from spendgate.routing.router import Router, complexity
from spendgate.store import open_store

CUSTOM_POLICY = """
[tiers.anthropic]
fast = "claude-haiku-4-5"
standard = "claude-sonnet-4-6"

[[rules]]
name = "no-opus-for-chat"
match = { use_case = "chat", model = "claude-opus-*" }
refuse = "chat does not need Opus; ask for Sonnet"

[[rules]]
name = "long-prompts-to-standard"
match.min_input_tokens = 1000
tier = "standard"
why = "long prompts"
sticky = false

[allow.teams.platform]
models = ["claude-haiku-*", "claude-sonnet-*"]
on_violation = "tier:fast"

[allow.keys.locked]
models = "claude-haiku-*"
on_violation = "reject"

[fallbacks]
retries = 1
backoff_ms = 100
on_status = [529]
deployments.anthropic = ["https://eu.example.com"]
"""


class Cli:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.tmp = tmp_path
        self.url = f"sqlite:///{tmp_path}/routing.db"
        self.app = build_app()
        self.runner = CliRunner(env={"SPENDGATE_DATABASE_URL": self.url, **env})
        self.secrets: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    def run(self, *args: str, body: str | None = None) -> Result:
        return self.runner.invoke(self.app, list(args), input=body)

    def ok(self, *args: str, body: str | None = None) -> str:
        result = self.run(*args, body=body)
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    def json(self, *args: str, body: str | None = None) -> Any:
        return json.loads(self.ok(*args, "--format", "json", body=body))

    def explain(self, key: str, body: dict[str, Any], *args: str) -> Any:
        return self.json("route", "explain", "--key", key, *args, body=json.dumps(body))

    def fails(self, *args: str, body: str | None = None) -> str:
        result = self.run(*args, body=body)
        assert result.exit_code == 1, (args, result.output)
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]

    def seed(self, rows: Sequence[LedgerRow] = ()) -> None:
        store = open_store(self.url)
        try:
            store.migrate()
            store.create_org("acme")
            for team in ("platform", "research"):
                self.ids[team] = store.create_team("acme", team, "CC-1").id
            for name, team in (
                ("ada-laptop", "platform"),
                ("locked", "research"),
                ("rex", "research"),
                ("gone", "research"),
            ):
                key, self.secrets[name] = create_key(store, name=name, team=team)
                self.ids[name] = key.id
            store.revoke_key("gone")
            for row in rows:
                row.team_id = self.ids.get(row.team_id or "", row.team_id)
            assert store.insert_ledger_rows(rows) == len(rows)
        finally:
            store.close()

    def policy_file(self, text: str) -> str:
        path = self.tmp / "policy.toml"
        path.write_text(text)
        return str(path)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    made = Cli(tmp_path)
    made.seed()
    return made


def anthropic_body(
    model: str = "claude-opus-4-6", text: str = "Look at this code.", **extra: Any
) -> dict[str, Any]:
    return {"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": text}], **extra}


def tags(use_case: str) -> tuple[str, str]:
    return "--header", f"x-spendgate-tags: use_case={use_case}"


# --- explain: the default task table ---


@pytest.mark.parametrize(
    ("use_case", "requested", "routed", "rule"),
    [
        ("autocomplete", "claude-opus-4-6", "claude-haiku-4-5", "inline-and-batch-to-fast"),
        ("code-explanation", "claude-sonnet-4-6", "claude-haiku-4-5", "inline-and-batch-to-fast"),
        ("code-review", "claude-opus-4-6", "claude-sonnet-4-6", "review-tests-refactor-to-standard"),
        ("test-generation", "claude-haiku-4-5", "claude-sonnet-4-6", "review-tests-refactor-to-standard"),
        ("refactor", "claude-opus-4-6", "claude-sonnet-4-6", "review-tests-refactor-to-standard"),
        ("architecture", "claude-sonnet-4-6", "claude-opus-4-6", "architecture-and-agents-to-deep"),
        ("autonomous-agent", "claude-haiku-4-5", "claude-opus-4-6", "architecture-and-agents-to-deep"),
        ("batch-summarization", "claude-opus-4-6", "claude-haiku-4-5", "inline-and-batch-to-fast"),
    ],
)
def test_explain_default_task_table(cli: Cli, use_case: str, requested: str, routed: str, rule: str) -> None:
    result = cli.explain("ada-laptop", anthropic_body(requested), *tags(use_case))
    assert result["requested_model"] == requested and result["routed_model"] == routed
    assert result["outcome"] == "routed" and result["status"] is None
    assert result["rule"] == result["matched_rule"] == rule
    assert result["use_case"] == use_case and result["key"]["team"] == "platform"
    order = [
        "inline-and-batch-to-fast",
        "review-tests-refactor-to-standard",
        "architecture-and-agents-to-deep",
    ]
    evaluated = order[: order.index(rule) + 1]
    assert [line.split(":")[0] for line in result["trace"]] == evaluated
    assert result["trace"][-1] == f"{rule}: MATCH"
    assert all(f"no (use_case {use_case!r})" in line for line in result["trace"][:-1])
    assert result["policy"] == "default policy" and result["allowlists"] == []


def test_explain_prices_fallbacks_and_text(cli: Cli) -> None:
    body = anthropic_body("claude-opus-4-6")
    result = cli.explain(cli.secrets["ada-laptop"], body, *tags("code-review"))  # by secret this time
    assert result["key"]["id"] == cli.ids["ada-laptop"]
    assert result["prices"]["requested"]["input_usd_per_mtok"] == "5"
    assert result["prices"]["requested"]["output_usd_per_mtok"] == "25"
    assert result["prices"]["routed"]["input_usd_per_mtok"] == "3"
    assert result["prices"]["routed"]["output_usd_per_mtok"] == "15"
    assert result["fallbacks"] == {
        "models": ["claude-sonnet-4-6", "claude-haiku-4-5"],
        "deployments": [],
        "retries": 2,
        "backoff_ms": 250,
        "on_status": [429, 500, 502, 503, 504, 529],
    }
    assert result["sticky"] is False

    text = cli.ok(
        "route", "explain", "--key", cli.ids["ada-laptop"], *tags("code-review"), body=json.dumps(body)
    )
    lines = text.splitlines()
    assert "requested    claude-opus-4-6  $5 in / $25 out per MTok" in lines
    assert "routed       claude-sonnet-4-6  $3 in / $15 out per MTok" in lines
    assert "  inline-and-batch-to-fast: no (use_case 'code-review')" in lines
    assert "  review-tests-refactor-to-standard: MATCH" in lines
    assert any(
        line.startswith("outcome      routed: rule review-tests-refactor-to-standard: ") for line in lines
    )
    assert any(
        line.startswith("fallbacks    claude-sonnet-4-6 -> claude-haiku-4-5; retries 2") for line in lines
    )


def test_explain_unmatched_keeps_the_requested_model(cli: Cli) -> None:
    result = cli.explain("ada-laptop", anthropic_body("claude-sonnet-4-6"))
    assert result["use_case"] == "untagged" and result["outcome"] == "unchanged"
    assert result["routed_model"] == "claude-sonnet-4-6" and result["rule"] is None
    assert result["reason"] == "no rule matched: the requested model"
    trace = result["trace"]
    assert len(trace) == 7 and all("no (use_case 'untagged')" in line for line in trace[:3])
    assert all(line.endswith(": disabled") for line in trace[3:])  # the rules on inferred use cases


def test_explain_complexity_and_session(cli: Cli) -> None:
    messages = [{"role": "user", "content": "x"}] * 7 + [{"role": "user", "content": "y" * 42_000}]
    body = anthropic_body(
        "claude-sonnet-4-6",
        tools=[{"name": "run", "input_schema": {"type": "object"}}],
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    body["messages"] = messages
    size = len(json.dumps(body).encode())
    assert 40_000 <= size < 50_000  # so the input term is exactly 4 points
    result = cli.explain(
        "ada-laptop", body, *tags("autocomplete"), "--header", "X-Claude-Code-Session-Id: sess-9"
    )
    score = result["complexity"]
    assert score["input_tokens"] == size // 4 and score["messages"] == 8
    assert score["tools"] is True and score["thinking"] is True
    assert score["points"] == {"input_tokens": 4, "tools": 20, "thinking": 25, "messages": 2}
    assert score["score"] == 51
    assert result["session_id"] == "sess-9" and result["sticky"] is True


def test_explain_openai_tiers(cli: Cli) -> None:
    def body(use_case: str) -> dict[str, Any]:
        return {
            "model": "gpt-4.1",
            "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"use_case": use_case},
        }

    for use_case, routed in (
        ("autocomplete", "gpt-4o-mini"),
        ("refactor", "gpt-4.1"),
        ("architecture", "o3"),
    ):
        result = cli.explain("ada-laptop", body(use_case), "--provider", "openai")
        assert result["provider"] == "openai" and result["use_case"] == use_case
        assert result["routed_model"] == routed
        assert result["outcome"] == ("unchanged" if routed == "gpt-4.1" else "routed")
    mini = cli.explain("ada-laptop", body("batch"), "--provider", "openai")
    assert mini["prices"]["routed"]["input_usd_per_mtok"] == "0.15"
    assert mini["prices"]["requested"]["output_usd_per_mtok"] == "8"


def test_explain_unpriced_model_is_a_refusal(cli: Cli) -> None:
    result = cli.explain("ada-laptop", anthropic_body("claude-nonexistent-9"))
    assert result["outcome"] == "refused" and result["status"] == 404
    assert result["routed_model"] is None and result["prices"] == {"requested": None, "routed": None}


# --- explain: a custom policy ---


def test_explain_custom_refuse_rule(cli: Cli) -> None:
    path = cli.policy_file(CUSTOM_POLICY)
    result = cli.explain("ada-laptop", anthropic_body(), *tags("chat"), "--policy", path)
    assert result["outcome"] == "refused" and result["status"] == 403
    assert result["routed_model"] is None and result["matched_rule"] == "no-opus-for-chat"
    assert result["reason"] == (
        "Spendgate routing rule 'no-opus-for-chat' refuses model 'claude-opus-4-6': "
        "chat does not need Opus; ask for Sonnet"
    )
    assert result["trace"] == ["no-opus-for-chat: MATCH"]
    assert [a["outcome"] for a in result["allowlists"]] == ["not evaluated"]
    assert result["fallbacks"] is None  # nothing is forwarded

    text = cli.ok(
        "route",
        "explain",
        "--key",
        "ada-laptop",
        *tags("chat"),
        "--policy",
        path,
        body=json.dumps(anthropic_body()),
    )
    assert "outcome      REFUSED (403): Spendgate routing rule 'no-opus-for-chat' refuses" in text
    # Sonnet for chat is fine: the rule's model glob does not match it.
    allowed = cli.explain("ada-laptop", anthropic_body("claude-sonnet-4-6"), *tags("chat"), "--policy", path)
    assert allowed["outcome"] == "unchanged"
    assert allowed["trace"][0] == "no-opus-for-chat: no (model 'claude-sonnet-4-6')"


def test_explain_custom_allowlists(cli: Cli) -> None:
    path = cli.policy_file(CUSTOM_POLICY)
    rewritten = cli.explain("ada-laptop", anthropic_body(), "--policy", path)
    assert rewritten["routed_model"] == "claude-haiku-4-5" and rewritten["outcome"] == "routed"
    assert rewritten["rule"] == "allowlist:team:platform" and rewritten["matched_rule"] is None
    assert rewritten["allowlists"] == [
        {
            "scope": "team",
            "name": "platform",
            "models": ["claude-haiku-*", "claude-sonnet-*"],
            "on_violation": "tier:fast",
            "outcome": "rewritten to claude-haiku-4-5: claude-opus-4-6 is not allowed for team platform",
        }
    ]
    assert rewritten["fallbacks"]["deployments"] == ["https://eu.example.com"]
    assert rewritten["fallbacks"]["on_status"] == [529]

    rejected = cli.explain("locked", anthropic_body("claude-sonnet-4-6"), "--policy", path)
    assert rejected["outcome"] == "refused" and rejected["status"] == 403
    assert rejected["reason"] == (
        "Model 'claude-sonnet-4-6' is not allowed for key 'locked' by Spendgate's routing policy."
    )
    assert [(a["scope"], a["outcome"]) for a in rejected["allowlists"]] == [("key", "rejected")]
    assert (
        cli.explain("locked", anthropic_body("claude-haiku-4-5"), "--policy", path)["outcome"] == "unchanged"
    )


def test_explain_team_rewrite_then_key_reject(cli: Cli) -> None:
    path = cli.policy_file(
        '[tiers.anthropic]\nstandard = "claude-sonnet-4-6"\n'
        '[allow.teams.research]\nmodels = ["claude-haiku-*", "claude-sonnet-*"]\n'
        'on_violation = "tier:standard"\n'
        '[allow.keys.locked]\nmodels = "claude-haiku-*"\n'
    )
    result = cli.explain("locked", anthropic_body(), "--policy", path)
    assert (
        result["outcome"] == "refused"
        and "'claude-sonnet-4-6' is not allowed for key 'locked'" in result["reason"]
    )
    assert [(a["scope"], a["outcome"]) for a in result["allowlists"]] == [
        ("team", "rewritten to claude-sonnet-4-6: claude-opus-4-6 is not allowed for team research"),
        ("key", "rejected"),
    ]
    assert result["allowlists"][1]["on_violation"] == "reject"  # the default


def test_explain_custom_min_input_tokens(cli: Cli, tmp_path: Path) -> None:
    path = cli.policy_file(CUSTOM_POLICY)
    long_body = anthropic_body("claude-haiku-4-5", text="z" * 4_000)
    result = cli.explain("locked", long_body, "--policy", path)
    # The rule sends it to Sonnet, which the key's allowlist then rejects.
    assert result["matched_rule"] == "long-prompts-to-standard" and result["outcome"] == "refused"
    assert "'claude-sonnet-4-6' is not allowed for key 'locked'" in result["reason"]
    result = cli.explain("ada-laptop", long_body, "--policy", path)
    assert result["routed_model"] == "claude-sonnet-4-6" and result["rule"] == "long-prompts-to-standard"
    assert result["reason"] == "rule long-prompts-to-standard: long prompts"
    short = cli.explain("ada-laptop", anthropic_body("claude-haiku-4-5"), "--policy", path)
    tokens = short["complexity"]["input_tokens"]
    assert short["trace"][1] == f"long-prompts-to-standard: no (input ~{tokens} < 1000 tokens)"
    # The setting is honoured when --policy is not given.
    env = Cli(tmp_path, SPENDGATE_ROUTING_POLICY_FILE=path)
    assert env.explain("ada-laptop", long_body)["policy"] == path


def test_explain_tier_missing_for_provider(cli: Cli) -> None:
    path = cli.policy_file(CUSTOM_POLICY)
    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "q" * 5_000}]}
    result = cli.explain("rex", body, "--provider", "openai", "--policy", path)
    assert result["routed_model"] == "gpt-4.1" and result["rule"] is None
    assert result["reason"] == "rule long-prompts-to-standard: tier 'standard' has no openai model"


# --- explain and policy: errors ---


def test_bad_policy_file_exits_1(cli: Cli) -> None:
    path = cli.policy_file('[[rules]]\nname = "x"\ntier = "fast"\n')
    expected = f"error: {path}: rule 1 (x): tier 'fast' is not defined under [tiers.*]"
    assert cli.fails("route", "policy", "--policy", path) == expected
    assert cli.fails("route", "explain", "--key", "ada-laptop", "--policy", path, body="{}") == expected
    cli.policy_file("rules = 5\n")
    not_a_list = f"error: {path}: rules: Input should be a valid list"
    assert cli.fails("route", "policy", "--policy", path) == not_a_list
    cli.policy_file('[[rules]]\nname = "x"\nmodel = "m"\nsticky = "no"\nmatch.min_input_tokens = true\n')
    assert cli.fails("route", "policy", "--policy", path) == (
        f"error: {path}: rules.0.match.min_input_tokens: Input should be a valid integer; "
        "rules.0.sticky: Input should be a valid boolean"
    )
    cli.policy_file('[[rules]]\nname = "x"\nmodel = "m"\nmatch.min_input_tokens = "9"\n')
    assert cli.fails("route", "policy", "--policy", path) == (
        f"error: {path}: rules.0.match.min_input_tokens: Input should be a valid integer"
    )
    missing = cli.fails("route", "policy", "--policy", str(cli.tmp / "nope.toml"))
    assert missing.endswith("nope.toml: cannot read the policy file: No such file or directory")


def test_explain_input_errors(cli: Cli) -> None:
    body = json.dumps(anthropic_body())
    assert cli.fails("route", "explain", "--key", "nobody", body=body) == "error: no key named 'nobody'"
    fake_secret = "sk-sg-not-a-real-secret-000000"
    assert (
        cli.fails("route", "explain", "--key", fake_secret, body=body)
        == "error: no usable key has that secret"
    )
    assert "revoked" in cli.fails("route", "explain", "--key", "gone", body=body)
    assert cli.fails("route", "explain", "--key", "locked", body='{"model": "x"}') == (
        "error: the gateway would answer 400: max_tokens: Field required (a positive integer)"
    )
    assert "--header must look like" in cli.fails(
        "route", "explain", "--key", "locked", "--header", "nocolon", body=body
    )
    assert "tags" in cli.fails(
        "route", "explain", "--key", "locked", "--header", "x-spendgate-tags: junk", body=body
    )


def test_explain_reads_a_file(cli: Cli) -> None:
    path = cli.tmp / "body.json"
    path.write_text(json.dumps(anthropic_body()))
    result = cli.json("route", "explain", "--key", "ada-laptop", *tags("docstrings"), str(path))
    assert result["routed_model"] == "claude-haiku-4-5"
    assert cli.fails("route", "explain", "--key", "ada-laptop", str(cli.tmp / "none.json")).startswith(
        "error: cannot read"
    )


def test_route_policy_shows_the_policy(cli: Cli) -> None:
    view = cli.json("route", "policy")
    assert view["source"] == "default policy"
    assert view["tiers"]["anthropic"] == {
        "fast": "claude-haiku-4-5",
        "standard": "claude-sonnet-4-6",
        "deep": "claude-opus-4-6",
    }
    assert [(r["name"], r["enabled"]) for r in view["rules"]] == [
        ("inline-and-batch-to-fast", True),
        ("review-tests-refactor-to-standard", True),
        ("architecture-and-agents-to-deep", True),
        # what an admin turns on first, shipped off (routing on inferred use cases: docs/routing.md)
        ("inferred-autocomplete-to-fast", False),
        ("inferred-ci-batch-to-fast", False),
        ("inferred-claude-code-background-to-fast", False),
        ("inferred-subagents-off-opus", False),
    ]
    assert all(r["use_inferred"] for r in view["rules"][3:])
    assert view["rules"][2]["models"] == {"anthropic": "claude-opus-4-6", "openai": "o3"}
    assert view["fallbacks"]["models"] == {
        "claude-opus-4-6": ["claude-sonnet-4-6"],
        "claude-sonnet-4-6": ["claude-haiku-4-5"],
    }
    custom = cli.json("route", "policy", "--policy", cli.policy_file(CUSTOM_POLICY))
    assert custom["rules"][0]["action"] == "refuse: chat does not need Opus; ask for Sonnet"
    assert custom["rules"][0]["match"] == {"use_case": "chat", "model": "claude-opus-*"}
    assert custom["rules"][1]["sticky"] is False
    assert custom["allow"]["keys"] == {"locked": {"models": ["claude-haiku-*"], "on_violation": "reject"}}
    text = cli.ok("route", "policy", "--policy", cli.policy_file(CUSTOM_POLICY))
    assert "  team platform: claude-haiku-*, claude-sonnet-* (else tier:fast)" in text.splitlines()
    assert "     match min_input_tokens=1000; not sticky" in text.splitlines()


# --- the shared helpers behind explain ---


def test_trace_and_complexity_parts_match_the_router() -> None:
    policy = load_policy(None)
    principal = Principal("k1", "kname", "o1", "t1", None, "CC", None, {}, None, team_name="team")
    who = Attribution("code-review", {}, None, None, None, None, None)
    provider = AnthropicProvider(None)
    raw = json.dumps(anthropic_body()).encode()
    req = route_request_for(provider, provider.parse(raw, "/v1/messages"), raw, principal, who)
    assert (req.team, req.key, req.input_tokens, req.messages) == ("team", "kname", len(raw) // 4, 1)
    rule, trace = first_match(policy, req)
    route = Router(policy).route(req, explain=True)
    assert rule is not None and rule.name == route.rule and trace == route.trace
    for tokens in (0, 2_499, 2_500, 99_999, 100_000, 1_000_000):
        for messages in (0, 3, 4, 59, 60, 500):
            for flags in ((False, False), (True, False), (True, True)):
                probe = type(req)(
                    **{
                        **_fields(req),
                        "input_tokens": tokens,
                        "messages": messages,
                        "tools": flags[0],
                        "thinking": flags[1],
                    }
                )
                assert min(100, sum(complexity_parts(probe).values())) == complexity(probe)


def _fields(req: Any) -> dict[str, Any]:
    return {name: getattr(req, name) for name in req.__dataclass_fields__}


# --- savings ---


def row(
    n: int,
    team: str,
    use_case: str,
    requested: str,
    upstream: str,
    cost: int,
    rule: str | None = None,
    counterfactual: int | None = None,
    **extra: Any,
) -> LedgerRow:
    values: dict[str, Any] = {
        "request_id": f"req-{n}",
        "provider": "anthropic",
        "endpoint": "/v1/messages",
        "started_at": f"2026-03-{n + 1:02d}T10:00:00.000000Z",
        "ended_at": f"2026-03-{n + 1:02d}T10:00:01.000000Z",
        "status_code": 200,
        "status": "ok",
        "use_case": use_case,
        "team_id": team,
        "requested_model": requested,
        "upstream_model": upstream,
        "cost_nanos": cost,
        "route_rule": rule,
        "counterfactual_cost_nanos": counterfactual,
    }
    values.update(extra)
    return LedgerRow(**values)


OPUS, SONNET, HAIKU = "claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"
FAST, STANDARD, DEEP = (
    "inline-and-batch-to-fast",
    "review-tests-refactor-to-standard",
    "architecture-and-agents-to-deep",
)


@pytest.fixture
def ledger(tmp_path: Path) -> Cli:
    made = Cli(tmp_path)
    made.seed(
        [
            row(1, "platform", "autocomplete", OPUS, HAIKU, 1_000_000, FAST, 5_000_000),
            row(2, "platform", "code-review", OPUS, SONNET, 3_000_000, STANDARD, 5_000_000),
            # a rule fired but kept the model: not a routed request
            row(3, "research", "code-review", SONNET, SONNET, 3_000_000, STANDARD, 3_000_000),
            row(4, "research", "chat", SONNET, SONNET, 2_500_000),  # no rule, no counterfactual: cost stands
            row(5, "platform", "architecture", SONNET, OPUS, 10_000_000, DEEP, 6_000_000),
            row(6, "research", "autocomplete", OPUS, HAIKU, 250_000_001, FAST, 1_250_000_000),
            row(7, "research", "chat", SONNET, SONNET, 0, status_code=500, status="upstream_error"),
            # before the period the tests ask for
            row(0, "platform", "autocomplete", OPUS, HAIKU, 7, FAST, 100,
                started_at="2026-02-01T00:00:00.000000Z"),
        ]
    )  # fmt: skip
    return made


def test_savings_by_rule_exact(ledger: Cli) -> None:
    rows = ledger.json("savings", "--by", "rule", "--since", "2026-03-01")
    assert all(r.pop("baseline") == "requested" for r in rows)  # against the models asked for
    assert rows == [
        {"rule": FAST, "id": FAST, "requests": 2, "routed_requests": 2, "cost_usd": "0.251000001",
         "counterfactual_usd": "1.255", "savings_usd": "1.003999999", "savings_pct": "80.00"},
        {"rule": STANDARD, "id": STANDARD, "requests": 2, "routed_requests": 1, "cost_usd": "0.006",
         "counterfactual_usd": "0.008", "savings_usd": "0.002", "savings_pct": "25.00"},
        {"rule": None, "id": None, "requests": 2, "routed_requests": 0, "cost_usd": "0.0025",
         "counterfactual_usd": "0.0025", "savings_usd": "0", "savings_pct": "0.00"},
        {"rule": DEEP, "id": DEEP, "requests": 1, "routed_requests": 1, "cost_usd": "0.01",
         "counterfactual_usd": "0.006", "savings_usd": "-0.004", "savings_pct": "-66.67"},
    ]  # fmt: skip
    everything = ledger.json("savings", "--by", "rule")
    assert everything[0]["requests"] == 3 and everything[0]["savings_usd"] == "1.004000092"


def test_savings_by_team_model_use_case(ledger: Cli) -> None:
    teams = ledger.json("savings", "--by", "team", "--since", "2026-03-01", "--until", "2026-04-01")
    assert [(t["team"], t["id"]) for t in teams] == [
        ("research", ledger.ids["research"]),
        ("platform", ledger.ids["platform"]),
    ]
    research, platform = teams
    assert (research["requests"], research["routed_requests"]) == (4, 1)
    assert (research["cost_usd"], research["counterfactual_usd"]) == ("0.255500001", "1.2555")
    assert (research["savings_usd"], research["savings_pct"]) == ("0.999999999", "79.65")
    assert (platform["requests"], platform["routed_requests"], platform["savings_usd"]) == (3, 3, "0.002")
    assert (platform["cost_usd"], platform["counterfactual_usd"], platform["savings_pct"]) == (
        "0.014",
        "0.016",
        "12.50",
    )

    models = ledger.json("savings", "--by", "model", "--since", "2026-03-01")
    assert [(m["model"], m["requests"], m["routed_requests"], m["savings_usd"]) for m in models] == [
        (OPUS, 3, 3, "1.005999999"),
        (SONNET, 4, 1, "-0.004"),
    ]
    cases = ledger.json("savings", "--by", "use_case", "--since", "2026-03-01")
    assert {c["use_case"]: c["savings_usd"] for c in cases} == {
        "autocomplete": "1.003999999",
        "code-review": "0.002",
        "chat": "0",
        "architecture": "-0.004",
    }


def test_savings_csv_and_table(ledger: Cli) -> None:
    text = ledger.ok("savings", "--by", "rule", "--since", "2026-03-01", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(text)))
    money = ["cost_usd", "counterfactual_usd", "savings_usd", "savings_pct"]
    assert list(parsed[0]) == ["rule", "id", "requests", "routed_requests", *money, "baseline"]
    assert parsed[0]["rule"] == FAST and parsed[0]["savings_usd"] == "1.003999999"
    assert parsed[2]["rule"] == "" and parsed[2]["savings_pct"] == "0.00"
    assert len(parsed) == 4

    table = ledger.ok("savings", "--by", "rule", "--since", "2026-03-01")
    total = next(line for line in table.splitlines() if "total" in line)
    # Tables round money to 4 decimals and percentages to 1; the CSV above keeps them exact.
    for value in ("7", "4", "$0.2695", "$1.2715", "$1.0020", "78.8%"):
        assert f" {value} " in total, total
    assert "(no rule)" in table and "-66.7%" in table


def test_savings_errors_and_empty(cli: Cli) -> None:
    assert cli.json("savings") == []
    assert cli.fails("savings", "--by", "user") == "error: --by must be one of team, use_case, rule, model"
    assert "not an ISO date" in cli.fails("savings", "--since", "yesterday")
