"""Landing rows in the ledger without letting one bad row block the rest.

Values are checked where they enter (the providers' parsing, attribution); this is the
backstop for a value no check caught, or a journal written by an older version. When the
database refuses a batch for a reason retrying cannot mend (a data or type error), the
batch is split in halves until the refused rows are alone; those go to the
`ledger_quarantine` table, whole, and every other row lands. An outage (connection lost,
database locked) is not the rows' fault: it is raised, and the caller retries the batch
later. Retrying is safe because a request id already in the ledger is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import operator
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

from spendgate.models import LEDGER_COLUMNS, LedgerRow
from spendgate.store.ledger import LedgerStore, as_parameters, ledger_values, row_of_parameters

log = logging.getLogger(__name__)
T = TypeVar("T")

# DB-API exception classes (sqlite3 and psycopg both follow PEP 249) raised for the data itself.
_REFUSALS = frozenset({"DataError", "IntegrityError", "ProgrammingError", "NotSupportedError"})
_REASON_CHARS = 500


@dataclasses.dataclass(frozen=True, slots=True)
class Landed:
    inserted: int = 0
    quarantined: int = 0

    def __add__(self, other: Landed) -> Landed:
        return Landed(self.inserted + other.inserted, self.quarantined + other.quarantined)


def refused_for_good(exc: BaseException) -> bool:
    """True when the database refused the data (retrying cannot help), False for an outage."""
    if isinstance(exc, (TypeError, ValueError, OverflowError)):
        return True  # the driver could not bind a value (an int past 64 bits, a lone surrogate)
    return any(cls.__name__ in _REFUSALS for cls in type(exc).__mro__)


def _column_kinds() -> dict[str, tuple[type, bool]]:
    """Each ledger column's Python type and whether it may be None, from LedgerRow's annotations."""
    kinds: dict[str, tuple[type, bool]] = {}
    for name, spec in LedgerRow.__annotations__.items():
        text = str(spec)
        base = text.split("[")[0].split(" | ")[0]
        kinds[name] = ({"str": str, "int": int, "bool": bool, "dict": dict}[base], "None" in text)
    return kinds


_KINDS = MappingProxyType(_column_kinds())
_INT64 = 2**63
# The same checks column by column in C-level loops (the ingest process runs them on every row):
# each value's exact type against its column's allowed types, then the integers' range.
_VALUES = operator.attrgetter(*_KINDS)
_ALLOWED = tuple(frozenset({kind, type(None)} if nullable else {kind}) for kind, nullable in _KINDS.values())
_INTS = operator.itemgetter(*(i for i, (kind, _) in enumerate(_KINDS.values()) if kind is int))
_DICTS = tuple(i for i, (kind, _) in enumerate(_KINDS.values()) if kind is dict)


def row_problem(row: LedgerRow) -> str | None:
    """Why a row read back from a journal does not fit the ledger's columns, or None."""
    return None if _fits(_VALUES(row)) else _first_problem(row)


def _fits(values: Sequence[Any]) -> bool:
    """Whether a row's values, in column order, fit the ledger's columns (`row_problem`'s check)."""
    if not all(map(operator.contains, _ALLOWED, map(type, values))):
        return False
    numbers = [v for v in _INTS(values) if v is not None]
    if numbers and not (min(numbers) >= -_INT64 and max(numbers) < _INT64):
        return False
    return all(_strings(values[i]) for i in _DICTS if values[i] is not None)


def _strings(value: dict[Any, Any]) -> bool:
    return all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _first_problem(row: LedgerRow) -> str | None:
    """Column by column, to name the first value that does not fit."""
    for name, (kind, nullable) in _KINDS.items():
        value: Any = getattr(row, name)
        if value is None and nullable:
            continue
        if type(value) is not kind:  # exact: a bool is no token count, a float no integer
            return f"{name}: {type(value).__name__} where {kind.__name__} belongs"
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            return f"{name}: {value} is past 64 bits"
        if isinstance(value, dict) and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return f"{name}: not an object of strings"
    return None


def land_lines(store: LedgerStore, lines: Sequence[dict[str, Any]], name: str) -> Landed:
    """Land journal lines decoded to objects (`journal.decode_lines`): the ingest process's path
    for every row, and the replay of a dead process's journal at start-up.

    A line that holds a row's fields in column order, as the serving process writes them, is
    checked and inserted as its list of values: no LedgerRow is built, and the parameters are its
    values with the tags encoded (a fifth less CPU a row than building the row). Any other line
    (written before a field existed, or in another order) goes through `LedgerRow.from_journal`;
    one that is no row at all is skipped as torn. A row whose values do not fit the ledger's
    columns (`row_problem`) is quarantined, whichever way it came, and so is one the database
    refuses for good."""
    landed, fit = Landed(), []
    for line in lines:
        if tuple(line) == LEDGER_COLUMNS:
            values = list(line.values())
            if _fits(values):
                try:
                    fit.append(as_parameters(values))
                    continue
                except (TypeError, ValueError):  # tags orjson will not encode: named below
                    pass
        try:
            row = LedgerRow.from_journal(line)
        except TypeError:  # not an object of the row's fields
            log.warning("skipping a torn line in %s", name)
            continue
        problem = row_problem(row)
        if problem is None:
            try:
                fit.append(ledger_values(row))
                continue
            except (TypeError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
        landed += Landed(quarantined=_quarantine(store, row, problem))
    return landed + land_values(store, fit)


def land_values(store: LedgerStore, rows: Sequence[list[Any]]) -> Landed:
    """`land` for rows as insert parameters (`ledger_values`)."""
    return _halving(store, rows, store.insert_ledger_values, row_of_parameters)


def land(store: LedgerStore, rows: Sequence[LedgerRow]) -> Landed:
    """Insert `rows`; quarantine those the database refuses for good. Raises on an outage."""
    return _halving(store, rows, store.insert_ledger_rows, _itself)


def _halving(
    store: LedgerStore,
    rows: Sequence[T],
    insert: Callable[[Sequence[T]], int],
    row_of: Callable[[T], LedgerRow],
) -> Landed:
    """Insert `rows`; when the database refuses them for good, each half again, down to the rows
    it refuses, which are quarantined (as `row_of` gives them back whole)."""
    if not rows:
        return Landed()
    try:
        return Landed(inserted=insert(rows))
    except Exception as exc:
        if not refused_for_good(exc):
            raise
        if len(rows) == 1:
            return Landed(quarantined=_quarantine(store, row_of(rows[0]), exc))
    middle = len(rows) // 2
    return _halving(store, rows[:middle], insert, row_of) + _halving(store, rows[middle:], insert, row_of)


def _itself(row: LedgerRow) -> LedgerRow:
    return row


def _quarantine(store: LedgerStore, row: LedgerRow, why: BaseException | str) -> int:
    text = why if isinstance(why, str) else f"{type(why).__name__}: {why}"
    reason = text.encode("ascii", "backslashreplace").decode()
    reason = reason.replace("\x00", "\\x00")[:_REASON_CHARS]
    # ensure_ascii escapes every control character and lone surrogate: the copy always fits in text.
    row_json = json.dumps(dataclasses.asdict(row), ensure_ascii=True, default=str)
    request_id = str(row.request_id).encode("ascii", "backslashreplace").decode().replace("\x00", "")
    log.error("ledger row %s quarantined (kept, not in the ledger): %s", request_id, reason)
    store.quarantine_ledger_rows([(request_id[:200], reason, row_json)])
    return 1
