"""What a deployment relies on: `spendgate migrate` as a one-off step, and the shipped compose
stack, HAProxy, Prometheus and Kubernetes manifests valid and wired to each other, checked offline
with the real tools (docker-compose, haproxy, promtool, kubectl kustomize, kubernetes-validate).

A missing tool skips its test with the reason; with SPENDGATE_TEST_CONTAINERS=1 (set by .ci/run,
which installs them) it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from spendgate.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
CONTAINERS_ENV = "SPENDGATE_TEST_CONTAINERS"
KUBERNETES_VERSION = "1.30"  # the oldest release the manifests are checked against


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get(CONTAINERS_ENV):
        pytest.fail(f"{CONTAINERS_ENV} is set but {name} is not installed ({package}; .ci/run installs it)")
    pytest.skip(f"{name} is not installed ({package}); CI sets {CONTAINERS_ENV}=1")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}, check=False
    )


def test_migrate_applies_each_migration_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    first = _run(sys.executable, "-m", "spendgate", "migrate", env={"SPENDGATE_DATABASE_URL": url})
    assert first.returncode == 0, first.stderr
    shipped = sorted(p.stem for p in (ROOT / "spendgate/store/migrations").glob("*.sql"))
    assert first.stdout.split() == [w for name in shipped for w in ("applied", name)]
    again = _run(sys.executable, "-m", "spendgate", "migrate", env={"SPENDGATE_DATABASE_URL": url})
    assert again.stdout.strip() == "schema up to date"


def _stop_budget_s() -> float:
    """What a replica may take to stop with the default settings, before the ledger flush."""
    settings = Settings()
    return settings.drain_delay_s + settings.drain_timeout_s


# --- compose --------------------------------------------------------------------------------


def _filled_env(tmp_path: Path) -> Path:
    """deploy/.env.example with every required secret given a value, as a user's .env would."""
    lines = []
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.endswith("=") and not line.startswith("#"):
            line += "not-a-real-secret"
        lines.append(line)
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n")
    return env


def _compose(tmp_path: Path) -> dict[str, Any]:
    compose = _tool("docker-compose", "Debian package docker-compose")
    args = [compose, "-f", str(DEPLOY / "compose.yaml"), "--env-file", str(_filled_env(tmp_path)), "config"]
    valid = _run(*args, "-q")
    assert valid.returncode == 0, valid.stderr
    rendered: dict[str, Any] = yaml.safe_load(_run(*args).stdout)
    return rendered


def test_compose_refuses_to_start_without_the_secrets() -> None:
    compose = _tool("docker-compose", "Debian package docker-compose")
    empty = _run(
        compose, "-f", str(DEPLOY / "compose.yaml"), "--env-file", str(DEPLOY / ".env.example"), "config"
    )
    assert empty.returncode != 0
    assert "set POSTGRES_PASSWORD in deploy/.env" in empty.stderr


