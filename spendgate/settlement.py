"""Steps 7-8, settle and record: cost what was measured, give back what admission held, and
append exactly one ledger row (journaled at once, written to the database by another thread).

Settlement holds only what it needs: the budgets (to settle a reservation and give back a
rate-limit slot), the ledger writer and the metrics. The proxy calls `settle` once per
admitted call that reached the provider or was refused by a budget, and `release` for one
that ends without a row.
"""

from __future__ import annotations

import time

from spendgate.admission import Admitted
from spendgate.budgets.enforcer import BudgetEnforcer
from spendgate.forward import Attempts
from spendgate.ledger import LedgerWriter
from spendgate.meter import Measured
from spendgate.metrics import Metrics
from spendgate.models import LedgerRow
from spendgate.pricing import cost_of


class Settlement:
    def __init__(self, budgets: BudgetEnforcer, ledger: LedgerWriter, metrics: Metrics) -> None:
        self._budgets = budgets
        self._ledger = ledger
        self._metrics = metrics

    def settle(self, call: Admitted, attempts: Attempts | None, measured: Measured) -> None:
        """Price the usage, settle the reservation to it, record the row (attempts None: never sent)."""
        usage = measured.metered.usage
        price = attempts.price if attempts is not None else call.price
        cost = cost_of(price, usage) if measured.status_code < 400 else None
        counterfactual = None
        if cost is not None and call.requested_price is not None:
            same = call.requested_price is price  # not routed: the counterfactual is the cost
            counterfactual = cost.nanos if same else cost_of(call.requested_price, usage).nanos
        if call.budget is not None:
            self._budgets.finish(call.budget, cost.nanos if cost else 0, call.request_id)
        self._budgets.rate_settle(call.principal, usage)
        ended = time.time()
        row = LedgerRow.of_call(call, attempts, measured, cost, counterfactual, ended)
        self._ledger.record(row)
        # upstream time: first attempt to the last byte read (JSON: first_byte is set after the body)
        upstream_s = None
        if attempts is not None:
            last_byte = ended if measured.streamed or measured.first_byte is None else measured.first_byte
            upstream_s = last_byte - attempts.sent_at
        self._metrics.observe_call(row, call.principal.team_name, ended - call.started, upstream_s)

    def release(self, call: Admitted) -> None:
        """A call refused after admission (no row) gives back its reservation and rate-limit slot."""
        if call.budget is not None:
            self._budgets.finish(call.budget, 0, call.request_id)
        self._budgets.rate_release(call.principal, 0)
