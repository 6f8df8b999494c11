"""How every command shows what it prints: one style for people, exact values for scripts.

Tables are for people: money as `$1,234.5678`, right-aligned, with a fixed number of decimals per
column (aggregates 4, a single call 6, budgets 2); counts with thousands separators; percentages
as `31.5%`; times in UTC as `2026-11-29 16:48:03`; a clear label where a group has no value
(`(no session)`). JSON and CSV are for scripts: the values the command computed, unrounded (money
as exact decimal strings), missing values as null / an empty cell.

Progress bars are drawn on stderr, and only when both stdout and stderr are terminals and the
output is a table: never inside JSON or CSV, never in a pipe or a log.

rich loads when a table or a bar is drawn, not when the command line is built.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class ViewFormat(StrEnum):
    """For commands that print one structured view rather than rows (an explanation, a policy)."""

    table = "table"
    json = "json"


FORMAT_OPTION = typer.Option(Format.table, "--format", help="Output format: table, json or csv.")
VIEW_FORMAT_OPTION = typer.Option(ViewFormat.table, "--format", help="Output format: table or json.")

Row = Mapping[str, Any]


# --- one value, as a table shows it ---
def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None


def usd(value: Any, places: int = 4) -> str:
    """Exact dollars (a decimal string, Decimal or int) as `$1,234.5678`; '-' when absent."""
    amount = _decimal(value)
    if amount is None:
        return "-" if value is None or value == "" else str(value)
    step = Decimal(1).scaleb(-places)
    rounded = amount.quantize(step, ROUND_HALF_UP)
    if not rounded and amount:  # a real amount that rounds away: say so rather than $0.0000
        return f"<${step}" if amount > 0 else f">-${step}"
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.{places}f}"


def usd_nanos(nanos: int | None, places: int = 4) -> str:
    from spendgate.pricing import format_usd

    return usd(None if nanos is None else format_usd(nanos), places)


def count(value: Any) -> str:
    """A whole number with thousands separators: 1,234,567."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    amount = _decimal(value)
    if amount is None:
        return "" if value is None else str(value)
    return f"{amount:,}"


def percent(value: Any, places: int = 1, signed: bool = False) -> str:
    """A percentage given in percent units (31.5 -> '31.5%'); '-' when absent."""
    amount = _decimal(value)
    if amount is None:
        return "-" if value is None or value == "" else str(value)
    rounded = amount.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    return f"{rounded:{'+' if signed else ''},.{places}f}%"


def share(part: int, whole: int) -> str:
    """part / whole as a percentage in the one style ('-' when whole is 0)."""
    return percent(Decimal(part * 100) / whole) if whole else "-"


def ratio(value: Any, places: int = 2) -> str:
    amount = _decimal(value)
    if amount is None:
        return "-"
    return f"{amount.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):,.{places}f}x"


def when(value: Any) -> str:
    """An ISO time as `2026-11-29 16:48:03` (the ledger's times are UTC); a date stays a date."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    if len(text) <= 10 or "T" not in text:
        return text
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text


def plain(value: Any) -> str:
    """Any other value in a table cell: lists joined, maps as k=v, booleans as yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items())
    return str(value)


# --- columns ---
_SHOW: dict[str, Callable[[Any, int], str]] = {
    "text": lambda v, _: plain(v),
    "id": lambda v, _: plain(v),
    "money": usd,
    "count": lambda v, _: count(v),
    "percent": percent,
    "change": lambda v, places: "" if v is None else percent(v, places, signed=True),
    "ratio": ratio,
    "time": lambda v, _: when(v),
    "flag": lambda v, _: "yes" if v else "",
}
ID_WIDTH = 14  # an id cut short on a narrow terminal: enough to tell ids apart
FLOOR = 8  # the narrowest a name or an id gets before a table stops giving way
_RIGHT = frozenset({"money", "count", "percent", "change", "ratio"})


