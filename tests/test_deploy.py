"""What a deployment relies on: `spendgate migrate` as a one-off step, the shipped manifests valid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _spendgate(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spendgate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def test_migrate_applies_each_migration_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    first = _spendgate("migrate", SPENDGATE_DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    shipped = sorted(p.stem for p in (ROOT / "spendgate/store/migrations").glob("*.sql"))
    assert first.stdout.split() == [w for name in shipped for w in ("applied", name)]
    again = _spendgate("migrate", SPENDGATE_DATABASE_URL=url)
    assert again.stdout.strip() == "schema up to date"