def test_compose_stack_two_replicas_behind_haproxy_with_migrations_once(tmp_path: Path) -> None:
    services = _compose(tmp_path)["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "gateway-1",
        "gateway-2",
        "lb",
        "prometheus",
        "grafana",
    }
    assert services["migrate"]["entrypoint"] == ["spendgate", "migrate"]
    journals = set()
    for name in ("gateway-1", "gateway-2"):
        gateway = services[name]
        assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = gateway["environment"]
        assert env["SPENDGATE_DATABASE_URL"].startswith(
            "postgresql://spendgate:not-a-real-secret@postgres:5432/"
        )
        assert env["SPENDGATE_REDIS_URL"] == "redis://redis:6379/0"
        (volume,) = gateway["volumes"]
        assert volume.endswith(":/var/lib/spendgate:rw")
        journals.add(volume.split(":")[0])
        grace = gateway["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > _stop_budget_s()
    assert len(journals) == 2, "each replica needs its own journal volume"
    lb = services["lb"]
    assert lb["environment"]["SPENDGATE_GATEWAY_1"] == "gateway-1:8787"
    assert lb["environment"]["SPENDGATE_GATEWAY_2"] == "gateway-2:8787"
    assert any(v.endswith(":/usr/local/etc/haproxy/haproxy.cfg:ro") for v in lb["volumes"])
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for shipped in ("ops/prometheus/alerts.yml", "ops/grafana/provisioning", "ops/grafana/dashboards"):
        assert str(ROOT / shipped) in mounts
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["gateway-1:8787", "gateway-2:8787"]


def test_haproxy_config_is_valid_and_follows_readyz() -> None:
    haproxy = _tool("haproxy", "Debian package haproxy")
    config = DEPLOY / "haproxy.cfg"
    env = {
        "SPENDGATE_LB_BIND": "127.0.0.1:1",
        "SPENDGATE_GATEWAY_1": "127.0.0.1:2",
        "SPENDGATE_GATEWAY_2": "127.0.0.1:3",
    }
    checked = _run(haproxy, "-c", "-f", str(config), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "option httpchk GET /readyz" in config.read_text()


def test_prometheus_config_of_the_stack_loads_the_shipped_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("SPENDGATE_TEST_PROMTOOL") == "1":
            pytest.fail("SPENDGATE_TEST_PROMTOOL=1 but promtool is not on PATH")
        pytest.skip("promtool not on PATH (Debian package 'prometheus')")
    # As compose mounts them: the stack's config with the shipped rules beside it.
    shutil.copy(DEPLOY / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ROOT / "ops/prometheus/alerts.yml", tmp_path / "alerts.yml")
    checked = _run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout + checked.stderr


# --- Kubernetes -----------------------------------------------------------------------------


def _render(folder: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` (offline), then `kubernetes-validate --strict` on the result."""
    kubectl = _tool("kubectl", "kubectl")
    rendered = _run(kubectl, "kustomize", str(folder))
    assert rendered.returncode == 0, rendered.stderr
    out = tmp_path / f"{folder.name}.yaml"
    out.write_text(rendered.stdout)
    validator = Path(sys.executable).with_name("kubernetes-validate")
    checked = _run(str(validator), "--strict", "-k", KUBERNETES_VERSION, "--quiet", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Only the Prometheus Operator's kind is outside the Kubernetes schema (checked below by hand).
    unknown = [
        line for line in (checked.stdout + checked.stderr).splitlines() if "Couldn't find schema" in line
    ]
    assert all("kind ServiceMonitor" in line for line in unknown), unknown
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_kubernetes_base_renders_valid_and_wired(tmp_path: Path) -> None:
    docs = _render(KUBE / "base", tmp_path)
    gateway = _one(docs, "StatefulSet", "spendgate")
    spec = gateway["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert spec["replicas"] == 2
    assert pod["terminationGracePeriodSeconds"] > _stop_budget_s()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    # each replica keeps its journal on its own volume
    (claim,) = spec["volumeClaimTemplates"]
    (container,) = pod["containers"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/spendgate"} in container["volumeMounts"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    config_map = container["envFrom"][0]["configMapRef"]["name"]
    assert _one(docs, "ConfigMap", config_map)["data"]["SPENDGATE_DRAIN_DELAY_S"] == "5"
    (migrate,) = pod["initContainers"]
    assert migrate["command"] == ["spendgate", "migrate"]
    assert _env(migrate)["SPENDGATE_DATABASE_URL"] == _env(container)["SPENDGATE_DATABASE_URL"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "8787"
    # Service, ServiceMonitor and PodDisruptionBudget find the gateway pods
    service = _one(docs, "Service", "spendgate")
    assert service["spec"]["selector"].items() <= labels.items()
    monitor = _one(docs, "ServiceMonitor", "spendgate")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    peers = _one(docs, "Service", spec["serviceName"])
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= peers["metadata"]["labels"].items()
    pdb = _one(docs, "PodDisruptionBudget", "spendgate")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # the shipped dashboard, as it is in ops/
    dashboard = _one(docs, "ConfigMap", "spendgate-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((ROOT / "ops/grafana/dashboards/spendgate.json").read_text())
    assert json.loads(dashboard["data"]["spendgate.json"]) == shipped
    # the in-cluster services the base's URLs point at
    assert _one(docs, "Service", "spendgate-postgres") and _one(docs, "Service", "spendgate-redis")


def test_kubernetes_overlay_for_external_postgres_and_redis(tmp_path: Path) -> None:
    docs = _render(KUBE / "overlays" / "external-services", tmp_path)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert not {n for n in names if "postgres" in n[1] or "redis" in n[1]}
    pod = _one(docs, "StatefulSet", "spendgate")["spec"]["template"]["spec"]
    for container in (*pod["initContainers"], *pod["containers"]):
        env = _env(container)
        assert "POSTGRES_PASSWORD" not in env
        assert "value" not in env["SPENDGATE_DATABASE_URL"]
        assert env["SPENDGATE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
    gateway_env = _env(pod["containers"][0])
    assert gateway_env["SPENDGATE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "redis-url"
