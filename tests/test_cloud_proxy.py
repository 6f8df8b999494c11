"""Bedrock and Vertex through Spendgate, driven by the official `anthropic.AnthropicBedrock` and
`anthropic.AnthropicVertex` clients (and raw HTTP for Converse): signing, metering, attribution,
exact cost from the price sheet, cut streams, errors in each cloud's shape, no credential leaks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from typer.testing import CliRunner

from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.cli import build_app
from spendgate.fake_upstream import FakeSettings, FakeUpstream
from spendgate.gateway import Gateway
from spendgate.servethread import ServerThread
from tests.cloud import AWS_KEY_ID, AWS_SECRET, ServiceAccount, cloud_env, service_account
from tests.conftest import RunningGateway, gateway_settings

BEDROCK_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
GLOBAL_MODEL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
VERTEX_MODEL = "claude-haiku-4-5@20251001"
USER = [{"role": "user", "content": "What is the capital of France?"}]
USAGE = {
    "input_tokens": 1200,
    "cache_read_input_tokens": 5000,
    "cache_creation_input_tokens": 800,
    "output_tokens": 24,
}
# Claude Haiku 4.5 list prices, USD per million tokens (pricing.md): input 1, 5-minute cache write
# 1.25, cache read 0.10, output 5. Bedrock's regional (us.) profiles cost 10% more; global ones list.
HAIKU = Decimal(1200) * 1 + Decimal(800) * Decimal("1.25") + Decimal(5000) * Decimal("0.10") + Decimal(24) * 5
REGIONAL = Decimal("1.1")
PLACEHOLDER = "http://127.0.0.1:1/token"


def nanos(usd_per_mtok: Decimal) -> int:
    return int(usd_per_mtok * 1000)  # USD per million tokens -> nano-dollars per token


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> ServiceAccount:
    return service_account(tmp_path_factory.mktemp("gcp"), PLACEHOLDER)


@pytest.fixture(scope="module")
def cloud(account: ServiceAccount) -> Iterator[FakeUpstream]:
    settings = FakeSettings(
        aws_access_key_id=AWS_KEY_ID, aws_secret_access_key=AWS_SECRET, google_public_key=account.public_key
    )
    with FakeUpstream(settings) as fake:
        account.path.write_text(account.path.read_text().replace(PLACEHOLDER, f"{fake.url}/token"))
        yield fake


@pytest.fixture
def gateway(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cloud: FakeUpstream,
    account: ServiceAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RunningGateway]:
    for name, value in cloud_env(account, tmp_path).items():
        monkeypatch.setenv(name, value)
    cloud.clear()
    policy = getattr(request, "param", None)  # a routing policy (TOML), for the tests that route
    extra: dict[str, Any] = {}
    if policy is not None:
        extra["routing_policy_file"] = tmp_path / "policy.toml"
        extra["routing_policy_file"].write_text(policy)
    settings = gateway_settings(
        tmp_path,
        cloud,
        bedrock_region="us-east-1",
        bedrock_base_url=cloud.url,
        vertex_base_url=cloud.url,
        **extra,
    )
    app = create_app(settings)
    gw: Gateway = app.state.gateway
    team = gw.store.create_team(gw.store.create_org("acme").name, "platform", "CC-100")
    user = gw.store.create_user(team.name, "ada", None)
    key, secret = create_key(gw.store, name="ada-laptop", team=team.name, user=user.name, use_case="coding")
    gw.keyring.reload()
    with ServerThread(app) as server:
        yield RunningGateway(
            url=server.url, gw=gw, key=secret, key_id=key.id, team_id=team.id, user_id=user.id, server=server
        )


def bedrock(gateway: RunningGateway) -> anthropic.AnthropicBedrock:
    return anthropic.AnthropicBedrock(
        api_key=gateway.key, base_url=f"{gateway.url}/bedrock", aws_region="us-east-1", max_retries=0
    )


def vertex(gateway: RunningGateway) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        access_token=gateway.key,
        base_url=f"{gateway.url}/vertex_ai/v1",
        region="us-east5",
        project_id="spendgate-test",
        max_retries=0,
    )


def pinned(**extra: str) -> dict[str, str]:
    return {"x-fake-usage": json.dumps(USAGE), **extra}


def assert_clean(gateway: RunningGateway, cloud: FakeUpstream, account: ServiceAccount, *texts: str) -> None:
    """No AWS secret, Google key or token anywhere we can see; the virtual key never went upstream."""
    rows = json.dumps(gateway.rows(), default=str)
    tokens = list(cloud.app.state.fake.google_tokens)
    for secret in (AWS_SECRET, account.private_key.splitlines()[1], *tokens):
        assert secret not in rows and all(secret not in t for t in texts)
    for request in cloud.requests:
        assert gateway.key not in json.dumps(request.headers)


# ---- Bedrock ----------------------------------------------------------------------------------------


def test_bedrock_invoke_is_signed_metered_and_attributed(
    gateway: RunningGateway, cloud: FakeUpstream, account: ServiceAccount
) -> None:
    response = bedrock(gateway).messages.with_raw_response.create(
        model=BEDROCK_MODEL,
        max_tokens=100,
        messages=USER,  # type: ignore[arg-type]
        extra_headers=pinned(**{"x-spendgate-tags": "use_case=code-review"}),
    )
    message = response.parse()
    assert message.usage.output_tokens == 24 and message.model == "claude-haiku-4-5-20251001"
    upstream = cloud.requests[-1]
    assert upstream.path == f"/model/{BEDROCK_MODEL}/invoke"
    assert upstream.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")
    assert b'"model"' not in upstream.body  # forwarded as sent
    (row,) = gateway.rows(provider="bedrock")
    assert row["requested_model"] == BEDROCK_MODEL and row["use_case"] == "code-review"
    assert row["team_id"] == gateway.team_id and row["status"] == "ok" and not row["estimated"]
    assert row["cost_nanos"] == nanos(HAIKU * REGIONAL)
    assert row["request_id"] == response.headers["x-spendgate-request-id"]
    assert_clean(gateway, cloud, account, response.http_response.text)


def test_bedrock_stream_is_relayed_and_metered(gateway: RunningGateway, cloud: FakeUpstream) -> None:
    session = "sess-bedrock-1"
    with bedrock(gateway).messages.stream(
        model=GLOBAL_MODEL,
        max_tokens=100,
        messages=USER,  # type: ignore[arg-type]
        extra_headers=pinned(**{"x-claude-code-session-id": session}),
    ) as stream:
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert text.startswith("This is a deterministic reply") and final.usage.output_tokens == 24
    assert cloud.requests[-1].path == f"/model/{GLOBAL_MODEL}/invoke-with-response-stream"
    (row,) = gateway.rows(provider="bedrock")
    assert row["streamed"] and row["status"] == "ok" and not row["estimated"]
    assert row["use_case"] == "coding" and row["session_id"] == session  # the key's default use case
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_5m_tokens"]) == (1200, 5000, 800)
    assert row["cost_nanos"] == nanos(HAIKU)  # global profile: list price


def test_bedrock_cut_stream_is_estimated_never_zero(gateway: RunningGateway) -> None:
    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.HTTPError)),  # the client sees the cut too
        bedrock(gateway).messages.stream(
            model=BEDROCK_MODEL,
            max_tokens=100,
            messages=USER,  # type: ignore[arg-type]
            extra_headers=pinned(**{"x-fake-mode": "stream-cut"}),
        ) as stream,
    ):
        stream.get_final_text()
    (row,) = gateway.rows(provider="bedrock")
    assert row["estimated"] and row["status"] == "upstream_cut"
    assert row["output_tokens"] > 0 and row["cost_nanos"] > 0


def test_bedrock_exception_message_mid_stream(gateway: RunningGateway) -> None:
    with (
        pytest.raises(anthropic.APIStatusError, match="modelStreamErrorException"),
        bedrock(gateway).messages.stream(
            model=BEDROCK_MODEL,
            max_tokens=100,
            messages=USER,  # type: ignore[arg-type]
            extra_headers=pinned(**{"x-fake-mode": "stream-error"}),
        ) as stream,
    ):
        stream.get_final_text()
    (row,) = gateway.rows(provider="bedrock")
    assert row["status"] == "stream_error" and row["error_type"] == "modelStreamErrorException"
    assert row["cost_nanos"] > 0  # the input was used


def test_bedrock_errors_in_bedrocks_shape(gateway: RunningGateway) -> None:
    client = bedrock(gateway)
    with pytest.raises(anthropic.RateLimitError) as upstream:
        client.messages.create(
            model=BEDROCK_MODEL,
            max_tokens=10,
            messages=USER,  # type: ignore[arg-type]
            extra_headers={"x-fake-mode": "error-429"},
        )
    assert upstream.value.body == {"message": "Too many requests, please wait before trying again."}
    assert upstream.value.response.headers["x-amzn-errortype"].startswith("ThrottlingException")
    bad_key = anthropic.AnthropicBedrock(
        api_key="sk-sg-not-a-key", base_url=f"{gateway.url}/bedrock", aws_region="us-east-1", max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as refused:
        bad_key.messages.create(model=BEDROCK_MODEL, max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert set(refused.value.body) == {"message"}  # type: ignore[arg-type]
    assert refused.value.response.headers["x-amzn-errortype"] == "UnrecognizedClientException"
    with pytest.raises(anthropic.NotFoundError, match="no price"):
        client.messages.create(
            model="arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123",
            max_tokens=10,
            messages=USER,  # type: ignore[arg-type]
        )
    answer = httpx2.post(
        f"{gateway.url}/bedrock/model/{BEDROCK_MODEL}/invoke",
        content=b"not json",
        headers={"authorization": f"Bearer {gateway.key}"},
    )
    assert answer.status_code == 400 and answer.headers["x-amzn-errortype"] == "ValidationException"
    assert "Malformed input request" in answer.json()["message"]
    wrong = httpx2.get(f"{gateway.url}/bedrock/model/{BEDROCK_MODEL}/invoke")  # a method Bedrock lacks
    assert wrong.status_code == 404 and wrong.headers["x-amzn-errortype"] and "message" in wrong.json()
    rows = gateway.rows(provider="bedrock")
    assert [r["status"] for r in rows] == ["upstream_error"]  # refusals before forwarding are not calls


def test_budgets_apply_to_bedrock_calls(gateway: RunningGateway) -> None:
    gateway.gw.store.create_budget(name="tiny", scope_type="team", scope_value="platform", amount_nanos=1000)
    gateway.gw.budgets.reload()
    with pytest.raises(anthropic.RateLimitError) as refused:
        bedrock(gateway).messages.create(model=BEDROCK_MODEL, max_tokens=100, messages=USER)  # type: ignore[arg-type]
    headers = refused.value.response.headers
    assert headers["x-amzn-errortype"] == "ThrottlingException" and headers["x-spendgate-budget"] == "tiny"
    assert headers["x-should-retry"] == "false" and "tiny" in refused.value.body["message"]  # type: ignore[index]
    (row,) = gateway.rows(provider="bedrock")
    assert row["status"] == "budget_blocked" and row["requested_model"] == BEDROCK_MODEL


ROUTE_AUTOCOMPLETE = f"""
[[rules]]
name = "bedrock-autocomplete-to-haiku"
match = {{ provider = ["bedrock"], use_case = ["autocomplete"] }}
model = "{GLOBAL_MODEL}"
"""


@pytest.mark.parametrize("gateway", [ROUTE_AUTOCOMPLETE], indirect=True)
def test_routing_rewrites_the_model_in_the_path(gateway: RunningGateway, cloud: FakeUpstream) -> None:
    response = bedrock(gateway).messages.with_raw_response.create(
        model="us.anthropic.claude-sonnet-4-6",
        max_tokens=100,
        messages=USER,  # type: ignore[arg-type]
        extra_headers=pinned(**{"x-spendgate-tags": "use_case=autocomplete"}),
    )
    assert response.headers["x-spendgate-model"] == GLOBAL_MODEL
    assert cloud.requests[-1].path == f"/model/{GLOBAL_MODEL}/invoke"  # signed for the routed path
    (row,) = gateway.rows(provider="bedrock")
    assert (
        row["requested_model"] == "us.anthropic.claude-sonnet-4-6" and row["upstream_model"] == GLOBAL_MODEL
    )
    assert row["route_rule"] == "bedrock-autocomplete-to-haiku" and row["cost_nanos"] == nanos(HAIKU)


def test_converse_and_converse_stream(gateway: RunningGateway) -> None:
    from botocore.eventstream import EventStreamBuffer

    body = {
        "messages": [{"role": "user", "content": [{"text": "hello there"}]}],
        "inferenceConfig": {"maxTokens": 50},
    }
    headers = {"authorization": f"Bearer {gateway.key}", **pinned()}
    answer = httpx2.post(f"{gateway.url}/bedrock/model/{BEDROCK_MODEL}/converse", json=body, headers=headers)
    assert answer.status_code == 200 and answer.json()["usage"]["outputTokens"] == 24
    streamed = httpx2.post(
        f"{gateway.url}/bedrock/model/{BEDROCK_MODEL}/converse-stream", json=body, headers=headers
    )
    assert streamed.headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(streamed.content)
    assert [m.headers[":event-type"] for m in buffer][-1] == "metadata"
    rows = gateway.rows(provider="bedrock")
    assert [r["streamed"] for r in rows] == [False, True]
    converse = Decimal(1200) * 1 + Decimal(800) * Decimal("1.25") + Decimal(5000) * Decimal("0.10") + 24 * 5
    assert all(r["cost_nanos"] == nanos(converse * REGIONAL) and not r["estimated"] for r in rows)


def test_inference_profiles_for_claude_code(gateway: RunningGateway, cloud: FakeUpstream) -> None:
    listing = httpx2.get(f"{gateway.url}/bedrock/inference-profiles?type=SYSTEM_DEFINED")  # no credential
    assert listing.status_code == 200
    ids = {p["inferenceProfileId"] for p in listing.json()["inferenceProfileSummaries"]}
    assert "us.anthropic.claude-sonnet-4-6" in ids
    assert cloud.requests[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
    other = httpx2.get(f"{gateway.url}/bedrock/inference-profiles?type=APPLICATION")
    assert other.status_code == 401 and "message" in other.json()
    assert not gateway.rows()  # listings cost nothing and are not calls


# ---- Vertex ---------------------------------------------------------------------------------------


def test_vertex_json_and_stream(
    gateway: RunningGateway, cloud: FakeUpstream, account: ServiceAccount
) -> None:
    client = vertex(gateway)
    message = client.messages.create(
        model=VERTEX_MODEL,
        max_tokens=100,
        messages=USER,
        extra_headers=pinned(),  # type: ignore[arg-type]
    )
    assert message.usage.output_tokens == 24
    with client.messages.stream(
        model=VERTEX_MODEL,
        max_tokens=100,
        messages=USER,
        extra_headers=pinned(),  # type: ignore[arg-type]
    ) as stream:
        stream.get_final_text()
    upstream = cloud.requests[-1]
    assert upstream.path == (
        f"/v1/projects/spendgate-test/locations/us-east5/publishers/anthropic/models/{VERTEX_MODEL}:streamRawPredict"
    )
    assert upstream.headers["authorization"].startswith("Bearer ya29.fake-")  # the token google-auth got
    rows = gateway.rows(provider="vertex")
    assert [r["streamed"] for r in rows] == [False, True]
    for row in rows:
        assert row["requested_model"] == VERTEX_MODEL and row["team_id"] == gateway.team_id
        assert row["status"] == "ok" and not row["estimated"] and row["cost_nanos"] == nanos(HAIKU)
    token_grants = [r for r in cloud.requests if r.path == "/token"]
    assert len(token_grants) == 1  # fetched once, then cached
    assert_clean(gateway, cloud, account, message.model_dump_json())


def test_vertex_cut_stream_is_estimated(gateway: RunningGateway) -> None:
    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.HTTPError)),
        vertex(gateway).messages.stream(
            model=VERTEX_MODEL,
            max_tokens=100,
            messages=USER,  # type: ignore[arg-type]
            extra_headers=pinned(**{"x-fake-mode": "stream-cut"}),
        ) as stream,
    ):
        stream.get_final_text()
    (row,) = gateway.rows(provider="vertex")
    assert row["estimated"] and row["cost_nanos"] > 0


def test_spend_by_model_session_and_use_case(gateway: RunningGateway, tmp_path: Path) -> None:
    for model, tags in ((BEDROCK_MODEL, "use_case=code-review"), (GLOBAL_MODEL, "use_case=agent")):
        bedrock(gateway).messages.create(
            model=model,
            max_tokens=100,
            messages=USER,  # type: ignore[arg-type]
            extra_headers=pinned(**{"x-spendgate-tags": tags, "x-claude-code-session-id": "s-1"}),
        )
    vertex(gateway).messages.create(
        model=VERTEX_MODEL,
        max_tokens=100,
        messages=USER,
        extra_headers=pinned(),  # type: ignore[arg-type]
    )
    assert gateway.gw.ledger.wait_idle(10)
    runner = CliRunner(env={"SPENDGATE_DATABASE_URL": gateway.gw.settings.database_url})

    def spend(by: str) -> dict[str, str]:
        result = runner.invoke(build_app(), ["spend", "--by", by, "--format", "json"])
        assert result.exit_code == 0, result.output
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return {str(r[by]): r["cost_usd"] for r in rows}

    usd = {
        m: str(Decimal(n) / 10**9)
        for m, n in ((BEDROCK_MODEL, nanos(HAIKU * REGIONAL)), (GLOBAL_MODEL, nanos(HAIKU)))
    }
    by_model = spend("model")
    assert Decimal(by_model[BEDROCK_MODEL]) == Decimal(usd[BEDROCK_MODEL])
    assert Decimal(by_model[GLOBAL_MODEL]) == Decimal(usd[GLOBAL_MODEL])
    assert Decimal(by_model[VERTEX_MODEL]) == Decimal(nanos(HAIKU)) / 10**9
    assert Decimal(spend("session")["s-1"]) == Decimal(usd[BEDROCK_MODEL]) + Decimal(usd[GLOBAL_MODEL])
    by_use_case = spend("use_case")
    assert Decimal(by_use_case["code-review"]) == Decimal(usd[BEDROCK_MODEL])
    assert Decimal(by_use_case["coding"]) == Decimal(nanos(HAIKU)) / 10**9