@dataclass(frozen=True, slots=True)
class Col:
    """One table column: the row field it shows, its heading and how it shows the value.

    `missing` is what an absent value (None or '') reads as; `get` derives the value from the row
    when it is not one field (e.g. the two cache-write counts added up); `wrap` False keeps a short
    token (a period, a status) on one line when space is short."""

    key: str
    header: str = ""
    kind: str = "text"
    places: int = 4
    missing: str = ""
    get: Callable[[Row], Any] | None = None
    wrap: bool = True

    @property
    def heading(self) -> str:
        return self.header or self.key.replace("_", " ")

    def value(self, row: Row) -> Any:
        return self.get(row) if self.get is not None else row.get(self.key)

    def show(self, row: Row) -> str:
        value = self.value(row)
        if (value is None or value == "") and self.missing:
            return self.missing
        return _SHOW[self.kind](value, self.places)


def text(
    key: str,
    header: str = "",
    missing: str = "",
    get: Callable[[Row], Any] | None = None,
    wrap: bool = True,
) -> Col:
    # An id (`id`, `team_id`, ...) is the one text a narrow terminal may cut short.
    kind = "id" if key == "id" or key.endswith("_id") else "text"
    return Col(key, header, kind, missing=missing, get=get, wrap=wrap)


def token(key: str, header: str = "") -> Col:
    """A short value that reads wrong broken (2026-11, enforce, opened): never wrapped."""
    return Col(key, header, "text", wrap=False)


def label(key: str, header: str = "") -> Col:
    """A group's name: an absent one reads `(no <group>)`, e.g. `(no session)`."""
    return Col(key, header, "text", missing=missing_label(header or key))


def money(key: str, header: str = "", places: int = 4, get: Callable[[Row], Any] | None = None) -> Col:
    return Col(key, header, "money", places, get=get)


def counts(key: str, header: str = "", get: Callable[[Row], Any] | None = None) -> Col:
    return Col(key, header, "count", get=get)


def pct(key: str, header: str = "", places: int = 1) -> Col:
    return Col(key, header, "percent", places)


def change(key: str, header: str = "", places: int = 1) -> Col:
    """A signed percentage change (+12.5%); blank when there is nothing to compare with."""
    return Col(key, header, "change", places)


def times(key: str, header: str = "", missing: str = "") -> Col:
    return Col(key, header, "time", missing=missing)


def flag(key: str, header: str = "") -> Col:
    return Col(key, header, "flag")


def missing_label(group: str) -> str:
    return f"(no {group.replace('_', ' ')})"


# --- output ---
def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    out = Console(stderr=stderr)
    if not out.is_terminal:
        # Piped or captured: no terminal width to respect, so do not squeeze ids into "key_3…".
        out.width = max(out.width, 240)
    return out


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value


def csv_text(rows: Iterable[Row], fields: Sequence[str]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_csv_cell(row.get(f)) for f in fields])
    return buffer.getvalue()


