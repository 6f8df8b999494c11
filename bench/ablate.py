"""What one part of Spendgate's work costs in the server: Spendgate with that part made a no-op.

    python bench/ablate.py [--variants no-settle,no-write,no-after,child-no-db,child-reads-only,child-apart]
                           [--rounds 2] [--modes json,stream] [--concurrency 50] [--seconds 5]

Beside the bare proxy, `shell` (bench/shell_proxy.py) and Spendgate as it is, each variant is
`spendgate serve` with a `sitecustomize.py` on its PYTHONPATH (written to a temporary folder) that
replaces one function:

- no-settle: `Settlement.record`, `after` and `settle` do nothing: no price, no row, no journal
  line, no metrics, no budget settle, so nothing to land either;
- no-write: `Journal.append` encodes the row as it does, but writes nothing (nothing to land);
- no-after: `Settlement.after` does nothing (the budget settle, the rate-limit slot, the metrics);
- child-no-db: the ingest child decodes every journal line but writes nothing to the database;
- child-reads-only: the ingest child reads the journal's bytes and decodes nothing.
- child-apart: nothing made a no-op; the ingest child is pinned to the machine's last CPU and the
  serving process to the others (`sched_setaffinity`), so landing rows cannot take the event
  loop's CPU: what the loop's own work a call allows (wrk and the fake upstream stay unpinned).

These are measurements, not builds: most variants leave their ledger incomplete by design, so there is no
ledger check. Per cell: req/s, share of bare in the same round, CPU a call of the serving
process's event-loop thread and of its children. Everything talks to 127.0.0.1 only, and every
load run is bounded in time.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from gap import cell, line
from targets import BENCH, Target, start_bare, start_fake, start_spendgate

# What each variant's sitecustomize.py replaces (run before spendgate's own modules are used).
VARIANTS: dict[str, str] = {
    "no-settle": """
import spendgate.settlement as S
S.Settlement.record = lambda self, call, attempts, measured: None
S.Settlement.after = lambda self, settled: None
S.Settlement.settle = lambda self, call, attempts, measured: None
""",
    "no-write": """
import orjson
import spendgate.ledger.journal as J
def append(self, row):
    orjson.dumps(row.__dict__, option=orjson.OPT_APPEND_NEWLINE)  # encoded, not written
    return self.current
J.Journal.append = append
""",
    "no-after": """
import spendgate.settlement as S
S.Settlement.after = lambda self, settled: None
""",
    "child-no-db": """
import spendgate.ledger.quarantine as Q
Q.land_lines = lambda store, lines, name: Q.Landed(inserted=len(lines))
""",
    "child-reads-only": """
import spendgate.ledger.journal as J
import spendgate.ledger.quarantine as Q
Q.land_lines = lambda store, lines, name: Q.Landed(inserted=len(lines))
J.decode_lines = lambda lines, name: [{}] * len(lines)
""",
    "child-apart": """
import os
import spendgate.ledger.ingest as I
_start = I.IngestProcess.start
def start(self):
    _start(self)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(self._process.pid, {cpus[-1]})
        os.sched_setaffinity(0, set(cpus[:-1]))
I.IngestProcess.start = start
""",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"some of: {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default="json,stream", help="json and/or stream")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=5, help="wrk seconds a cell (after 1 s of warm-up).")
    args = parser.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.variants or any(v not in VARIANTS for v in args.variants):
        parser.error(f"--variants: some of {', '.join(VARIANTS)}")
    if not args.modes or any(m not in ("json", "stream") for m in args.modes):
        parser.error("--modes: json and/or stream")
    if not 1 <= args.rounds <= 10 or not 1 <= args.seconds <= 30:
        parser.error("--rounds 1-10 and --seconds 1-30 keep a run bounded")
    return args


def main() -> None:
    args = parse_args()
    logs = Path(tempfile.mkdtemp(prefix="spendgate-ablate-"))
    fake = start_fake(logs, 0.0)
    targets: dict[str, Target] = {}
    try:
        targets["bare"] = start_bare(logs, fake)
        targets["shell"] = start_spendgate(logs, fake, "shell", entry=(str(BENCH / "shell_proxy.py"),))
        for variant in args.variants:
            site = logs / f"site-{variant}"
            site.mkdir()
            (site / "sitecustomize.py").write_text(VARIANTS[variant])
            env = {"PYTHONPATH": str(site)}
            targets[variant] = start_spendgate(logs, fake, variant, extra_env=env)
        targets["spendgate"] = start_spendgate(logs, fake)
        print(f"c={args.concurrency}, {args.rounds} round(s) of {', '.join(targets)}; "
              f"wrk {args.seconds} s a cell after 1 s of warm-up")
        for number in range(1, args.rounds + 1):
            for mode in args.modes:
                bare_rps = 0.0
                for name, target in targets.items():
                    result = cell(target, mode, args, f"ablate-{name}-{mode}-{number}", pause=False)
                    rps = float(result.get("rps") or 0.0)
                    bare_rps = bare_rps or rps
                    share = 100 * rps / bare_rps if bare_rps else 0.0
                    print(f"  r{number} {mode:6} {name:17} {line(result, share)}", flush=True)
    finally:
        for target in targets.values():
            target.stop()
        fake.stop()
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
