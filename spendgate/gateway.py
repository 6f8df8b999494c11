"""The gateway's parts, built once from Settings by the app factory (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from spendgate.auth import Keyring
from spendgate.budgets.enforcer import BudgetEnforcer
from spendgate.config import Settings
from spendgate.inference.infer import Inferrer
from spendgate.ledger import LedgerWriter
from spendgate.metrics import Metrics
from spendgate.pricing import Pricer
from spendgate.providers.anthropic import AnthropicProvider
from spendgate.providers.bedrock import BedrockProvider
from spendgate.providers.openai import OpenAIProvider
from spendgate.providers.openai_embeddings import OpenAIEmbeddingsProvider
from spendgate.providers.openai_responses import OpenAIResponsesProvider
from spendgate.providers.vertex import VertexProvider
from spendgate.routing.router import Router
from spendgate.routing.sticky import Sticky
from spendgate.store.base import Store
from spendgate.upstream import Upstream


@dataclass(slots=True)
class Gateway:
    settings: Settings
    store: Store
    keyring: Keyring
    pricer: Pricer
    anthropic: AnthropicProvider
    openai: OpenAIProvider
    openai_responses: OpenAIResponsesProvider
    openai_embeddings: OpenAIEmbeddingsProvider
    bedrock: BedrockProvider
    vertex: VertexProvider
    upstream: Upstream
    ledger: LedgerWriter
    budgets: BudgetEnforcer
    router: Router
    metrics: Metrics
    inferrer: Inferrer
    sticky: Sticky  # sessions' held routing decisions: in Redis when there is one
