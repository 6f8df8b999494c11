"""How the command line prints: every row command speaks table, JSON and CSV (the same rows in
JSON and CSV, exact), tables in the one style, progress bars on a terminal only, and the ledger
export streamed in CSV, JSON Lines and Parquet."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import click
import pytest
import typer.main

from spendgate.cli import build_app
from spendgate.ledger.export import COLUMNS, write_parquet
from spendgate.store import open_store
from tests.tables import table_rows
from tests.test_cli import Cli, ledger_row, seed_spend

# Commands whose output is one structured view (an explanation, a policy, a link) or files,
# not rows: table|json, or their own formats.
NOT_ROWS = {
    "route explain",
    "route policy",
    "alerts detail",
    "console link",
    "ledger explain-use-case",
    "use-cases rules",
    "report finance",
    "report governance",
    "ledger export",
}


def _commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: str) -> None:
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_group(build_app()), "")
    return found


def _format_choices(command: click.Command) -> list[str] | None:
    """The values --format takes (every --format option is an enum)."""
    for param in command.params:
        if "--format" in getattr(param, "opts", ()):
            kind = param.type_descriptor.annotation  # type: ignore[attr-defined]
            assert isinstance(kind, type) and issubclass(kind, StrEnum), (command.name, kind)
            return [choice.value for choice in kind]
    return None


def test_every_command_that_prints_rows_offers_table_json_and_csv() -> None:
    commands = _commands()
    missing = []
    for path, command in commands.items():
        choices = _format_choices(command)
        if choices is None or path in NOT_ROWS:
            continue
        if not {"table", "json", "csv"} <= set(choices):
            missing.append(f"{path}: {choices}")
    assert not missing, missing
    # the three that had no --format at all
    for path in ("config", "ledger rebuild-rollups", "reconcile import"):
        assert _format_choices(commands[path]) is not None, path
    assert _format_choices(commands["ledger export"]) == ["csv", "jsonl", "parquet"]


def _seeded(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    seed_spend(cli)
    cli.ok(
        "budgets", "create", "--name", "plat", "--scope", "team", "--value", "platform", "--amount", "1234.5"
    )
    cli.ok("keys", "create", "--name", "ci", "--team", "platform")
    return cli


# (command, how many rows its JSON has, or None when its JSON is an object)
ROW_COMMANDS: list[tuple[str, int | None]] = [
    ("orgs list", 1),
    ("teams list", 2),
    ("users list", 1),
    ("keys list", 1),
    ("spend --by team", 2),
    ("spend --by model", 2),
    ("savings --by team", 2),
    ("ledger tail", 3),
    ("ledger quarantine", 0),
    ("budgets list", 1),
    ("budgets events", 0),
    ("budgets would-block", 0),
    ("exemptions list", 0),
    ("roles list", 0),
    ("batches list", 0),
    ("alerts list", 0),
    ("alerts deliveries", 0),
    ("forecast --month 2026-03 --now 2026-03-15T00:00:00Z", 2),
    ("prs list", 0),
    ("prs unmapped", 0),
    ("report cost-per-pr --month 2026-03 --months 3", 6),
    ("config", None),
    ("rollout status", None),
    ("identities list", None),
    ("reconcile --since 2026-03-01 --until 2026-03-02", None),
]


@pytest.mark.parametrize(("command", "count"), ROW_COMMANDS, ids=[c for c, _ in ROW_COMMANDS])
def test_json_csv_and_table_say_the_same(tmp_path: Path, command: str, count: int | None) -> None:
    cli = _seeded(tmp_path)
    args = command.split()
    document = cli.json(*args)
    text = cli.ok(*args, "--format", "csv")
    header = next(csv.reader(io.StringIO(text)), [])
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert header, text
    if count is not None:
        assert isinstance(document, list) and len(document) == count
        assert len(parsed) == count
        for row, line in zip(document, parsed, strict=True):
            for field, value in line.items():  # each CSV cell is the JSON value, unrounded
                assert value == _csv_form(row[field]), (field, value, row[field])
    table = cli.ok(*args)
    assert table.strip() and "Traceback" not in table


def _csv_form(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def test_one_money_and_percent_style_in_tables(tmp_path: Path) -> None:
    cli = _seeded(tmp_path)
    header, *rows = table_rows(cli.ok("budgets", "list"))
    budget = dict(zip(header, rows[0], strict=True))
    # budgets are whole cents: 2 decimals, thousands separators; spend to 4 decimals
    assert budget["budget"] == "$1,234.50" and budget["hard limit"] == "$1,851.75"
    assert budget["spent"] == "$0.0000" and budget["used"] == "0.0%"
    assert cli.json("budgets", "list")[0]["amount_usd"] == "1234.5"  # JSON keeps the exact string
    header, *rows = table_rows(cli.ok("spend", "--by", "team"))
    assert header == ["team", "requests", "input", "cache write", "cache read", "output", "cost"]
    assert rows[0] == ["research", "1", "3,000", "0", "0", "30", "$12.3457"]
    empty = cli.ok("spend", "--since", "2030-01-01")
    assert "no rows" in empty


def _on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal, as in a shell; everything it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(60), out.decode(errors="replace")


def test_progress_bars_on_a_terminal_only(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    seed_spend(cli)
    prs = tmp_path / "prs.csv"
    prs.write_text(
        "repo,number,author,merged_at\n"
        + "".join(f"acme/api,{n},ada,2026-03-0{n}T10:00:00Z\n" for n in range(1, 4))
    )
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "SPENDGATE_DATABASE_URL": cli.url}
    spendgate = [sys.executable, "-m", "spendgate"]

    code, drawn = _on_terminal([*spendgate, "ledger", "rebuild-rollups"], env)
    assert code == 0 and "Rebuilding the rollups" in drawn and "rebuilt ledger_daily" in drawn
    code, drawn = _on_terminal([*spendgate, "prs", "import", "--csv", str(prs)], env)
    assert code == 0 and "Importing 3 merged PRs" in drawn and "3 new, 0 unchanged" in drawn

    # JSON on a terminal, and anything in a pipe: no bar, only the result
    code, drawn = _on_terminal([*spendgate, "ledger", "rebuild-rollups", "--format", "json"], env)
    assert code == 0 and "Rebuilding" not in drawn and json.loads(drawn)["daily_rows"] == 3
    piped = subprocess.run(
        [*spendgate, "prs", "import", "--csv", str(prs)], env=env, capture_output=True, text=True, timeout=60
    )
    assert piped.returncode == 0 and piped.stdout == "0 new, 3 unchanged\n" and piped.stderr == ""


# --- the ledger export ---
def _export_rows() -> list[Any]:
    rows = [
        ledger_row(
            n, "platform", f"2026-03-{n:02d}T10:00:00.{n:06d}Z", 1_000_000_007 * n, tags={"pr": str(n)}
        )
        for n in range(1, 6)
    ]
    rows[1].session_id, rows[2].estimated = "s-1", True
    return rows


def test_ledger_export_csv_jsonl_parquet(tmp_path: Path, database_url: str) -> None:
    cli = Cli(tmp_path)
    cli.url = database_url
    cli.runner.env["SPENDGATE_DATABASE_URL"] = database_url
    cli.seed_store(_export_rows())
    period = ["--since", "2026-03-02", "--until", "2026-03-05"]  # rows 2, 3 and 4
    lines = [
        json.loads(line) for line in cli.ok("ledger", "export", *period, "--format", "jsonl").splitlines()
    ]
    assert [r["request_id"] for r in lines] == ["req-2", "req-3", "req-4"]
    assert list(lines[0]) == list(COLUMNS)
    assert [r["cost_usd"] for r in lines] == ["2.000000014", "3.000000021", "4.000000028"]
    assert lines[0]["tags"] == {"pr": "2"} and lines[0]["session_id"] == "s-1"
    assert [r["estimated"] for r in lines] == [False, True, False]

    parsed = list(csv.DictReader(io.StringIO(cli.ok("ledger", "export", *period))))
    assert [(r["request_id"], r["cost_usd"], r["estimated"], r["tags"]) for r in parsed] == [
        ("req-2", "2.000000014", "false", '{"pr": "2"}'),
        ("req-3", "3.000000021", "true", '{"pr": "3"}'),
        ("req-4", "4.000000028", "false", '{"pr": "4"}'),
    ]
    assert parsed[0]["agent_id"] == "" and parsed[0]["input_tokens"] == "2000"

    import pyarrow.parquet as pq

    target = tmp_path / "ledger.parquet"
    result = cli.run("ledger", "export", "--format", "parquet", "--output", str(target))
    assert result.exit_code == 0 and "wrote 5 ledger rows" in result.stderr
    table = pq.read_table(target)
    assert table.column_names == list(COLUMNS) and table.num_rows == 5
    assert table.column("cost_usd").to_pylist()[4] == Decimal("5.000000035")
    assert str(table.schema.field("started_at").type) == "timestamp[us, tz=UTC]"
    assert table.column("started_at").to_pylist()[0].isoformat() == "2026-03-01T10:00:00.000001+00:00"
    assert "needs --output" in cli.fails("ledger", "export", "--format", "parquet")


def test_parquet_export_writes_row_groups(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rows = [{**r.as_dict(), "tags": r.tags} for r in _export_rows()]
    heard: list[int] = []
    assert write_parquet(iter(rows), tmp_path / "l.parquet", heard.append, group_rows=2) == 5
    assert pq.ParquetFile(tmp_path / "l.parquet").metadata.num_row_groups == 3
    assert heard[-1] == 5
    assert write_parquet(iter([]), tmp_path / "empty.parquet") == 0
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_export_streams_and_stops_when_its_reader_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/big.db"
    store = open_store(url)
    store.migrate()
    store.insert_ledger_rows(
        [ledger_row(n, "t", f"2026-03-01T10:00:{n % 60:02d}.{n:06d}Z", n) for n in range(3000)]
    )
    # The store stays usable while an export reads (its own connection), and one read early
    # and dropped holds nothing the store needs to close.
    rows = store.iter_ledger_rows()
    assert next(rows)["request_id"] == "req-0"
    assert len(store.ledger_rows(latest=3)) == 3
    store.close()
    rows.close()

    # `spendgate ledger export | head -1`: the export ends (no hang, no traceback) once the pipe closes
    proc = subprocess.Popen(
        [sys.executable, "-m", "spendgate", "ledger", "export", "--format", "jsonl"],
        env={**os.environ, "SPENDGATE_DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["request_id"] == "req-0"
    proc.stdout.close()
    assert proc.wait(30) == 1
    assert b"Traceback" not in proc.stderr.read()


def test_a_table_too_wide_for_the_terminal_keeps_its_numbers_whole() -> None:
    from rich.console import Console

    from spendgate.cli import present as p

    rows = [
        {
            "request_id": f"sg-18ec9200d3c595c8-ddc9c21ece{n:02d}",
            "started_at": "2026-11-29T16:48:03.540433Z",
            "team": "platform-engineering",
            "use_case": "autonomous-agent",
            "model": "claude-sonnet-4-6",
            "input_tokens": 1234567,
            "cost_usd": "1234.56789",
            "status": "ok",
        }
        for n in range(3)
    ]
    columns = [
        p.text("request_id"),
        p.times("started_at", "started"),
        p.text("team"),
        p.text("use_case"),
        p.text("model"),
        p.counts("input_tokens", "input"),
        p.money("cost_usd", "cost"),
        p.token("status"),
    ]
    for width, left_out in ((200, None), (100, None), (80, "left out, too narrow: model, status")):
        buffer = io.StringIO()
        p.print_table(rows, columns, "Wide", out=Console(file=buffer, width=width))
        drawn = buffer.getvalue()
        assert max(len(line) for line in drawn.splitlines()) <= width
        for line in table_rows(drawn)[1:]:
            assert "1,234,567" in line and "$1,234.5679" in line  # never cut, never broken
        assert ("sg-18ec9200d3c595c8-ddc9c21ece00" in drawn) == (width == 200)  # ids give way first
        assert "team" in drawn and ("platform-engineering" in drawn) == (width == 200)
        assert (left_out is None and "left out" not in drawn) or (left_out and left_out in drawn)


def test_demo_prints_the_same_tables(tmp_path: Path) -> None:
    from tests.procs import free_port

    result = subprocess.run(
        [sys.executable, "-m", "spendgate", "demo", "--no-wait", "--calls", "12", "--port", str(free_port())],
        env={**os.environ, "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp_path}/demo.db"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Workload through the gateway (" not in out + result.stderr  # no bar in a pipe
    header, *rows = table_rows(out.split("Spend by team", 1)[1].split("Spend by use case", 1)[0])
    assert header == ["team", "requests", "input", "cache write", "cache read", "output", "cost"]
    assert rows[-1][0] == "total" and sum(int(r[1]) for r in rows[:-1]) == 12 == int(rows[-1][1])
    assert all(r[-1].startswith("$") and len(r[-1].split(".")[1]) == 4 for r in rows)
    savings = table_rows(out.split("Routing savings by rule", 1)[1])
    assert savings[0][-1] == "saved %" and savings[-1][0] == "total" and savings[-1][-1].endswith("%")
