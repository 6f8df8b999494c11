"""Anthropic Message Batches through Spendgate: who created a batch, and its calls in the ledger.

A batch is created, polled and cancelled through Spendgate like any call; its requests are
billed at the batch rate when Anthropic has processed them, and their usage is only in the
results file. So the calls reach the ledger when the results are first read through Spendgate,
attributed to the key (and use case, tags, session) that created the batch, exactly once.
"""
