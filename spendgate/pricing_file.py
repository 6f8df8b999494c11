"""The schema of SPENDGATE_PRICE_OVERRIDES_FILE (checked by `config_files.checked`).

Apart from `pricing.py` so that pydantic loads when a price file is read, not with every import of
the pricing helpers (the CLI formats dollars without it).
"""

from __future__ import annotations

from decimal import Decimal

from spendgate.config_files import FileModel


class Rates(FileModel):
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    long_context_threshold: int | None = None
    long_context_input: Decimal | None = None
    long_context_output: Decimal | None = None
    long_context_cache_read: Decimal | None = None
    long_context_cache_write_5m: Decimal | None = None
    long_context_cache_write_1h: Decimal | None = None
    web_search_per_k: Decimal = Decimal(10)


class OverridesFile(FileModel):
    models: dict[str, Rates] = {}
