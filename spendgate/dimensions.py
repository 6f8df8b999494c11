"""The dimensions spend is grouped and filtered by, declared once.

A dimension has the name people use (`spend --by`, the admin API's `by`, alert groups, budget
scopes, metric labels), the ledger column holding its value, whether the daily rollups keep it as a
key (and whether only the per-user rollup `ledger_daily` does), and the table whose rows give its
ids a display name. Each report offers a selection of them, by name, below the table; the store, the
rollups, the alerts, the budgets, the admin API, the CLI and the metrics all read from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    column: str  # the ledger column (and the rollups' key column)
    names_table: str | None = None  # rows (id, name) that label its values; None: values are names
    rollup: bool = True  # a key of the daily rollups
    per_user: bool = False  # only `ledger_daily` keeps it (`ledger_daily_team` sums it away)
    nullable: bool = True
    expr: str | None = None  # the raw-ledger expression the rollup key holds, when not the column

    @property
    def raw(self) -> str:
        """The raw-ledger expression equal to the rollup key ('' where the ledger has no value)."""
        if self.expr is not None:
            return self.expr
        return f"COALESCE({self.column}, '')" if self.nullable else self.column


# In rollup key order (the order of the rollup tables' unique keys).
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("org", "org_id", names_table="orgs"),
    Dimension("team", "team_id", names_table="teams"),
    Dimension("user", "user_id", names_table="users", per_user=True),
    Dimension("key", "key_id", names_table="api_keys", per_user=True),
    Dimension("cost_center", "cost_center"),
    Dimension("use_case", "use_case", nullable=False),
    # Where the use case came from: header, metadata, key, inferred:<rule>, none ('' before 0017).
    Dimension("use_case_source", "use_case_source"),
    Dimension("provider", "provider", nullable=False),
    Dimension("requested_model", "requested_model"),
    Dimension("model", "upstream_model"),
    # What the provider billed: the model its response named, else the one sent, else the one asked
    # for. A rollup column only: the ledger has no such column.
    Dimension(
        "billed_model",
        "billed_model",
        expr="COALESCE(response_model, upstream_model, requested_model, '')",
    ),
    Dimension("rule", "route_rule"),
    Dimension("pricing_tier", "pricing_tier"),
    Dimension("price_ref", "price_ref"),
    # Sessions are too many for the rollups: queries by session read the ledger.
    Dimension("session", "session_id", rollup=False),
)
BY_NAME: dict[str, Dimension] = {d.name: d for d in DIMENSIONS}
BY_COLUMN: dict[str, Dimension] = {d.column: d for d in DIMENSIONS}

ROLLUP_KEYS: tuple[str, ...] = tuple(d.column for d in DIMENSIONS if d.rollup)
TEAM_ROLLUP_KEYS: tuple[str, ...] = tuple(d.column for d in DIMENSIONS if d.rollup and not d.per_user)
PER_USER_COLUMNS: frozenset[str] = frozenset(d.column for d in DIMENSIONS if d.per_user)
NAMED: dict[str, Dimension] = {d.name: d for d in DIMENSIONS if d.names_table is not None}


def select(*names: str) -> dict[str, Dimension]:
    """Dimensions by name, in the order given (the order a command's help lists them)."""
    return {name: BY_NAME[name] for name in names}


# --- what each report groups by (the keys are the names people type) ---
SPEND_BY = select(
    "team", "user", "key", "use_case", "model", "cost_center", "session", "org", "provider", "use_case_source"
)
# A model's savings count against the model the caller asked for, not the one routing sent.
SAVINGS_BY = {**select("team", "use_case", "rule"), "model": BY_NAME["requested_model"]}
MONTHLY_BY = select("team", "use_case")  # spend per month (cost per PR)
RECOMMEND_BY = select("team", "use_case")  # budget recommendations
ALERT_BY = select("team", "use_case", "key", "user", "cost_center")
CONTRIBUTOR_BY = select("key", "user", "use_case", "model", "session")
# Budget scopes that are one ledger column (tag and session scopes are matched otherwise).
SCOPE_BY = select("org", "team", "user", "key", "cost_center", "use_case")
METRIC_LABELS: tuple[str, ...] = tuple(select("team", "use_case", "model", "provider"))


def column_of(name: str, offered: dict[str, Dimension], flag: str = "--by") -> str:
    """The ledger column of a dimension a report offers; ValueError naming the choices otherwise."""
    dimension = offered.get(name)
    if dimension is None:
        raise ValueError(f"{flag} must be one of {', '.join(offered)}")
    return dimension.column
