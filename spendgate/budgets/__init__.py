"""Budgets: scopes, periods, tiers, reservations, exemptions, rate limits."""
