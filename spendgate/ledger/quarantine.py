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
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from spendgate.models import LedgerRow
from spendgate.store.ledger import LedgerStore

log = logging.getLogger(__name__)

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
    values = _VALUES(row)
    if all(map(operator.contains, _ALLOWED, map(type, values))):
        numbers = [v for v in _INTS(values) if v is not None]
        if (not numbers or (min(numbers) >= -_INT64 and max(numbers) < _INT64)) and all(
            _strings(values[i]) for i in _DICTS if values[i] is not None
        ):
            return None
    return _first_problem(row)


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


def land_checked(store: LedgerStore, rows: Sequence[LedgerRow]) -> Landed:
    """`land` for rows read back from a journal: rows of the wrong shape are quarantined first."""
    landed, fit = Landed(), []
    for row in rows:
        problem = row_problem(row)
        if problem is None:
            fit.append(row)
        else:
            landed += Landed(quarantined=_quarantine(store, row, problem))
    return landed + land(store, fit)


def land(store: LedgerStore, rows: Sequence[LedgerRow]) -> Landed:
    """Insert `rows`; quarantine those the database refuses for good. Raises on an outage."""
    if not rows:
        return Landed()
    try:
        return Landed(inserted=store.insert_ledger_rows(rows))
    except Exception as exc:
        if not refused_for_good(exc):
            raise
        if len(rows) == 1:
            return Landed(quarantined=_quarantine(store, rows[0], exc))
    middle = len(rows) // 2
    return land(store, rows[:middle]) + land(store, rows[middle:])


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
