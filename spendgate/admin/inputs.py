"""What every admin API request body shares: text fit for the database, numbers in range.

Names are capped (`MAX_NAME_CHARS`), every other string at `MAX_TEXT_CHARS`, and no string may
carry a control character (PostgreSQL's text columns refuse NUL; the rest breaks tables and logs).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spendgate.providers.base import MAX_NAME_CHARS, has_control_chars

MAX_TEXT_CHARS = 2000
MAX_COUNT = 2**31 - 1  # rate limits and percentages: far past any real one, far inside BIGINT

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class AdminInput(BaseModel):
    model_config = ConfigDict(str_max_length=MAX_TEXT_CHARS)

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        for text in _strings(value):
            if has_control_chars(text):
                raise ValueError("must not contain control characters")
        return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []
