"""Read a table the CLI printed (rich's box characters) back into cells, as a person would."""

from __future__ import annotations


def table_rows(text: str) -> list[list[str]]:
    """The heading, then each row of the table's body, as stripped cells. A cell that wrapped
    onto more lines is joined back with spaces (a line whose first cell is empty continues the
    row above it: every table read this way has a first column that is never blank)."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        bar = line[:1]
        if bar not in ("┃", "│") or not line.endswith(bar):
            continue
        cells = [cell.strip() for cell in line[1:-1].split(bar)]
        if rows and not cells[0] and len(rows[-1]) == len(cells):
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows
