"""The field order of the per-call values the request path builds positionally.

`pricing.new_tuple` builds `Usage`, `Cost`, `Metered`, `Measured`, `Attempts` and `Forwarded`
with `tuple.__new__` and every value in field order (half the instructions of the class call, on
every call). Reordering or adding a field would silently shift those values; this test fails
first, naming the places to update (`grep -rn new_tuple spendgate`)."""

from __future__ import annotations

from spendgate.forward import Attempts, Forwarded
from spendgate.meter import Measured
from spendgate.pricing import Cost, Usage
from spendgate.providers.base import Metered


def test_values_built_positionally_keep_their_field_order() -> None:
    assert Usage._fields == (
        "input_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cache_read_tokens",
        "output_tokens",
        "reasoning_tokens",
        "web_search_requests",
        "batch",
    )
    assert Cost._fields == ("nanos", "price_ref", "tier")
    assert Metered._fields == ("usage", "response_model", "estimated", "complete", "error_type")
    assert Measured._fields == ("status_code", "status", "metered", "streamed", "first_byte")
    assert Attempts._fields == ("total", "model", "price", "fallback_from", "sent_at", "upstream_request_id")
    assert Forwarded._fields == ("response", "attempts")