def _fields(rows: Sequence[Row], columns: Sequence[Col]) -> list[str]:
    """CSV columns: every field of the rows (JSON's fields), in order; the table's when no rows."""
    if not rows:
        return [c.key for c in columns]
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def print_table(
    rows: Sequence[Row],
    columns: Sequence[Col],
    title: str | None = None,
    totals: Sequence[Row] = (),
    out: Console | None = None,
) -> None:
    """Rows under `columns`, then the `totals` lines in bold below a rule (on `out`, default
    stdout)."""
    from rich.table import Table

    cells = [[col.show(row) for col in columns] for row in rows]
    # A text column blank on every line (no notes, nothing estimated) only takes room from the
    # others: leave it out of the table (JSON and CSV keep every field).
    shown = [
        i for i, col in enumerate(columns) if col.kind in _RIGHT or not rows or any(line[i] for line in cells)
    ]
    out = out or console()
    total_cells = [[columns[i].show(t) for i in shown] for t in totals if rows]
    values = [[line[i] for line in cells] + [t[n] for t in total_cells] for n, i in enumerate(shown)]
    headings = [columns[i].heading for i in shown]
    natural = [max([len(h), *map(len, v)]) for h, v in zip(headings, values, strict=True)]
    kinds = [_width_kind(columns[i]) for i in shown]
    # the narrowest each column can be: a heading never breaks inside a word, a value only in a
    # name or an id
    least = [
        max([*map(len, h.split()), *([] if k in ("text", "id") else map(len, v))])
        for h, v, k in zip(headings, values, kinds, strict=True)
    ]
    fitted, kept = _fit(natural, least, kinds, out.width)
    table = Table(title=title, title_justify="left", title_style="bold", caption_justify="left")
    for m, n in enumerate(kept):
        col = columns[shown[n]]
        cut = fitted is not None and kinds[n] == "id" and fitted[m] < natural[n]
        table.add_column(
            headings[n],
            justify="right" if col.kind in _RIGHT else "left",
            # Numbers and tokens stay whole (never wider than their column when it had to give
            # way); names fold; an id cut short ends in "…".
            no_wrap=cut or (fitted is None and kinds[n] in ("number", "token", "time")),
            overflow="ellipsis" if cut else "fold",
            width=None if fitted is None else fitted[m],
        )
    if len(kept) < len(shown):
        left_out = ", ".join(headings[n] for n in range(len(shown)) if n not in kept)
        table.caption = f"left out, too narrow: {left_out} (see --format json)"
    shown = [shown[n] for n in kept]
    for line in cells:
        table.add_row(*(line[i] for i in shown))
    if totals and rows:
        table.add_section()
        for total in totals:
            table.add_row(*(columns[i].show(total) for i in shown), style="bold")
    if not rows:
        table.caption = "no rows"
    out.print(table)


def _width_kind(col: Col) -> str:
    if col.kind in _RIGHT or col.kind == "flag":
        return "number"
    if col.kind in ("time", "id"):
        return col.kind
    return "text" if col.wrap else "token"


def _fit(
    natural: list[int], least: list[int], kinds: list[str], width: int
) -> tuple[list[int] | None, list[int]]:
    """How a table wider than the terminal still fits: the widths of the columns it keeps (None
    when it fits as it is) and their positions.

    What gives way, in order: ids, cut to ID_WIDTH (JSON has them whole); the headings of the
    other columns, folded at their spaces (down to `least`: their longest word, or value); times,
    the date above the time; names, down to FLOOR; ids, down to FLOOR. When that is not enough,
    columns are left out from the right, numbers last. A number, an amount or a token is never
    cut or broken, and a name never folds into a ribbon of three letters."""
    keep = list(range(len(kinds)))
    if sum(natural) + 3 * len(keep) + 1 <= width:
        return None, keep
    stages: list[tuple[tuple[str, ...], Callable[[int], int]]] = [
        (("number", "token", "time"), lambda n: least[n]),
        (("time",), lambda n: 10),  # YYYY-MM-DD over HH:MM:SS
        (("text",), lambda n: max(least[n], min(natural[n], FLOOR))),
        (("id",), lambda n: max(least[n], min(natural[n], FLOOR))),
    ]
    while True:
        room = width - 3 * len(keep) - 1  # borders and padding
        widths = {n: min(natural[n], ID_WIDTH) if kinds[n] == "id" else natural[n] for n in keep}
        for group, floor in stages:
            while sum(widths.values()) > room:
                wide = [n for n in keep if kinds[n] in group and widths[n] > floor(n)]
                if not wide:
                    break
                n = max(wide, key=lambda n: widths[n] - floor(n))
                # a time that has to break breaks once, at its space: no use in between
                widths[n] = floor(n) if group == ("time",) else widths[n] - 1
        if sum(widths.values()) <= room or len(keep) == 1:
            _give_back(widths, natural, kinds, room)
            return [widths[n] for n in keep], keep
        others = [n for n in keep[1:] if kinds[n] != "number"]
        keep.remove((others or keep[1:])[-1])


