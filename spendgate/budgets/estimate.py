"""The worst case a call can cost, reserved before it leaves.

Input is bounded from the body's size (a token is rarely shorter than 3 bytes of JSON, and
the reservation is settled to the real cost when the call ends); output is `max_tokens`
at the output price. Every input token is priced at the dearest input-side rate (a 1-hour
cache write), and the long-context tier applies when the bound passes its threshold.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from spendgate.pricing import ModelPrice

_PER_MTOK = Decimal(1_000_000)
_NANOS = Decimal(1_000_000_000)


def input_bound(body_bytes: int, bytes_per_token: int = 3) -> int:
    return max(1, -(-body_bytes // bytes_per_token))


def worst_case_nanos(price: ModelPrice, input_tokens: int, max_output_tokens: int) -> int:
    rates = (price.input, price.cache_write_5m, price.cache_write_1h)
    input_rate = max(rate.at(input_tokens) for rate in rates)
    usd = (input_tokens * input_rate + max_output_tokens * price.output.at(input_tokens)) / _PER_MTOK
    return int((usd * _NANOS).to_integral_value(rounding=ROUND_CEILING))
