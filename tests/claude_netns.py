"""Runs the real Claude Code CLI in Bedrock or Vertex mode against Spendgate and the fake upstream,
all three inside one loopback-only network namespace.

tests/test_claude_code_cloud.py starts it as `unshare -n python -m tests.claude_netns CONFIG.json`:
the namespace has nothing but its own loopback, so the CLI can reach Spendgate and nothing else.
The gateway writes to the database the test prepared (keys, teams) and reads it afterwards; this
prints one JSON object: the CLI's exit code and output, the requests the fake received, and the
gateway's log.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from spendgate.app import create_app
from spendgate.config import Settings
from spendgate.fake_upstream import FakeSettings, FakeUpstream
from spendgate.servethread import ServerThread
from tests.cloud import AWS_KEY_ID, AWS_SECRET, cloud_env, service_account

PLACEHOLDER_TOKEN_URI = "http://127.0.0.1:1/token"
DIRECT_PROVIDER_KEY = "sk-ant-provider-secret-claude-netns"  # direct mode: Spendgate's key upstream


def client_env(config: dict[str, Any], gateway_url: str) -> dict[str, str]:
    """What a developer puts in their shell (docs/cloud-providers.md), nothing of the host's."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": config["home"],
        "ANTHROPIC_AUTH_TOKEN": config["key"],
        "ANTHROPIC_MODEL": config["model"],
        "ANTHROPIC_SMALL_FAST_MODEL": config["model"],
        "ANTHROPIC_CUSTOM_HEADERS": "\n".join(f"{k}: {v}" for k, v in config["custom_headers"].items()),
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    if config["mode"] == "direct":  # Anthropic's API through Spendgate (ANTHROPIC_BASE_URL)
        env["ANTHROPIC_BASE_URL"] = gateway_url
    elif config["mode"] == "bedrock":
        env.update(
            CLAUDE_CODE_USE_BEDROCK="1",
            ANTHROPIC_BEDROCK_BASE_URL=f"{gateway_url}/bedrock",
            CLAUDE_CODE_SKIP_BEDROCK_AUTH="1",
            AWS_REGION="us-east-1",
        )
    else:
        env.update(
            CLAUDE_CODE_USE_VERTEX="1",
            ANTHROPIC_VERTEX_BASE_URL=f"{gateway_url}/vertex_ai/v1",
            CLAUDE_CODE_SKIP_VERTEX_AUTH="1",
            ANTHROPIC_VERTEX_PROJECT_ID="spendgate-test",
            CLOUD_ML_REGION="us-east5",
        )
    return env


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    workdir = Path(config["workdir"])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    log = io.StringIO()  # everything the gateway logs, at debug level: checked for secrets
    handler = logging.StreamHandler(log)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    account = service_account(workdir, PLACEHOLDER_TOKEN_URI)
    fake_settings = FakeSettings(
        aws_access_key_id=AWS_KEY_ID, aws_secret_access_key=AWS_SECRET, google_public_key=account.public_key
    )
    with FakeUpstream(fake_settings) as fake:
        account.path.write_text(account.path.read_text().replace(PLACEHOLDER_TOKEN_URI, f"{fake.url}/token"))
        os.environ.update(cloud_env(account, workdir))
        settings = Settings(
            database_url=config["database_url"],
            spool_dir=workdir / "spool",
            bedrock_region="us-east-1",
            bedrock_base_url=fake.url,
            vertex_base_url=fake.url,
            anthropic_base_url=fake.url,
            anthropic_api_key=DIRECT_PROVIDER_KEY,
            ledger_flush_interval_s=0.02,
            log_level="debug",
        )
        app = create_app(settings)
        with ServerThread(app) as server:
            argv = [config["claude"], "-p", config["prompt"], "--model", config["model"]]
            run = subprocess.run(
                argv,
                env=client_env(config, server.url),
                cwd=config["home"],
                capture_output=True,
                text=True,
                timeout=config.get("timeout_s", 240),
                stdin=subprocess.DEVNULL,
                check=False,
            )
            app.state.gateway.ledger.wait_idle(10)
        requests = [{"method": r.method, "path": r.path, "headers": r.headers} for r in fake.requests]
        google_tokens = sorted(fake.app.state.fake.google_tokens)
    logging.getLogger().removeHandler(handler)
    print(
        json.dumps(
            {
                "returncode": run.returncode,
                "stdout": run.stdout,
                "stderr": run.stderr[-4000:],
                "fake_requests": requests,
                "gateway_log": log.getvalue(),
                "secrets": [
                    AWS_SECRET,
                    DIRECT_PROVIDER_KEY,
                    account.private_key.splitlines()[1],
                    *google_tokens,
                ],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
