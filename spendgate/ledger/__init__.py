"""The ledger: a crash-safe journal on the request path, one batching writer off it."""

from spendgate.ledger.journal import Journal, recover_journals
from spendgate.ledger.writer import LedgerWriter

__all__ = ["Journal", "LedgerWriter", "recover_journals"]
