"""Derived figures (added latency, share of bare throughput), the issue's targets, and the tables."""

from __future__ import annotations

import statistics
from typing import Any

from rich.console import Console
from rich.table import Table

Cell = dict[str, Any]

ADDED_P50_LIMIT_MS = 1.0
SHARE_OF_BARE_MIN = 70.0
LITELLM_MULTIPLE_MIN = 20.0
RSS_LIMIT_MB = 150.0
TARGET_ORDER = ("direct", "bare", "spendgate", "sg+budgets", "sg+redis", "litellm")


MEDIAN_FIELDS = ("rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "cpu_ms_per_call", "other_cpu_pct")


def aggregate(samples: list[Cell]) -> list[Cell]:
    """One cell per target x mode x concurrency: the median of each figure over the rounds."""
    groups: dict[tuple[str, str, int], list[Cell]] = {}
    for sample in samples:
        groups.setdefault((sample["target"], sample["mode"], sample["concurrency"]), []).append(sample)
    cells = []
    for (target, mode, concurrency), runs in groups.items():
        cell: Cell = {"target": target, "mode": mode, "concurrency": concurrency, "rounds": len(runs)}
        for name in MEDIAN_FIELDS:
            values = [r[name] for r in runs if r.get(name) is not None]
            cell[name] = round(statistics.median(values), 3) if values else None
        cell["errors"] = sum(int(r.get("errors", 0)) for r in runs)
        cell["unsent"] = sum(int(r.get("unsent", 0)) for r in runs)
        cell["ok"] = sum(int(r.get("ok", 0)) for r in runs)
        cell["peak_rss_mb"] = max((r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb")), default=None)
        cell["first_error"] = next((r["first_error"] for r in runs if r.get("first_error")), None)
        cells.append(cell)
    return cells


def find(cells: list[Cell], target: str, mode: str, concurrency: int) -> Cell | None:
    for cell in cells:
        if (cell["target"], cell["mode"], cell["concurrency"]) == (target, mode, concurrency):
            return cell
    return None


def derive(cells: list[Cell]) -> None:
    """Add added_p50_ms (vs direct) and pct_of_bare to every cell, in place."""
    for cell in cells:
        direct = find(cells, "direct", cell["mode"], cell["concurrency"])
        bare = find(cells, "bare", cell["mode"], cell["concurrency"])
        cell["added_p50_ms"] = (
            round(cell["p50_ms"] - direct["p50_ms"], 3)
            if direct and cell.get("p50_ms") is not None and direct.get("p50_ms") is not None
            else None
        )
        has_rps = bare is not None and bare.get("rps") and cell.get("rps")
        cell["pct_of_bare"] = round(100 * cell["rps"] / bare["rps"], 1) if bare and has_rps else None


def evaluate(cells: list[Cell], modes: list[str], concurrencies: list[int]) -> list[dict[str, Any]]:
    """The issue's targets for Spendgate, each with what was measured and whether it is met."""
    loaded = [c for c in concurrencies if c > 1] or concurrencies  # c=1 is latency-bound: see p50
    results = []

    def verdict(name: str, values: list[tuple[str, float | None]], ok: Any, unit: str) -> None:
        measured = [(label, v) for label, v in values if v is not None]
        met = bool(measured) and len(measured) == len(values) and all(ok(v) for _, v in measured)
        results.append({
            "target": name,
            "measured": {label: v for label, v in values},
            "met": met if measured else None,
            "shown": ", ".join(f"{label} {v:g}{unit}" for label, v in measured) or "not measured",
        })

    def sg(mode: str, c: int) -> Cell | None:
        return find(cells, "spendgate", mode, c)

    if 1 in concurrencies:
        verdict(
            f"added p50 at concurrency 1 <= {ADDED_P50_LIMIT_MS:g} ms",
            [(m, (sg(m, 1) or {}).get("added_p50_ms")) for m in modes],
            lambda v: v <= ADDED_P50_LIMIT_MS, " ms",
        )
    verdict(
        f"throughput >= {SHARE_OF_BARE_MIN:g}% of bare (c>1)",
        [(f"{m} c={c}", (sg(m, c) or {}).get("pct_of_bare")) for m in modes for c in loaded],
        lambda v: v >= SHARE_OF_BARE_MIN, "%",
    )
    multiples: list[tuple[str, float | None]] = []
    for m in modes:
        for c in loaded:
            mine, theirs = sg(m, c), find(cells, "litellm", m, c)
            value = round(mine["rps"] / theirs["rps"], 1) if mine and theirs and theirs.get("rps") else None
            multiples.append((f"{m} c={c}", value))
    verdict(
        f"throughput >= {LITELLM_MULTIPLE_MIN:g}x LiteLLM's (c>1)", multiples,
        lambda v: v >= LITELLM_MULTIPLE_MIN, "x",
    )
    peak = max((c.get("peak_rss_mb") or 0.0 for c in cells if c["target"] == "spendgate"), default=None)
    verdict(
        f"peak RSS <= {RSS_LIMIT_MB:g} MB", [("spendgate", peak or None)], lambda v: v <= RSS_LIMIT_MB, " MB"
    )
    return results


def fmt(value: Any, spec: str = ".1f", signed: bool = False) -> str:
    if value is None:
        return "-"
    return format(value, ("+" if signed else "") + spec)


def print_tables(console: Console, cells: list[Cell], targets: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for name in ("target", "mode", "conc", "req/s", "p50 ms", "p99 ms", "+p50 vs direct ms", "% of bare",
                 "CPU ms/call", "peak RSS MB", "errors", "other CPU %"):
        table.add_column(name, justify="left" if name in ("target", "mode") else "right")
    order = {name: i for i, name in enumerate(TARGET_ORDER)}
    rows = sorted(cells, key=lambda c: (c["mode"], c["concurrency"], order.get(c["target"], 99)))
    previous: tuple[str, int] | None = None
    for cell in rows:
        group = (cell["mode"], cell["concurrency"])
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        errors, unsent = cell.get("errors", 0), cell.get("unsent", 0)
        shown_errors = f"[red]{errors}[/red]" if errors else "0"
        if unsent:
            shown_errors += f" [yellow](+{unsent} unsent: time cap)[/yellow]"
        table.add_row(
            cell["target"], cell["mode"], str(cell["concurrency"]), fmt(cell.get("rps"), ".0f"),
            fmt(cell.get("p50_ms"), ".2f"), fmt(cell.get("p99_ms"), ".2f"),
            fmt(cell.get("added_p50_ms"), ".2f", signed=True), fmt(cell.get("pct_of_bare"), ".0f"),
            fmt(cell.get("cpu_ms_per_call"), ".2f"), fmt(cell.get("peak_rss_mb"), ".0f"),
            shown_errors, fmt(cell.get("other_cpu_pct"), ".0f"),
        )
    console.print(table)
    goals = Table(title="Targets from the issue (Spendgate)", title_justify="left")
    goals.add_column("target")
    goals.add_column("measured")
    goals.add_column("met")
    for goal in targets:
        met = goal["met"]
        mark = "[green]yes[/green]" if met else "[red]NO[/red]"
        if met is None:
            mark = "[yellow]not measured[/yellow]"
        goals.add_row(goal["target"], goal["shown"], mark)
    console.print(goals)
