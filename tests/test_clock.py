"""Timestamps: the fast path for ledger rows writes exactly what datetime would."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from spendgate.clock import from_epoch, iso


def test_from_epoch_matches_datetime_to_the_microsecond() -> None:
    rng = random.Random(18)
    moments = [rng.uniform(0, 4_102_444_800) for _ in range(20_000)]  # 1970 to 2100
    moments += [1_764_000_000 + f for f in (0.0, 0.0000005, 0.0000015, 0.9999994, 0.9999995, 0.9999999)]
    moments += [float(n) + 0.5e-6 * k for n in (1_700_000_000, 1_800_000_000) for k in range(1, 40)]
    for moment in moments:
        assert from_epoch(moment) == iso(datetime.fromtimestamp(moment, UTC)), moment
