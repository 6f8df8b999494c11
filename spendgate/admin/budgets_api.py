"""Admin API routes for budgets, exemptions and per-key rate limits.

Included by `admin.api` under the master-key guard and its error mapping. The operations are
the CLI's (`admin.budget_service`); after a change this process reloads budgets (or keys) at once,
other replicas within SPENDGATE_BUDGET_REFRESH_S.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from spendgate.admin import budget_service
from spendgate.admin.inputs import MAX_COUNT, AdminInput, Name
from spendgate.budgets.model import PERIODS, SCOPE_TYPES, TIERS_HELP, Exemption, Tier
from spendgate.budgets.recommend import RECOMMENDED_TIERS, tiers_text
from spendgate.budgets.recommend import apply as apply_recommendations
from spendgate.gateway import Gateway

_SINCE = Query(None, description="ISO date or datetime, inclusive.")
_UNTIL = Query(None, description="ISO date or datetime, exclusive.")


class TierModel(AdminInput):
    name: Name = Field(examples=["amber"])
    percent: int = Field(ge=0, le=MAX_COUNT, description="Percent of the budget's amount.", examples=[110])
    action: str | None = Field(None, description="e.g. downgrade:fast (amber).")


class BudgetIn(AdminInput):
    name: Name = Field(examples=["team-platform"])
    scope: str = Field(description="One of: " + ", ".join(SCOPE_TYPES) + ".", examples=["team"])
    value: str = Field(
        min_length=1,
        description="Name or id (org/team/user/key), k=v (tag), a session id or '*' (a cap per session).",
        examples=["platform"],
    )
    amount_usd: Decimal = Field(description="The budget in USD (string or number).", examples=["500"])
    period: str = Field("month", description="One of: " + ", ".join(PERIODS) + ".")
    timezone: str = Field(
        "UTC", description="Periods start at local midnight here.", examples=["Europe/Berlin"]
    )
    start: str | None = Field(
        None, description="Fixed period only: ISO start (in `timezone` without offset)."
    )
    end: str | None = Field(None, description="Fixed period only: ISO end, exclusive.")
    tiers: str | list[TierModel] | None = Field(
        None, description="Default alert=80,amber=110,hard=150. " + TIERS_HELP + ", or a list."
    )
    mode: Literal["enforce", "observe"] = Field("enforce", description="observe: record, block nothing.")


class BudgetOut(BaseModel):
    id: str
    name: str
    scope: str = Field(description="scope_type:value, with names for org/team/user/key.")
    scope_type: str
    scope_value: str
    amount_usd: str = Field(description="Exact decimal dollars.")
    hard_limit_usd: str = Field(description="Where calls are refused: amount x the hard tier's percent.")
    period: str
    timezone: str
    window_start: str | None = None
    window_end: str | None = None
    tiers: list[TierModel]
    mode: str
    created_at: str
    revoked_at: str | None = None


class BudgetStatusOut(BudgetOut):
    status: str = Field(description="active, not started, ended or revoked.")
    period_key: str = Field(examples=["2026-11"])
    period_start: str
    reset_at: str | None = None
    spent_usd: str = Field(description="Settled spend in the period, from the ledger.")
    percent_used: float = Field(description="Spend as a percentage of the amount.")
    tier_reached: str | None = None
    note: str | None = None


class BudgetEventOut(BaseModel):
    budget: str
    budget_id: str
    scope: str
    period_key: str
    tier: str
    percent: int
    threshold_usd: str
    spend_usd: str = Field(description="Spend in the period right after the crossing.")
    crossed_at: str
    observed: bool = Field(description="A hard tier passed in observation mode (nothing blocked).")
    request_id: str | None = None


class WouldBlockRow(BaseModel):
    would_block: str = Field(description="The budget's name.")
    scope: str | None = None
    mode: str | None = None
    requests: int
    cost_usd: str
    first_at: str
    last_at: str


class RecommendationOut(BaseModel):
    group: str
    name: str
    id: str
    budget_name: str
    window_days: int
    first_day: str
    days_observed: int
    days_with_data: int
    total_usd: str
    avg_day_usd: str
    p95_day_usd: str
    max_day_usd: str
    baseline_usd: str = Field(description="The proposed monthly amount: average day x 30.4.")
    baseline_basis: str
    alert_usd: str
    soft_usd: str = Field(description="The amber tier: 140% of the baseline.")
    hard_usd: str = Field(description="The hard limit: 200% of the baseline.")
    tiers: str
    action: str | None = Field(None, description="With apply: created or skipped.")
    budget_id: str | None = None


class ExemptionIn(AdminInput):
    budget: str = Field(min_length=1, description="Budget name or id.")
    amount_usd: Decimal | None = Field(None, description="Extra headroom in USD...")
    percent: int | None = Field(None, ge=0, le=MAX_COUNT, description="...or as a percentage of the budget.")
    hours: float | None = Field(None, description="From now, for this many hours...")
    start: str | None = Field(None, description="...or from (ISO; the budget's time zone without offset)")
    end: str | None = Field(None, description="...until (exclusive).")
    use_case: str | None = Field(None, description="Only calls with this use case get the headroom.")
    reason: str = Field(min_length=1)
    requested_by: str = Field(min_length=1)


class DecisionIn(AdminInput):
    by: str = Field(min_length=1, description="Who decides; not the requester.")
    note: str | None = None


class ExemptionOut(BaseModel):
    id: str
    budget: str | None = None
    budget_id: str
    extra_usd: str | None = Field(None, description="Headroom it adds, in USD.")
    amount_usd: str | None = None
    percent: int | None = None
    use_case: str | None = None
    starts_at: str
    ends_at: str
    reason: str
    requested_by: str
    requested_at: str
    status: str = Field(description="pending, approved or denied.")
    decided_by: str | None = None
    decided_at: str | None = None
    decision_note: str | None = None
    state: str = Field(description="pending, denied, scheduled, active or expired (now).")
    active_now: bool


class KeyLimitsIn(AdminInput):
    rpm: int | None = Field(
        None, ge=0, le=MAX_COUNT, description="Requests per minute; 0 removes it, absent keeps it."
    )
    tpm: int | None = Field(
        None, ge=0, le=MAX_COUNT, description="Tokens per minute; 0 removes it, absent keeps it."
    )
    concurrency: int | None = Field(
        None, ge=0, le=MAX_COUNT, description="Calls in flight; 0 removes, absent keeps."
    )


class KeyLimitsOut(BaseModel):
    id: str
    name: str
    prefix: str
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    concurrency_limit: int | None = None


def budget_routes(gw: Gateway) -> APIRouter:
    # Plain `def` routes run in FastAPI's threadpool: the store and the reloads are blocking.
    router = APIRouter()
    store = gw.store

    def exemption_out(exemption: Exemption) -> ExemptionOut:
        return ExemptionOut(**budget_service.exemption_view(exemption, store.get_budget(exemption.budget_id)))

    @router.get("/budgets", tags=["budgets"])
    def list_budgets(include_revoked: bool = Query(False)) -> list[BudgetStatusOut]:
        return [BudgetStatusOut(**row) for row in budget_service.budget_status(store, include_revoked)]

    @router.post("/budgets", tags=["budgets"], status_code=201)
    def create_budget(body: BudgetIn) -> BudgetOut:
        tiers = body.tiers
        budget = budget_service.create_budget(
            store,
            name=body.name,
            scope=body.scope,
            value=body.value,
            amount_usd=body.amount_usd,
            period=body.period,
            timezone=body.timezone,
            start=body.start,
            end=body.end,
            tiers=[Tier(t.name, t.percent, t.action) for t in tiers] if isinstance(tiers, list) else tiers,
            observe=body.mode == "observe",
        )
        gw.budgets.reload()  # applies at once in this process
        return BudgetOut(**budget_service.budget_view(budget, budget_service.scope_names(store)))

    @router.post("/budgets/{ref}/revoke", tags=["budgets"])
    def revoke_budget(ref: str) -> BudgetOut:
        budget = store.revoke_budget(ref)
        gw.budgets.reload()
        return BudgetOut(**budget_service.budget_view(budget, budget_service.scope_names(store)))

    @router.get("/budgets/events", tags=["budgets"])
    def budget_events(since: str | None = _SINCE) -> list[BudgetEventOut]:
        return [BudgetEventOut(**row) for row in budget_service.budget_events(store, since)]

    @router.get("/budgets/would-block", tags=["budgets"])
    def would_block(since: str | None = _SINCE, until: str | None = _UNTIL) -> list[WouldBlockRow]:
        return [WouldBlockRow(**row) for row in budget_service.would_block_report(store, since, until)]

    @router.get(
        "/budgets/recommend",
        tags=["budgets"],
        description=f"Monthly budgets from history with tiers {tiers_text(RECOMMENDED_TIERS)}.",
    )
    def recommend(
        days: int = Query(60, description="The last N whole UTC days."),
        by: list[str] = Query(["team"], description="team and/or use_case (repeatable)."),
        min_usd: Decimal = Query(Decimal(1), description="Skip smaller monthly baselines."),
    ) -> list[RecommendationOut]:
        recs = budget_service.recommend_budgets(store, days=days, by=by, min_usd=min_usd)
        return [RecommendationOut(**rec.view()) for rec in recs]

    @router.post("/budgets/recommend/apply", tags=["budgets"], status_code=201)
    def apply(
        days: int = Query(60, description="The last N whole UTC days."),
        by: list[str] = Query(["team"], description="team and/or use_case (repeatable)."),
        min_usd: Decimal = Query(Decimal(1), description="Skip smaller monthly baselines."),
        enforce: bool = Query(False, description="Create them enforcing (default: observe mode)."),
        force: bool = Query(False, description="Apply even for teams with fewer than 60 days of history."),
    ) -> list[RecommendationOut]:
        from datetime import UTC, datetime

        from spendgate.rollout import short_history, short_history_warning

        recs = budget_service.recommend_budgets(store, days=days, by=by, min_usd=min_usd)
        short = short_history(store, recs, datetime.now(UTC))
        if short and not force:
            raise ValueError(
                short_history_warning(short).removeprefix("warning: ") + "; send force=true to apply"
            )
        rows = apply_recommendations(store, recs, enforce=enforce)
        gw.budgets.reload()
        return [RecommendationOut(**row) for row in rows]

    @router.get("/exemptions", tags=["exemptions"])
    def list_exemptions(
        status: str | None = Query(None, description="pending, approved or denied."),
    ) -> list[ExemptionOut]:
        return [ExemptionOut(**row) for row in budget_service.list_exemptions(store, status)]

    @router.post("/exemptions", tags=["exemptions"], status_code=201)
    def request_exemption(body: ExemptionIn) -> ExemptionOut:
        exemption = budget_service.request_exemption(store, **body.model_dump())
        return exemption_out(exemption)  # pending: nothing to reload until it is approved

    @router.post("/exemptions/{ref}/approve", tags=["exemptions"])
    def approve(ref: str, body: DecisionIn) -> ExemptionOut:
        exemption = budget_service.decide_exemption(store, ref, approve=True, by=body.by, note=body.note)
        gw.budgets.reload()
        return exemption_out(exemption)

    @router.post("/exemptions/{ref}/deny", tags=["exemptions"])
    def deny(ref: str, body: DecisionIn) -> ExemptionOut:
        exemption = budget_service.decide_exemption(store, ref, approve=False, by=body.by, note=body.note)
        gw.budgets.reload()
        return exemption_out(exemption)

    @router.post("/keys/{ref}/limits", tags=["keys"])
    def key_limits(ref: str, body: KeyLimitsIn) -> KeyLimitsOut:
        limits = budget_service.set_key_limits(
            store, ref, rpm=body.rpm, tpm=body.tpm, concurrency=body.concurrency
        )
        gw.keyring.reload()  # the limits travel with the key's principal
        return KeyLimitsOut(**limits)

    return router
