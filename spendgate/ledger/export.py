"""The raw ledger out of Spendgate: every column of every call in a period, as CSV, JSON Lines or
Parquet, for a warehouse or a notebook.

Rows stream from the store's cursor to the file: a writer holds one row (CSV, JSON Lines) or one
row group (Parquet) at a time, so a 10-million-row export needs no more memory than a small one.
Each row also carries `cost_usd`, its `cost_nanos` as an exact decimal string (a decimal(38, 9)
column in Parquet).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from spendgate.extras import require
from spendgate.models import LEDGER_COLUMNS, LedgerRow
from spendgate.pricing import NANOS_PER_USD, format_usd

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("csv", "jsonl", "parquet")
COLUMNS: tuple[str, ...] = (*LEDGER_COLUMNS, "cost_usd")
ROW_GROUP_ROWS = 25_000  # rows per Parquet row group: the most a Parquet export holds at once
_EVERY = 1000  # rows between two progress reports

Row = Mapping[str, Any]
Progress = Callable[[int], None]


def with_usd(row: Row) -> dict[str, Any]:
    return {**row, "cost_usd": format_usd(int(row["cost_nanos"]))}


def write_csv(rows: Iterable[Row], out: IO[str], on_rows: Progress | None = None) -> int:
    """Rows as CSV with a header; tags as a JSON object, booleans true/false, None empty."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for count, row in enumerate(rows, 1):
        writer.writerow([_csv_value(v) for v in with_usd(row).values()])
        _report(on_rows, count)
    _finish(on_rows, count)
    return count


def write_jsonl(rows: Iterable[Row], out: IO[str], on_rows: Progress | None = None) -> int:
    """One JSON object per line, fields in column order."""
    count = 0
    for count, row in enumerate(rows, 1):
        out.write(json.dumps(with_usd(row), ensure_ascii=False) + "\n")
        _report(on_rows, count)
    _finish(on_rows, count)
    return count


def write_parquet(
    rows: Iterable[Row], path: Path, on_rows: Progress | None = None, group_rows: int = ROW_GROUP_ROWS
) -> int:
    """Parquet, one row group per `group_rows` rows: times as UTC timestamps (microseconds),
    counts int64, `cost_usd` decimal(38, 9), tags a JSON string. A group is gathered column by
    column (one list per column, not a dict per row) and written when full."""
    require("parquet", "the ledger's Parquet export (--format parquet)")
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    count = 0
    group = _empty_group()
    with pq.ParquetWriter(path, schema) as writer:
        for count, row in enumerate(rows, 1):
            for name in LEDGER_COLUMNS:
                group[name].append(_parquet_value(name, row[name]))
            group["cost_usd"].append(Decimal(int(row["cost_nanos"])) / NANOS_PER_USD)
            if count % group_rows == 0:
                writer.write_table(pa.Table.from_pydict(group, schema=schema), row_group_size=group_rows)
                group = _empty_group()
            _report(on_rows, count)
        if group["cost_usd"] or not count:
            writer.write_table(pa.Table.from_pydict(group, schema=schema), row_group_size=group_rows)
    _finish(on_rows, count)
    return count


def parquet_schema() -> pa.Schema:
    """The ledger's columns typed from LedgerRow's fields."""
    import pyarrow as pa

    def kind(name: str, annotation: str) -> pa.DataType:
        if name.endswith("_at"):
            return pa.timestamp("us", tz="UTC")
        if annotation.startswith("bool"):
            return pa.bool_()
        if annotation.startswith("int"):
            return pa.int64()
        return pa.string()  # text, and tags as JSON

    columns = [
        pa.field(f.name, kind(f.name, str(f.type)), nullable="None" in str(f.type)) for f in fields(LedgerRow)
    ]
    return pa.schema([*columns, pa.field("cost_usd", pa.decimal128(38, 9), nullable=False)])


def _empty_group() -> dict[str, list[Any]]:
    return {name: [] for name in COLUMNS}


def _parquet_value(name: str, value: Any) -> Any:
    if name == "tags":
        return json.dumps(value, sort_keys=True)
    if name.endswith("_at") and value is not None:
        return datetime.fromisoformat(value)
    return value


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _report(on_rows: Progress | None, count: int) -> None:
    if on_rows is not None and count % _EVERY == 0:
        on_rows(count)


def _finish(on_rows: Progress | None, count: int) -> None:
    if on_rows is not None:
        on_rows(count)


WRITERS: dict[str, Callable[[Iterable[Row], IO[str], Progress | None], int]] = {
    "csv": write_csv,
    "jsonl": write_jsonl,
}
