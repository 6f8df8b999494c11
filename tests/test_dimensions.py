"""The table of group-by dimensions (spendgate/dimensions.py) against the schema and the rows it
describes: a dimension added there must exist in the ledger and the rollups, and the other way round."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spendgate.dimensions import (
    DIMENSIONS,
    NAMED,
    ROLLUP_KEYS,
    SAVINGS_BY,
    SCOPE_BY,
    SPEND_BY,
    TEAM_ROLLUP_KEYS,
)
from spendgate.models import LEDGER_COLUMNS, Principal
from spendgate.store.sqlite import SQLiteStore


def _columns(store: SQLiteStore, table: str) -> list[str]:
    return [r["name"] for r in store._query(f"PRAGMA table_info({table})")]


def _primary_key(store: SQLiteStore, table: str) -> list[str]:
    rows = [r for r in store._query(f"PRAGMA table_info({table})") if r["pk"]]
    return [r["name"] for r in sorted(rows, key=lambda r: r["pk"])]


def test_the_rollups_are_keyed_by_the_rolled_up_dimensions(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    store.migrate()
    try:
        assert _primary_key(store, "ledger_daily") == ["day", *ROLLUP_KEYS]
        assert _primary_key(store, "ledger_daily_team") == ["day", *TEAM_ROLLUP_KEYS]
        ledger = set(_columns(store, "ledger"))
        assert ledger == set(LEDGER_COLUMNS)
        for d in DIMENSIONS:
            # a computed key says how; every other dimension is a ledger column
            assert d.expr is not None or d.column in ledger, d
            if d.names_table is not None:
                assert {"id", "name"} <= set(_columns(store, d.names_table))
    finally:
        store.close()


def test_the_offered_groups_keep_their_names_and_columns() -> None:
    # `spend --by` and the admin API list these, in this order (docs/cli.md, docs/admin-api.md).
    offered = "team|user|key|use_case|model|cost_center|session|org|provider|use_case_source"
    assert "|".join(SPEND_BY) == offered
    assert SPEND_BY["model"].column == "upstream_model"
    assert SAVINGS_BY["model"].column == "requested_model"  # savings count against the model asked for
    assert list(NAMED) == ["org", "team", "user", "key"]


def test_column_scopes_are_principal_fields() -> None:
    # The enforcer matches a column scope against the caller's Principal by the column's name.
    fields = {f.name for f in dataclasses.fields(Principal)}
    assert {d.column for name, d in SCOPE_BY.items() if name != "use_case"} <= fields
