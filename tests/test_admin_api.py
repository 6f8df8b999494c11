"""The /admin HTTP API, served for real on loopback and driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from spendgate.app import create_app
from spendgate.config import Settings
from spendgate.gateway import Gateway
from spendgate.models import LedgerRow
from spendgate.servethread import ServerThread

MASTER = "master-test"
AUTH = {"authorization": f"Bearer {MASTER}"}
CALL_BODY = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/t.db",
        "master_key": MASTER,
        # Nothing listens on port 9: a call that passes auth ends in the gateway's 502.
        "anthropic_base_url": "http://127.0.0.1:9",
        "openai_base_url": "http://127.0.0.1:9/v1",
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Admin:
    client: httpx.Client
    gw: Gateway

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(f"/admin{path}", params=params, headers=AUTH)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.client.post(f"/admin{path}", json=body, headers=AUTH)

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        assert "key_hash" not in response.text
        return response.json()

    def call_gateway(self, key: str) -> httpx.Response:
        return self.client.post("/v1/messages", json=CALL_BODY, headers={"x-api-key": key})

    def seed_principals(self) -> dict[str, Any]:
        org = self.ok(self.post("/orgs", {"name": "acme"}), 201)
        team = self.ok(self.post("/teams", {"org": "acme", "name": "platform", "cost_center": "CC-100"}), 201)
        user_body = {"team": "platform", "name": "ada", "email": "ada@example.com"}
        user = self.ok(self.post("/users", user_body), 201)
        return {"org": org, "team": team, "user": user}


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Admin]:
    app = create_app(settings(tmp_path))
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield Admin(client, app.state.gateway)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= {"type", "message"}
    return error


ROUTES = [
    ("GET", "/orgs"), ("POST", "/orgs"), ("POST", "/orgs/acme/revoke"),
    ("GET", "/teams"), ("POST", "/teams"), ("POST", "/teams/x/revoke"),
    ("GET", "/users"), ("POST", "/users"), ("POST", "/users/x/revoke"),
    ("GET", "/keys"), ("POST", "/keys"), ("POST", "/keys/x/revoke"), ("DELETE", "/keys/x"),
    ("GET", "/spend"), ("GET", "/ledger"),
]


def test_every_route_needs_the_master_key(admin: Admin) -> None:
    for method, path in ROUTES:
        response = admin.client.request(method, f"/admin{path}", json={"name": "x"})
        assert error_of(response, 401)["type"] == "authentication_error", (method, path)
    wrong: list[dict[str, str]] = [
        {"authorization": "Bearer wrong"}, {"x-api-key": "wrong"}, {"authorization": MASTER},
        {"authorization": f"Bearer {MASTER}x"}, {"x-api-key": MASTER[:-1]},
    ]
    for headers in wrong:
        response = admin.client.post("/admin/orgs", headers=headers, json={"name": "x"})
        assert error_of(response, 401)["message"], headers
        assert response.headers["www-authenticate"] == "Bearer"
    # Nothing was created by the rejected calls.
    assert admin.ok(admin.get("/orgs")) == []


def test_master_key_accepted_as_bearer_or_x_api_key(admin: Admin) -> None:
    assert admin.client.get("/admin/orgs", headers={"authorization": f"Bearer {MASTER}"}).json() == []
    assert admin.client.get("/admin/orgs", headers={"x-api-key": MASTER}).json() == []


def test_admin_disabled_without_master_key(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, master_key=None))
    with ServerThread(app) as server:
        response = httpx.get(f"{server.url}/admin/orgs", headers={"authorization": "Bearer anything"})
    error = error_of(response, 403)
    assert error["type"] == "permission_error"
    assert "SPENDGATE_MASTER_KEY" in error["message"]


def test_create_list_revoke_org_team_user(admin: Admin) -> None:
    made = admin.seed_principals()
    org, team, user = made["org"], made["team"], made["user"]
    assert org["name"] == "acme" and org["id"].startswith("org_") and org["revoked_at"] is None
    assert team["org_id"] == org["id"] and team["cost_center"] == "CC-100"
    assert user["team_id"] == team["id"] and user["email"] == "ada@example.com"

    assert [o["name"] for o in admin.ok(admin.get("/orgs"))] == ["acme"]
    assert [t["id"] for t in admin.ok(admin.get("/teams"))] == [team["id"]]
    assert [u["name"] for u in admin.ok(admin.get("/users"))] == ["ada"]

    revoked = admin.ok(admin.post(f"/users/{user['id']}/revoke"))
    assert revoked["id"] == user["id"] and revoked["revoked_at"] is not None
    assert admin.ok(admin.get("/users")) == []
    listed = admin.ok(admin.get("/users", include_revoked="true"))
    assert [(u["name"], u["revoked_at"]) for u in listed] == [("ada", revoked["revoked_at"])]

    assert admin.ok(admin.post("/teams/platform/revoke"))["revoked_at"] is not None
    assert admin.ok(admin.get("/teams")) == []
    assert admin.ok(admin.post("/orgs/acme/revoke"))["revoked_at"] is not None
    assert admin.ok(admin.get("/orgs")) == []
    assert len(admin.ok(admin.get("/orgs", include_revoked="true"))) == 1


def test_key_lifecycle_takes_effect_at_once(admin: Admin) -> None:
    made = admin.seed_principals()
    body = {
        "name": "ada-laptop", "team": "platform", "user": "ada", "use_case": "coding",
        "tags": {"env": "dev"}, "expires_at": "2999-12-31",
    }
    created = admin.ok(admin.post("/keys", body), 201)
    secret = created["key"]
    assert secret.startswith("sk-sg-") and created["prefix"] == secret[:12]
    assert created["team_id"] == made["team"]["id"] and created["user_id"] == made["user"]["id"]
    assert created["org_id"] == made["org"]["id"]
    assert created["default_use_case"] == "coding" and created["default_tags"] == {"env": "dev"}
    assert created["expires_at"] == "2999-12-31T00:00:00.000000Z" and created["revoked_at"] is None

    listing = admin.get("/keys")
    assert secret not in listing.text  # the secret is shown once, at creation
    assert [(k["id"], k["prefix"]) for k in admin.ok(listing)] == [(created["id"], created["prefix"])]

    # Usable at once: past auth, to the (unreachable) upstream.
    assert admin.call_gateway(secret).status_code == 502
    assert admin.call_gateway("sk-sg-not-a-key").status_code == 401

    revoked = admin.ok(admin.post(f"/keys/{created['id']}/revoke"))
    assert revoked["id"] == created["id"] and revoked["revoked_at"] is not None and "key" not in revoked
    assert admin.call_gateway(secret).status_code == 401
    assert admin.ok(admin.get("/keys")) == []
    assert admin.ok(admin.get("/keys", include_revoked="true"))[0]["revoked_at"] == revoked["revoked_at"]


def test_delete_key_and_revoking_a_team_stop_keys_at_once(admin: Admin) -> None:
    admin.seed_principals()
    first = admin.ok(admin.post("/keys", {"name": "one", "team": "platform"}), 201)
    second = admin.ok(admin.post("/keys", {"name": "two", "team": "platform"}), 201)
    assert admin.call_gateway(first["key"]).status_code == 502

    deleted = admin.client.delete("/admin/keys/one", headers=AUTH)
    assert admin.ok(deleted)["id"] == first["id"]
    assert admin.call_gateway(first["key"]).status_code == 401

    assert admin.call_gateway(second["key"]).status_code == 502
    admin.ok(admin.post("/teams/platform/revoke"))
    assert admin.call_gateway(second["key"]).status_code == 401


def test_error_mapping(admin: Admin) -> None:
    admin.seed_principals()
    assert error_of(admin.post("/orgs", {"name": "acme"}), 409)["type"] == "conflict_error"
    assert error_of(admin.post("/orgs/nope/revoke"), 404)["type"] == "not_found_error"
    missing_org = error_of(admin.post("/teams", {"org": "nope", "name": "t", "cost_center": "c"}), 404)
    assert "nope" in missing_org["message"]
    assert error_of(admin.post("/users/ghost/revoke"), 404)["type"] == "not_found_error"
    assert error_of(admin.client.delete("/admin/keys/ghost", headers=AUTH), 404)["type"] == "not_found_error"

    admin.ok(admin.post("/teams", {"org": "acme", "name": "research", "cost_center": "CC-200"}), 201)
    wrong_team = error_of(admin.post("/keys", {"name": "k", "team": "research", "user": "ada"}), 409)
    assert "not in team" in wrong_team["message"]

    bad_date = error_of(admin.post("/keys", {"name": "k", "team": "platform", "expires_at": "soon"}), 400)
    assert bad_date["type"] == "invalid_request_error" and "soon" in bad_date["message"]

    invalid = error_of(admin.post("/teams", {"org": "acme", "name": "x"}), 422)
    assert invalid["type"] == "invalid_request_error" and "cost_center" in invalid["message"]
    assert admin.ok(admin.get("/keys")) == []  # no failed create left a key behind


def test_openapi_and_docs_reachable_through_the_mount(admin: Admin) -> None:
    for path in ("/admin/openapi.json", "/admin/docs"):
        assert error_of(admin.client.get(path), 401)["type"] == "authentication_error"
    response = admin.client.get("/admin/openapi.json", headers=AUTH)
    assert response.status_code == 200
    spec = response.json()
    assert spec["servers"] == [{"url": "/admin"}]
    assert set(spec["paths"]) == {
        "/orgs", "/orgs/{ref}/revoke", "/teams", "/teams/{ref}/revoke", "/users", "/users/{ref}/revoke",
        "/keys", "/keys/{ref}/revoke", "/keys/{ref}", "/spend", "/ledger",
        "/budgets", "/budgets/{ref}/revoke", "/budgets/events", "/budgets/would-block", "/budgets/recommend",
        "/budgets/recommend/apply", "/exemptions", "/exemptions/{ref}/approve", "/exemptions/{ref}/deny",
        "/keys/{ref}/limits", "/roles", "/roles/grant", "/roles/revoke", "/signin-links", "/audit",
    }
    assert set(spec["paths"]["/keys"]) == {"get", "post"}
    assert "delete" in spec["paths"]["/keys/{ref}"]
    assert "key" in spec["components"]["schemas"]["KeyCreated"]["properties"]
    assert "key_hash" not in response.text
    assert set(spec["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}

    docs = admin.client.get("/admin/docs", headers={"x-api-key": MASTER})
    assert docs.status_code == 200 and "/admin/openapi.json" in docs.text


def test_admin_docs_can_be_published(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, admin_docs_public=True))
    with ServerThread(app) as server:
        assert httpx.get(f"{server.url}/admin/openapi.json").status_code == 200
        assert httpx.get(f"{server.url}/admin/orgs").status_code == 401  # the data still needs the key


def ledger_row(n: int, team_id: str, started_at: str, cost_nanos: int, **extra: Any) -> LedgerRow:
    values: dict[str, Any] = {
        "request_id": f"req-{n}", "provider": "anthropic", "endpoint": "/v1/messages",
        "started_at": started_at, "ended_at": started_at, "status_code": 200, "status": "ok",
        "use_case": "chat", "team_id": team_id, "upstream_model": "claude-haiku-4-5",
        "input_tokens": 100 * n, "output_tokens": 10 * n, "cost_nanos": cost_nanos,
    }
    values.update(extra)
    return LedgerRow(**values)


def test_spend_and_ledger(admin: Admin) -> None:
    team = admin.seed_principals()["team"]
    admin.gw.store.insert_ledger_rows([
        ledger_row(1, team["id"], "2026-01-10T10:00:00.000000Z", 1_500_000),
        ledger_row(2, team["id"], "2026-02-15T10:00:00.000000Z", 3_000_000, cache_read_tokens=7),
        ledger_row(3, "team_gone", "2026-03-01T12:00:00.000000Z", 12_345_678_900, estimated=True,
                   upstream_model="gpt-4o", use_case="batch"),
    ])

    rows = admin.ok(admin.get("/spend", by="team"))
    assert rows == [
        {
            "team": "team_gone", "id": "team_gone", "requests": 1, "input_tokens": 300,
            "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0,
            "output_tokens": 30, "reasoning_tokens": 0, "estimated_requests": 1, "cost_usd": "12.3456789",
        },
        {
            "team": "platform", "id": team["id"], "requests": 2, "input_tokens": 300,
            "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 7,
            "output_tokens": 30, "reasoning_tokens": 0, "estimated_requests": 0, "cost_usd": "0.0045",
        },
    ]
    february = admin.ok(admin.get("/spend", by="model", since="2026-02-01", until="2026-03-01"))
    assert [(r["model"], r["requests"], r["cost_usd"]) for r in february] == [
        ("claude-haiku-4-5", 1, "0.003")
    ]
    assert error_of(admin.get("/spend", by="colour"), 400)["message"].startswith("--by must be one of team")
    assert error_of(admin.get("/spend", since="yesterday"), 400)["type"] == "invalid_request_error"

    latest = admin.ok(admin.get("/ledger", limit=2))
    assert [r["request_id"] for r in latest] == ["req-2", "req-3"]
    assert latest[0]["team"] == "platform" and latest[0]["cost_usd"] == "0.003"
    assert latest[0]["cost_nanos"] == 3_000_000 and latest[0]["estimated"] is False
    assert latest[1]["estimated"] is True and latest[1]["cost_usd"] == "12.3456789"
    january = admin.ok(admin.get("/ledger", until="2026-02-01"))
    assert [r["request_id"] for r in january] == ["req-1"]
    assert error_of(admin.get("/ledger", limit=0), 422)["type"] == "invalid_request_error"