def _give_back(widths: dict[int, int], natural: list[int], kinds: list[str], room: int) -> None:
    """Room left over after a column gave way goes back to the names that folded, then to the
    times, then to the ids."""
    for kind in ("text", "time", "id"):
        for n in sorted(widths, key=lambda n: natural[n] - widths[n]):
            spare = room - sum(widths.values())
            if kinds[n] != kind or (kind == "time" and spare < natural[n] - widths[n]):
                continue  # a time is whole or on two lines, nothing between
            widths[n] += max(0, min(natural[n] - widths[n], spare))


def emit(
    rows: Sequence[Row],
    fmt: Format | ViewFormat,
    columns: Sequence[Col],
    title: str | None = None,
    *,
    totals: Sequence[Row] = (),
    fields: Sequence[str] | None = None,
    document: Any = None,
    notes: Iterable[str] = (),
) -> None:
    """Rows as a table, JSON or CSV.

    JSON prints `document` when given (commands whose JSON is an object), else the rows as they
    are; CSV prints `fields` (default: every field of the rows); a table shows `columns`, then
    the `totals` lines in bold and the `notes` lines when given."""
    if fmt == Format.json:
        print_json(list(rows) if document is None else document)
    elif fmt == Format.csv:
        typer.echo(csv_text(rows, fields or _fields(rows, columns)), nl=False)
    else:
        print_table(rows, columns, title, totals)
        for note in notes:
            typer.echo(note)


def _places(value: Any) -> int:
    amount = _decimal(value)
    exponent = amount.as_tuple().exponent if amount is not None else 0
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def record_col(key: str, value: Any) -> Col:
    """How a record's field reads, from its name: `*_usd` money, `*_at` a time, a count."""
    if key.endswith("_usd"):  # one value, no column to line up: all its decimals, at least 2
        return money(key, places=max(2, _places(value)))
    if key.endswith("_at"):
        return times(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return counts(key)
    if key.endswith(("_pct", "percent_used")):
        return pct(key)
    return text(key)


def emit_one(record: Row, fmt: Format | ViewFormat, title: str | None = None) -> None:
    """One record: a JSON object, a one-row CSV, or a field/value table."""
    if fmt == Format.json:
        print_json(dict(record))
    elif fmt == Format.csv:
        typer.echo(csv_text([record], list(record)), nl=False)
    else:
        from rich.table import Table

        table = Table("field", "value", title=title, title_justify="left", title_style="bold")
        for key, value in record.items():
            table.add_row(key, record_col(key, value).show(record))
        console().print(table)


# --- progress ---
class Bar:
    """A progress bar's handle; a quiet one (off a terminal) does nothing."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None) -> None:
        self._progress, self._task = progress, task
        self._steps = 0

    def __call__(self, done: int, total: int | None = None) -> None:
        """Set what is done so far (and the total when it becomes known): a store's callback."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)

    def step(self, description: str) -> None:
        """A new step starts (so the one before it is done): a callback for step-wise work."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=description, advance=1 if self._steps else 0)
        self._steps += 1


def shows_progress(fmt: Format | ViewFormat | str | None = None, quiet: bool = False) -> bool:
    """Bars only for people: a table (or no) format, stdout and stderr both terminals."""
    if quiet or (fmt is not None and fmt != Format.table):
        return False
    return sys.stdout.isatty() and sys.stderr.isatty()


@contextlib.contextmanager
def progress(
    description: str,
    total: int | None = None,
    fmt: Format | ViewFormat | str | None = None,
    quiet: bool = False,
) -> Iterator[Bar]:
    """A transient bar on stderr while a long command works; a quiet handle off a terminal.

    With no total it pulses (the work's size is unknown until it is done)."""
    if not shows_progress(fmt, quiet):
        yield Bar()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        yield Bar(bar, bar.add_task(description, total=total))
