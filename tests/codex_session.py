"""Run the real Codex CLI against Spendgate and the fake provider, all inside one network namespace.

`python -m tests.codex_session DIR CODEX [RUN ...]`, started by tests/test_codex_cli.py under
`unshare -n`: the namespace has only a loopback interface, so nothing Codex tries can leave the
machine. It brings loopback up, serves the fake provider and a Spendgate gateway (SQLite in DIR)
on it, creates a team and a key, runs `codex exec` once per RUN (a JSON object: the prompt and
the extra headers Codex sends through its provider config), stops everything (the ledger
drains into DIR/spendgate.db) and writes what it saw to DIR/session.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.config import Settings
from spendgate.fake_upstream import FakeSettings, FakeUpstream
from spendgate.servethread import ServerThread

PROVIDER_KEY = "sk-openai-provider-secret-codex"
CODEX_TIMEOUT_S = 120


def config_toml(base_url: str, headers: dict[str, str]) -> str:
    """The provider block of docs/codex.md, plus the run's extra headers."""
    header_table = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in headers.items())
    return (
        'model_provider = "spendgate"\n'
        "[model_providers.spendgate]\n"
        'name = "Spendgate"\n'
        f'base_url = "{base_url}/v1"\n'
        'env_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\n'
        "supports_websockets = false\n"
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
        f"http_headers = {{ {header_table} }}\n"
    )


def run_codex(codex: str, home: Path, gateway_url: str, key: str, run: dict[str, Any]) -> dict[str, Any]:
    home.mkdir(parents=True)
    (home / "config.toml").write_text(config_toml(gateway_url, run.get("headers", {})))
    work = home / "work"
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(home),
        "OPENAI_API_KEY": key,
        "NO_COLOR": "1",
    }
    argv = [codex, "exec", "--skip-git-repo-check", "-m", run.get("model", "gpt-5"), run["prompt"]]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=CODEX_TIMEOUT_S)
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr[-4000:]}


def main(out_dir: Path, codex: str, runs: list[dict[str, Any]]) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    report: dict[str, Any] = {"runs": []}
    with FakeUpstream(FakeSettings(openai_api_key=PROVIDER_KEY)) as fake:
        settings = Settings(
            database_url=f"sqlite:///{out_dir}/spendgate.db",
            openai_base_url=fake.openai_url,
            openai_api_key=PROVIDER_KEY,
            ledger_flush_interval_s=0.02,
        )
        app = create_app(settings)
        gw = app.state.gateway
        org = gw.store.create_org("acme")
        team = gw.store.create_team(org.name, "platform", "CC-100")
        user = gw.store.create_user(team.name, "ada", "ada@example.com")
        key, secret = create_key(gw.store, name="ada-codex", team=team.name, user=user.name)
        gw.keyring.reload()
        report.update(key_id=key.id, team_id=team.id, user_id=user.id, org_id=org.id)
        with ServerThread(app) as server:
            for n, run in enumerate(runs):
                report["runs"].append(run_codex(codex, out_dir / f"codex-{n}", server.url, secret, run))
            report["requests"] = [
                {"method": r.method, "path": r.path, "headers": r.headers, "body_bytes": len(r.body)}
                for r in fake.requests
            ]
            report["ledger_idle"] = gw.ledger.wait_idle(10)
    (out_dir / "session.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], [json.loads(arg) for arg in sys.argv[3:]])
