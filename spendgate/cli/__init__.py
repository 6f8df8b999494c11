"""The `spendgate` command line, split by command group (one module each, which declares the group
and all its commands; `common.py` holds what they share).

Each module exposes ``register(app)``. A module is imported when one of its commands is asked for,
not before: `COMMANDS` says which module declares which command, so `spendgate spend` imports the
spend module alone (importing every module was about a third of its start-up), while `--help`,
which lists every command with its help, imports them all. A command imports what it needs when
it runs. The settings are read once per invocation (`common.settings()`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click import Command, Context

# Every top-level command and group, in the order `spendgate --help` lists them (typer lists a
# module's commands before its groups, in registration order), and the module that declares it.
# tests/test_cli_imports.py checks this table against what the modules register.
COMMANDS: dict[str, str] = {
    "serve": "serve_cmd",
    "migrate": "serve_cmd",
    "config": "serve_cmd",
    "spend": "spend_cmd",
    "savings": "routing_cmds",
    "demo": "demo_cmd",
    "fake-upstream": "fake_cmd",
    "chargeback": "chargeback_cmd",
    "forecast": "forecast_cmd",
    "orgs": "admin_cmds",
    "teams": "admin_cmds",
    "users": "admin_cmds",
    "keys": "admin_cmds",
    "budgets": "budget_cmds",
    "exemptions": "budget_cmds",
    "ledger": "spend_cmd",
    "route": "routing_cmds",
    "alerts": "alert_cmds",
    "anomalies": "alert_cmds",
    "report": "report_cmds",
    "prs": "finance_cmds",
    "identities": "finance_cmds",
    "reconcile": "reconcile_cmds",
    "roles": "roles_cmds",
    "console": "console_cmds",
    "rollout": "rollout_cmds",
    "batches": "batch_cmds",
    "use-cases": "usecase_cmds",
}

# The look of every command's help and errors, the root's and each module's alike.
_TYPER_OPTIONS: dict[str, Any] = {
    "add_completion": False,
    "pretty_exceptions_enable": False,
    # Plain help and errors: rich's help formatter (rich, markdown-it, pygments) was about
    # half of `spendgate --help`'s start-up (bench/cli_startup.py).
    "rich_markup_mode": None,
}


def module_commands(module: str) -> dict[str, Command]:
    """The commands and groups one module of this package declares, built as typer builds them."""
    app = typer.Typer(**_TYPER_OPTIONS)
    importlib.import_module(f"{__name__}.{module}").register(app)
    return dict(typer.main.get_group(app).commands)


class LazyCommands(MutableMapping[str, "Command"]):
    """A group's commands by name: every name is known up front, a command is built (its module
    imported) when it is first looked up. Listing the names imports nothing; listing the commands
    themselves (as the help does) imports every module."""

    def __init__(self, modules: dict[str, str], load: Callable[[str], dict[str, Command]]) -> None:
        self._modules = dict(modules)
        self._load = load
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built and name in self._modules:
            for built, command in self._load(self._modules[name]).items():
                self._built.setdefault(built, command)
        return self._built[name]

    def __contains__(self, name: object) -> bool:  # without building anything
        return name in self._modules or name in self._built

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._modules.pop(name, None)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._modules
        yield from (name for name in self._built if name not in self._modules)

    def __len__(self) -> int:
        return len(self._modules.keys() | self._built.keys())


class LazyGroup(TyperGroup):
    """The root group, whose commands are `COMMANDS`, each built when first asked for; it runs the
    command in one `common.invocation()`, the scope of the invocation's settings."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(COMMANDS, module_commands)

    def invoke(self, ctx: Context) -> Any:
        from spendgate.cli.common import invocation

        with invocation():
            return super().invoke(ctx)


def _before_any_command() -> None:
    # Nothing runs before a command. Typer builds a group (rather than a lone command) only around a
    # callback or registered commands, and the root registers none: LazyGroup brings them.
    pass


def build_app() -> typer.Typer:
    return typer.Typer(
        name="spendgate",
        help="Token-FinOps gateway: meter, attribute and govern every LLM call.",
        no_args_is_help=True,
        cls=LazyGroup,
        callback=_before_any_command,
        **_TYPER_OPTIONS,
    )


def main() -> None:
    from spendgate.extras import MissingExtra

    try:
        build_app()()
    except MissingExtra as exc:  # a feature whose extra is not installed: one line, no trace
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
