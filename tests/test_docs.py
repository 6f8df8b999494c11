"""Docs that tests keep honest: every setting and every CLI command is documented."""

from __future__ import annotations

import re
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


# A module or folder the architecture page names: `x.py`, `a/b.py`, `a/*.py`, or `name/`.
_MODULE = re.compile(r"(?<![\w./-])([a-z_][\w/]*(?:\*)?[\w]*\.py)\b")
_FOLDER = re.compile(r"(?<![\w./:-])([a-z_]+(?:/[a-z_]+)*)/(?=[\s,)`])")


def _packages() -> list[Path]:
    package = ROOT / "spendgate"
    return sorted(
        p for p in package.rglob("*") if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))
    )


def test_architecture_names_only_real_modules_and_every_package() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "spendgate"
    missing = []
    for name in set(_MODULE.findall(doc)):
        # a path from the package or repository root, or a module named inside its folder's line
        places = [package.glob(name), ROOT.glob(name)] if "/" in name else [package.rglob(name)]
        if not any(any(place) for place in places):
            missing.append(name)
    folders = {p.name for p in package.rglob("*") if p.is_dir()} | {"spendgate"}
    missing += [f"{name}/" for name in set(_FOLDER.findall(doc)) if name.split("/")[-1] not in folders]
    assert not missing, f"docs/architecture.md names what does not exist: {sorted(missing)}"
    unnamed = [str(p.relative_to(package)) for p in _packages() if f"{p.name}/" not in doc]
    assert not unnamed, f"packages without a line in docs/architecture.md: {unnamed}"
