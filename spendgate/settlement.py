"""Steps 7-8, settle and record: cost what was measured, give back what admission held, and
append exactly one ledger row (journaled at once, written to the database by another thread).
`record` is what must precede the answer's last byte (the price and the journaled row); `after`
(the budget settle, the rate-limit slot, the metrics) runs once the answer is sent.

Settlement holds only what it needs: the budgets (to settle a reservation and give back a
rate-limit slot), the ledger writer and the metrics. The proxy calls `settle` once per
admitted call that reached the provider or was refused by a budget, and `release` for one
that ends without a row.
"""

from __future__ import annotations

import logging
import time

from spendgate.admission import Admitted
from spendgate.budgets.enforcer import BudgetEnforcer
from spendgate.forward import Attempts
from spendgate.ledger import LedgerWriter
from spendgate.meter import Measured
from spendgate.metrics import Metrics
from spendgate.models import LedgerRow
from spendgate.pricing import Usage, cost_of

log = logging.getLogger(__name__)


# What `Settlement.record` hands `Settlement.after`: the call, its cost in nano-dollars, its usage,
# its row, seconds from arrival to the row's end, and the upstream's share of them (None: never
# sent). A plain tuple: built on every call.
Settled = tuple[Admitted, int, Usage, LedgerRow, float, float | None]


class Settlement:
    def __init__(self, budgets: BudgetEnforcer, ledger: LedgerWriter, metrics: Metrics) -> None:
        self._budgets = budgets
        self._ledger = ledger
        self._metrics = metrics

    def settle(self, call: Admitted, attempts: Attempts | None, measured: Measured) -> None:
        """Price the usage, settle the reservation to it, record the row (attempts None: never sent)."""
        self.after(self.record(call, attempts, measured))

    def record(self, call: Admitted, attempts: Attempts | None, measured: Measured) -> Settled:
        """What must precede the response's last byte: price the usage and journal the row (so a
        kill -9 after that byte loses nothing). The rest of settling is `after`'s, which the proxy
        calls once the answer is sent: the client's latency does not wait for it."""
        usage = measured.metered.usage
        price = attempts.price if attempts is not None else call.price
        cost = cost_of(price, usage) if measured.status_code < 400 else None
        counterfactual = None
        if cost is not None and call.requested_price is not None:
            same = call.requested_price is price  # not routed: the counterfactual is the cost
            counterfactual = cost.nanos if same else cost_of(call.requested_price, usage).nanos
        ended = time.time()
        row = LedgerRow.of_call(call, attempts, measured, cost, counterfactual, ended)
        self._ledger.record(row)
        # upstream time: first attempt to the last byte read (JSON: first_byte is set after the body)
        upstream_s = None
        if attempts is not None:
            last_byte = ended if measured.streamed or measured.first_byte is None else measured.first_byte
            upstream_s = last_byte - attempts.sent_at
        return call, cost.nanos if cost is not None else 0, usage, row, ended - call.started, upstream_s

    def after(self, settled: Settled) -> None:
        """Settle the reservation to the cost, give back the rate-limit slot, count the call in the
        metrics. Never raises: it runs once the answer has gone (or as it goes), which an error
        here must not break; the row is already journaled."""
        call, cost_nanos, usage, row, seconds, upstream_s = settled
        try:
            if call.budget is not None:
                self._budgets.finish(call.budget, cost_nanos, call.request_id)
            self._budgets.rate_settle(call.principal, usage)
            self._metrics.observe_call(row, call.principal.team_name, seconds, upstream_s)
        except Exception:
            log.exception("settling %s after its answer failed (its ledger row is recorded)", call.request_id)

    def release(self, call: Admitted) -> None:
        """A call refused after admission (no row) gives back its reservation and rate-limit slot."""
        if call.budget is not None:
            self._budgets.finish(call.budget, 0, call.request_id)
        self._budgets.rate_release(call.principal, 0)
