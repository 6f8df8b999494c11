"""Figures over the rounds, the ratios to the bare proxy, the issue's targets, warnings, the tables."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

Cell = dict[str, Any]

ADDED_P50_OVER_BARE_LIMIT_MS = 0.15
SHARE_OF_BARE_MIN = 70.0
LITELLM_MULTIPLE_MIN = 20.0
RSS_LIMIT_MB = 150.0
TARGET_ORDER = (
    "direct", "bare", "sg-base", "spendgate", "sg-ingest", "sg-thread", "sg-w2", "sg+budgets", "sg+redis",
    "litellm",
)

# Above these, a cell's figures say more about the machine than about the target.
NOISY_OTHER_CPU_PCT = 10.0
LOADGEN_SATURATED_CORE_PCT = 80.0  # of each wrk thread's core
MACHINE_SATURATED_PCT = 90.0
TARGET_STARVED_CORE_PCT = 90.0  # of each serving process's core, when the machine is saturated

# "best": the best of the rounds per figure (what the target can do when the machine lets it);
# "median": the middle one. Either way, ratios are taken between the aggregated figures.
HIGHER_IS_BETTER = ("rps",)
LOWER_IS_BETTER = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "cpu_ms_per_call")
DIAGNOSTIC = ("target_core_pct", "loadgen_core_pct", "fake_core_pct", "busy_pct")  # median always
WORST = ("other_cpu_pct",)  # max: a disturbed round should show


def aggregate(samples: list[Cell], stat: str = "best") -> list[Cell]:
    """One cell per target x mode x concurrency over the rounds."""
    groups: dict[tuple[str, str, int], list[Cell]] = {}
    for sample in samples:
        groups.setdefault((sample["target"], sample["mode"], sample["concurrency"]), []).append(sample)
    pick_high: Callable[[list[float]], float] = max if stat == "best" else statistics.median
    pick_low: Callable[[list[float]], float] = min if stat == "best" else statistics.median
    cells = []
    for (target, mode, concurrency), runs in groups.items():
        cell: Cell = {"target": target, "mode": mode, "concurrency": concurrency, "rounds": len(runs),
                      "stat": stat, "processes": runs[0].get("processes", 1)}

        for name in HIGHER_IS_BETTER:
            cell[name] = over(runs, name, pick_high)
        for name in LOWER_IS_BETTER:
            cell[name] = over(runs, name, pick_low)
        for name in DIAGNOSTIC:
            cell[name] = over(runs, name, statistics.median)
        for name in WORST:
            cell[name] = over(runs, name, max)
        cell["rps_range"] = [over(runs, "rps", min), over(runs, "rps", max)]
        cell["errors"] = sum(int(r.get("errors", 0)) + int(r.get("warmup_errors", 0)) for r in runs)
        cell["ok"] = sum(int(r.get("ok", 0)) for r in runs)
        cell["peak_rss_mb"] = max((r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb")), default=None)
        cell["first_error"] = next((r["first_error"] for r in runs if r.get("first_error")), None)
        cell["flags"] = sorted({flag for r in runs for flag in flags_of(r)})
        cells.append(cell)
    return cells


def over(runs: list[Cell], name: str, pick: Callable[[list[float]], float]) -> float | None:
    values = [r[name] for r in runs if r.get(name) is not None]
    return round(pick(values), 3) if values else None


def flags_of(sample: Cell) -> list[str]:
    """Why a sample's throughput may not be the target's own: wrk, a starved target, other work."""
    out = []
    if (sample.get("other_cpu_pct") or 0) > NOISY_OTHER_CPU_PCT:
        out.append("noisy")
    threads = int(sample.get("threads", 1) or 1)
    if (sample.get("loadgen_core_pct") or 0) >= LOADGEN_SATURATED_CORE_PCT * threads:
        out.append("wrk-bound")
    processes = int(sample.get("processes", 1) or 1)
    if (
        sample.get("concurrency", 1) > 1
        and sample.get("target_core_pct") is not None
        and (sample.get("busy_pct") or 0) >= MACHINE_SATURATED_PCT
        and sample["target_core_pct"] < TARGET_STARVED_CORE_PCT * processes
    ):
        out.append("starved")
    return out


def find(cells: list[Cell], target: str, mode: str, concurrency: int) -> Cell | None:
    for cell in cells:
        if (cell["target"], cell["mode"], cell["concurrency"]) == (target, mode, concurrency):
            return cell
    return None


def p50_minus(cell: Cell, other: Cell | None) -> float | None:
    if other is None or cell.get("p50_ms") is None or other.get("p50_ms") is None:
        return None
    return round(cell["p50_ms"] - other["p50_ms"], 3)


def derive(cells: list[Cell]) -> None:
    """Add added_p50_ms (vs direct), over_bare_p50_ms and pct_of_bare to every cell, in place."""
    for cell in cells:
        direct = find(cells, "direct", cell["mode"], cell["concurrency"])
        bare = find(cells, "bare", cell["mode"], cell["concurrency"])

        cell["added_p50_ms"] = p50_minus(cell, direct)
        cell["over_bare_p50_ms"] = p50_minus(cell, bare)
        has_rps = bare is not None and bare.get("rps") and cell.get("rps")
        cell["pct_of_bare"] = round(100 * cell["rps"] / bare["rps"], 1) if bare and has_rps else None
        cell["cpu_x_bare"] = (
            round(cell["cpu_ms_per_call"] / bare["cpu_ms_per_call"], 2)
            if bare and cell.get("cpu_ms_per_call") and bare.get("cpu_ms_per_call")
            else None
        )


def evaluate(cells: list[Cell], modes: list[str], concurrencies: list[int]) -> list[dict[str, Any]]:
    """The issue's targets for Spendgate, each with what was measured and whether it is met."""
    loaded = [c for c in concurrencies if c > 1] or concurrencies  # c=1 is latency-bound: see p50
    results = []

    def verdict(
        name: str, values: list[tuple[str, float | None]], ok: Any, unit: str, doubtful: Sequence[str] = ()
    ) -> None:
        measured = [(label, v) for label, v in values if v is not None]
        met = bool(measured) and len(measured) == len(values) and all(ok(v) for _, v in measured)
        shown = ", ".join(f"{label} {v:g}{unit}" for label, v in measured) or "not measured"
        results.append({
            "target": name,
            "measured": {label: v for label, v in values},
            "met": (met and not doubtful) if measured else None,
            "shown": shown + "".join(f"; {note}" for note in doubtful),
        })

    def sg(mode: str, c: int) -> Cell | None:
        return find(cells, "spendgate", mode, c)

    if 1 in concurrencies:
        verdict(
            f"added p50 at c=1 over the bare proxy <= {ADDED_P50_OVER_BARE_LIMIT_MS:g} ms",
            [(m, (sg(m, 1) or {}).get("over_bare_p50_ms")) for m in modes],
            lambda v: v <= ADDED_P50_OVER_BARE_LIMIT_MS, " ms",
        )
    shares, doubtful = [], []
    for m in modes:
        for c in loaded:
            shares.append((f"{m} c={c}", (sg(m, c) or {}).get("pct_of_bare")))
            # A bare cell held back (starved of CPU, or wrk at its limit) understates the bare
            # proxy and so flatters the share: such a cell cannot meet the target.
            held = sorted(set((find(cells, "bare", m, c) or {}).get("flags", [])) & {"starved", "wrk-bound"})
            if held:
                doubtful.append(f"{m} c={c} (bare {'/'.join(held)}: not counted)")
    verdict(
        f"throughput >= {SHARE_OF_BARE_MIN:g}% of bare (c>1)", shares, lambda v: v >= SHARE_OF_BARE_MIN, "%",
        doubtful,
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


def paired_shares(samples: list[Cell], target: str = "spendgate") -> dict[str, list[float]]:
    """A target's throughput as a % of the bare proxy's in the same round, per mode and concurrency
    (c>1). The two cells of a round run seconds apart, so on a machine whose speed drifts from
    minute to minute these pairs move less than the best (or median) of each target taken apart,
    which may come from different rounds. Shown beside the verdict, which stays on the aggregates."""
    by_round: dict[tuple[str, int, int], dict[str, float]] = {}
    for sample in samples:
        if sample.get("concurrency", 1) > 1 and sample.get("rps"):
            key = (sample["mode"], sample["concurrency"], sample.get("round", 0))
            by_round.setdefault(key, {})[sample["target"]] = sample["rps"]
    shares: dict[str, list[float]] = {}
    for (mode, concurrency, _), rps in sorted(by_round.items()):
        if target in rps and rps.get("bare"):
            shares.setdefault(f"{mode} c={concurrency}", []).append(round(100 * rps[target] / rps["bare"], 1))
    return shares


def paired_lines(shares: dict[str, list[float]], target: str = "spendgate") -> list[str]:
    """`paired_shares(samples, target)` as lines of text, naming the target."""
    name = "Spendgate" if target == "spendgate" else target
    return [
        f"{name}'s share of bare round by round, {label}: {', '.join(f'{v:g}%' for v in values)} "
        f"(median {statistics.median(values):g}%)"
        for label, values in shares.items()
    ]


def warnings(cells: list[Cell]) -> list[str]:
    """One line per kind of disturbed cell, naming the cells."""
    explain = {
        "wrk-bound": f"wrk used >= {LOADGEN_SATURATED_CORE_PCT:g}% of its thread's core: the load "
                     "generator may limit these cells (raise --wrk-threads)",
        "starved": f"the machine was >= {MACHINE_SATURATED_PCT:g}% busy while the target used less "
                   f"than {TARGET_STARVED_CORE_PCT:g}% of a core: wrk, the fake upstream or other work "
                   "(see their core % columns) took CPU the target could have used",
        "noisy": f"processes outside the benchmark used more than {NOISY_OTHER_CPU_PCT:g}% of the CPUs "
                 "in at least one round: treat them with care, or run again on a quiet machine",
    }
    out = []
    for flag, text in explain.items():
        hit = [f"{c['target']} {c['mode']} c={c['concurrency']}" for c in cells if flag in c.get("flags", [])]
        if hit:
            out.append(f"{len(hit)} cell(s) {flag}: {text}. ({'; '.join(hit)})")
    return out


def fmt(value: Any, spec: str = ".1f", signed: bool = False) -> str:
    if value is None:
        return "-"
    return format(value, ("+" if signed else "") + spec)


def print_tables(console: Console, cells: list[Cell], targets: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for name in ("target", "mode", "conc", "req/s", "p50 ms", "p99 ms", "+p50 vs bare ms", "% of bare",
                 "CPU ms/call", "target core %", "wrk core %", "fake core %", "other CPU %",
                 "peak RSS MB", "errors", "flags"):
        table.add_column(name, justify="left" if name in ("target", "mode", "flags") else "right")
    order = {name: i for i, name in enumerate(TARGET_ORDER)}
    rows = sorted(cells, key=lambda c: (c["mode"], c["concurrency"], order.get(c["target"], 99)))
    previous: tuple[str, int] | None = None
    for cell in rows:
        group = (cell["mode"], cell["concurrency"])
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        errors = cell.get("errors", 0)
        table.add_row(
            cell["target"], cell["mode"], str(cell["concurrency"]), fmt(cell.get("rps"), ".0f"),
            fmt(cell.get("p50_ms"), ".3f"), fmt(cell.get("p99_ms"), ".2f"),
            fmt(cell.get("over_bare_p50_ms"), ".3f", signed=True), fmt(cell.get("pct_of_bare"), ".0f"),
            fmt(cell.get("cpu_ms_per_call"), ".3f"), fmt(cell.get("target_core_pct"), ".0f"),
            fmt(cell.get("loadgen_core_pct"), ".0f"), fmt(cell.get("fake_core_pct"), ".0f"),
            fmt(cell.get("other_cpu_pct"), ".0f"), fmt(cell.get("peak_rss_mb"), ".0f"),
            f"[red]{errors}[/red]" if errors else "0", ",".join(cell.get("flags", [])),
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
