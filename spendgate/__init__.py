"""Spendgate: a token-FinOps gateway for the Anthropic and OpenAI APIs."""

__version__ = "0.1.0"
