"""The upstream APIs Spendgate meters, one module each, behind `base.Provider`.

A new API is a new module here (its parsing, attempts, usage, error vocabulary) and a line in
`PROVIDERS`; nothing outside this package asks which provider it is talking to.
"""

from __future__ import annotations

from collections.abc import Callable

from spendgate.providers.anthropic import AnthropicProvider
from spendgate.providers.base import Provider
from spendgate.providers.openai import OpenAIProvider

# name -> an adapter without a provider key, for work that sends nothing (`spendgate route explain`)
PROVIDERS: dict[str, Callable[[], Provider]] = {
    "anthropic": lambda: AnthropicProvider(None),
    "openai": lambda: OpenAIProvider(None),
}


def offline_provider(name: str) -> Provider:
    return PROVIDERS[name]()
