"""Passwords in URLs never show: not in `spendgate config`, not in the logs (issue #10, 6)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from typer.testing import CliRunner

from spendgate.cli import build_app

SECRET = "hunter2-not-for-logs"


def test_spendgate_config_redacts_every_url_password() -> None:
    env = {
        "SPENDGATE_DATABASE_URL": f"postgresql://spend:{SECRET}@db.internal:5432/spendgate",
        "SPENDGATE_REDIS_URL": f"redis://:{SECRET}@cache.internal:6379/0",
        "SPENDGATE_ANTHROPIC_BASE_URL": f"https://proxy:{SECRET}@egress.internal",
        "SPENDGATE_MASTER_KEY": SECRET,
        "COLUMNS": "400",  # one line per setting
    }
    result = CliRunner(env=env).invoke(build_app(), ["config"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert "redis://:***@cache.internal:6379/0" in result.output
    assert "postgresql://spend:***@db.internal:5432/spendgate" in result.output


def test_logs_redact_url_passwords_in_messages_and_tracebacks() -> None:
    # The logging set-up `spendgate serve` applies, in a process of its own.
    script = textwrap.dedent(
        f"""
        import logging, logging.config
        from spendgate.config import logging_config
        logging.config.dictConfig(logging_config("info"))
        log = logging.getLogger("spendgate.test")
        log.info("connecting to %s", "redis://:{SECRET}@cache:6379/0")
        try:
            raise ConnectionError("cannot reach postgresql://u:{SECRET}@db/x")
        except ConnectionError:
            log.exception("store down")
        logging.getLogger("uvicorn.error").error("seen postgresql://u:{SECRET}@db/x")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stderr
    assert done.stderr.count(":***@") == 3, done.stderr
