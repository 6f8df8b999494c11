"""The storage layer stands below the features: `spendgate.store` imports no feature package (nor,
through one, an HTTP client), and code outside the store reaches SQL only through `open_store`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "spendgate"
FEATURES = (
    "admin",
    "alerts",
    "budgets",
    "cli",
    "fake_upstream",
    "finance",
    "ledger",
    "providers",
    "reports",
    "routing",
)


def test_the_store_imports_no_feature_package() -> None:
    code = (
        "import sys, spendgate.store, spendgate.store.sqlite, spendgate.store.postgres, spendgate.store.sql\n"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    features = [m for m in loaded if m.split(".")[:2] in (["spendgate", f] for f in FEATURES)]
    assert not features, f"the store imports feature modules: {features}"
    assert "aiohttp" not in loaded


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_store_imports_its_sql_implementation() -> None:
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "store"):
            continue
        sql = sorted(m for m in _imports(path) if m.startswith("spendgate.store.sql"))
        if sql:
            offenders[str(path.relative_to(PACKAGE))] = sql
    assert not offenders, f"import the store's interfaces, not its SQL: {offenders}"


def test_spend_rows_list_the_tokens_in_display_order() -> None:
    # The store builds SpendByGroup positionally and `spend` prints TOKEN_COLUMNS: one order for both.
    import dataclasses

    from spendgate.models import TOKEN_COLUMNS
    from spendgate.store.spend import SpendByGroup

    names = [f.name for f in dataclasses.fields(SpendByGroup)]
    assert names == ["id", "name", "requests", *TOKEN_COLUMNS, "cost_nanos", "estimated_requests"]
