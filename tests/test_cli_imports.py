"""The command line starts light: building it loads no HTTP client, web framework, database driver,
settings library or report library (a command loads what it needs when it runs), a command imports
its own command module and no other, and only `cli/common.py` reads the settings, once per
invocation."""

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


def _loaded_by(args: list[str], env: dict[str, str]) -> set[str]:
    """The modules a whole `spendgate ARGS` run loaded (help rendered, command run)."""
    import os

    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sys.modules) + '\\n'))\n"
        f"sys.argv = ['spendgate', *{args!r}]\n"
        "from spendgate.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, check=False
    )
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("MODULES ")]
    return set(line.split()[1:])


def test_help_and_spend_load_no_help_formatter_and_no_migration_tool(tmp_path: Path) -> None:
    # --help is click's plain help: rich's formatter (with markdown-it and pygments) doubled its start-up
    env = {"SPENDGATE_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    helped = _loaded_by(["--help"], env)
    assert not {"rich", "markdown_it", "pygments", "yoyo", "pydantic", "pydantic_settings"} & helped
    _loaded_by(["migrate"], env)
    # a database whose migrations are all recorded is answered without importing yoyo
    assert "yoyo" not in _loaded_by(["spend"], env)


def test_the_command_table_names_what_each_module_declares() -> None:
    # The root builds a command from its module only when asked (cli/__init__.py's COMMANDS): a
    # module missing from the table, or a command it names wrongly, would vanish from the CLI.
    from spendgate.cli import COMMANDS, module_commands

    assert set(COMMANDS.values()) == {p.stem for p in CLI.glob("*.py")} - {"__init__", "common", "present"}
    for module in dict.fromkeys(COMMANDS.values()):
        assert list(module_commands(module)) == [name for name, m in COMMANDS.items() if m == module]


def test_spend_imports_its_own_command_module_only(tmp_path: Path) -> None:
    from spendgate.cli import COMMANDS

    env = {"SPENDGATE_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    _loaded_by(["migrate"], env)
    loaded = _loaded_by(["spend"], env)
    commands = {name for name in loaded if name.startswith("spendgate.cli.")}
    assert commands == {"spendgate.cli.common", "spendgate.cli.present", "spendgate.cli.spend_cmd"}
    # what the other groups import (budgets, finance, the console, the gateway) stays out
    elsewhere = ("spendgate.budgets", "spendgate.finance", "spendgate.console", "spendgate.app")
    assert not [name for name in elsewhere if name in loaded]
    # the settings are a plain pydantic model (pydantic-settings brought asyncio, argparse, dotenv),
    # kept per invocation without click (typer carries its own); TOML loads with a price file
    assert not {"pydantic_settings", "asyncio", "argparse", "click", "tomllib"} & loaded
    # --help lists every command with its help, so it imports every command module
    helped = _loaded_by(["--help"], env)
    assert {f"spendgate.cli.{module}" for module in COMMANDS.values()} <= helped
