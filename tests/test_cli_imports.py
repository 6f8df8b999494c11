"""The command line starts light: building it loads no HTTP client, web framework, database driver,
settings library or report library (a command loads what it needs when it runs), and only
`cli/common.py` reads the settings, once per invocation."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CLI = Path(__file__).resolve().parent.parent / "spendgate" / "cli"
HEAVY = (
    "aiohttp",
    "fastapi",
    "matplotlib",
    "psycopg",
    "pyarrow",
    "pydantic_settings",
    "reportlab",
    "rich",
    "starlette",
    "uvicorn",
    "yoyo",
)


def test_building_the_cli_loads_nothing_heavy() -> None:
    code = "import sys\nfrom spendgate.cli import build_app\nbuild_app()\nprint('\\n'.join(sys.modules))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not [name for name in HEAVY if name in loaded]


def test_only_common_builds_the_settings() -> None:
    builders = []
    for path in CLI.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Settings":
                builders.append(f"{path.name}:{node.lineno}")
    assert builders and all(b.startswith("common.py:") for b in builders), builders
