"""Docs that tests keep honest: every setting and every CLI command is documented."""

from __future__ import annotations

from pathlib import Path

import typer.main

from spendgate.cli import build_app
from spendgate.config import describe_settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [env for env, _, _ in describe_settings() if f"`{env}`" not in readme]
    assert not missing, f"settings missing from README.md: {missing}"


def test_every_setting_has_help() -> None:
    assert all(help_text for _, _, help_text in describe_settings())


def test_every_cli_command_is_in_docs_cli() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    group = typer.main.get_group(build_app())
    missing = []
    for name, command in group.commands.items():
        if f"spendgate {name}" not in doc:
            missing.append(name)
        for sub in getattr(command, "commands", {}):
            if sub not in doc:
                missing.append(f"{name} {sub}")
    assert not missing, f"commands missing from docs/cli.md: {missing}"
