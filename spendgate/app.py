"""The app factory: everything is built here from a typed Settings, nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hmac
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from spendgate import __version__
from spendgate.admission import Admission
from spendgate.alerts.config import load_alerts_config
from spendgate.alerts.scheduler import run_alerts_forever
from spendgate.auth import Keyring
from spendgate.batches.api import BatchesAPI, BatchResults
from spendgate.batches.api import Limits as BatchLimits
from spendgate.budgets.counters import Counters, LocalCounters
from spendgate.budgets.enforcer import BudgetEnforcer
from spendgate.config import Settings
from spendgate.drain import Drain, closing
from spendgate.errors import MethodNotAllowed, UnknownEndpoint
from spendgate.extras import require
from spendgate.finance.webhook import github_webhook as finance_webhook
from spendgate.forward import Forwarding
from spendgate.gateway import Gateway
from spendgate.inference.infer import Inferrer
from spendgate.inference.rules import load_rules
from spendgate.ledger import Journal, LedgerWriter, recover_journals
from spendgate.ledger.ingest import IngestProcess, another_is_active
from spendgate.ledger.quarantine import Landed, land_lines
from spendgate.metrics import CONTENT_TYPE, Metrics
from spendgate.passthrough import bedrock_profiles, relay, wants_anthropic
from spendgate.pricing import Pricer
from spendgate.providers.anthropic import AnthropicProvider
from spendgate.providers.base import Provider
from spendgate.providers.bedrock import BedrockProvider
from spendgate.providers.openai import OpenAIProvider
from spendgate.providers.openai_embeddings import OpenAIEmbeddingsProvider
from spendgate.providers.openai_responses import OpenAIResponsesProvider
from spendgate.providers.vertex import VertexProvider
from spendgate.proxy import ProxyEndpoint
from spendgate.reports.schedule import load_schedule, run_reports_forever
from spendgate.routing.policy import Policy, load_policy
from spendgate.routing.router import Router
from spendgate.routing.sticky import LocalSticky, RedisSticky, Sticky
from spendgate.settlement import Settlement
from spendgate.store import Store, open_store
from spendgate.upstream import Upstream

log = logging.getLogger(__name__)


def build_gateway(settings: Settings, *, ingest_process: bool = False) -> Gateway:
    """Open the store (migrated), replay any journal a crash left, and wire the parts.

    With `ingest_process` (`spendgate serve`), a child process lands the journaled rows
    (ledger/ingest.py); otherwise a writer thread in this process does (tests, the demo)."""
    store = open_store(settings.database_url)
    store.migrate()
    spool = settings.resolved_spool_dir()
    replayed = Landed()
    if not (ingest_process and another_is_active(spool)):  # if one is, it lands dead segments itself
        _, replayed = recover_journals(spool, functools.partial(land_lines, store))
    secret = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    openai_secret = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    keyring = Keyring(store.active_principals, settings.key_cache_refresh_s, settings.key_negative_cache_s)
    keyring.reload()
    ledger = LedgerWriter(
        store,
        Journal(spool, settings.journal_segment_bytes, handoff=ingest_process),
        settings.ledger_batch_size,
        settings.ledger_flush_interval_s,
        IngestProcess(settings) if ingest_process else None,
    )
    ledger.add_quarantined(replayed.quarantined)
    budgets = BudgetEnforcer(
        store,
        build_counters(settings),
        observe_all=settings.budget_mode == "observe",
        reservation_ttl_s=settings.budget_reservation_ttl_s,
        on_event=ledger.record_event,
    )
    budgets.reload()
    return Gateway(
        settings=settings,
        store=store,
        keyring=keyring,
        pricer=Pricer(settings.price_overrides_file),
        anthropic=AnthropicProvider(secret, settings.anthropic_base_url),
        openai=OpenAIProvider(openai_secret, settings.openai_base_url),
        openai_responses=OpenAIResponsesProvider(openai_secret, settings.openai_base_url),
        openai_embeddings=OpenAIEmbeddingsProvider(openai_secret, settings.openai_base_url),
        bedrock=BedrockProvider(settings.bedrock_region, settings.bedrock_base_url),
        vertex=VertexProvider(settings.vertex_base_url),
        upstream=Upstream(
            settings.upstream_connect_timeout_s,
            settings.upstream_read_timeout_s,
            settings.upstream_max_connections,
        ),
        ledger=ledger,
        budgets=budgets,
        router=Router(_routing_policy(store, settings)),
        metrics=Metrics(ledger, budgets, store, keyring),
        inferrer=Inferrer(load_rules(settings.use_case_rules_file)),
        sticky=build_sticky(settings),
    )


def build_endpoint(gw: Gateway, provider: Provider, settlement: Settlement) -> ProxyEndpoint:
    """A metered endpoint: its steps, each holding only the parts of the gateway it uses."""
    admission = Admission(
        provider,
        gw.keyring,
        gw.router,
        gw.pricer,
        gw.budgets,
        gw.inferrer,
        gw.sticky,
        max_body_bytes=gw.settings.max_body_bytes,
        default_max_tokens=gw.settings.budget_default_max_tokens,
    )
    forwarding = Forwarding(provider, gw.upstream, gw.router, admission.price)
    return ProxyEndpoint(provider, admission, forwarding, settlement)


def _routing_policy(store: Store, settings: Settings) -> Policy:
    """The routing policy in force; a new policy file is recorded in the audit log as loaded by the
    person running the gateway."""
    policy = load_policy(settings.routing_policy_file)
    if settings.routing_policy_file is not None:
        from spendgate.audit import cli_actor, record_policy_load

        record_policy_load(store, settings.routing_policy_file, cli_actor())
    return policy


def build_sticky(settings: Settings) -> Sticky:
    """Held routing decisions: shared by the replicas through Redis when there is one."""
    if settings.redis_url:
        return RedisSticky(settings.redis_url, settings.redis_prefix, settings.routing_sticky_ttl_s)
    return LocalSticky(settings.routing_sticky_ttl_s)


def build_counters(settings: Settings) -> Counters:
    """Redis (with its outage policy) for replicas on several hosts; an LMDB file for the processes
    of one host (`serve --workers N`); in memory for one process."""
    if not settings.redis_url:
        if settings.counters_dir is not None:
            from spendgate.budgets.shared_counters import SharedCounters

            return SharedCounters(settings.counters_dir)
        return LocalCounters()
    from spendgate.budgets.failover import FailoverCounters
    from spendgate.budgets.redis_counters import RedisCounters

    return FailoverCounters(
        RedisCounters(settings.redis_url, settings.redis_prefix), settings.redis_failure_mode
    )


class SpendgateApp:
    """The ASGI app: the metered endpoints served raw (the hot path), everything else by Starlette."""

    def __init__(
        self,
        app: Starlette,
        proxies: dict[str, ProxyEndpoint],
        drain: Drain,
        prefixed: tuple[tuple[str, ProxyEndpoint], ...] = (),
    ) -> None:
        self.app = app
        self.proxies = proxies  # by request path; POST only (Starlette answers other methods with 405)
        self.drain = drain
        self.prefixed = prefixed  # by path prefix: the clouds put the model (and project) in the path

    @property
    def state(self) -> State:
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.drain.draining and scope["type"] == "http":
            send = closing(send)  # no call may follow down this connection (see drain.py)
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            endpoint = self.proxies.get(path)
            if endpoint is not None:
                return await endpoint(scope, receive, send)
            for prefix, endpoint in self.prefixed:
                if path.startswith(prefix):
                    return await endpoint(scope, receive, send)
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, *, ingest_process: bool = False) -> SpendgateApp:
    settings = settings or Settings()
    gw = build_gateway(settings, ingest_process=ingest_process)
    # A broken alerts file stops start-up here, not silently in a background task.
    alerts_config = load_alerts_config(settings.alerts_file) if settings.alerts_file else None
    if settings.reports_file:
        require("reports", "scheduled reports (SPENDGATE_REPORTS_FILE)")
    schedule = load_schedule(settings.reports_file) if settings.reports_file else None
    anthropic_root = settings.anthropic_base_url.rstrip("/")
    openai_root = settings.openai_base_url.rstrip("/")

    settlement = Settlement(gw.budgets, gw.ledger, gw.metrics)
    metered = (gw.anthropic, gw.openai, gw.openai_responses, gw.openai_embeddings)
    proxies = {p.path: build_endpoint(gw, p, settlement) for p in metered}
    prefixed = tuple((p.path, build_endpoint(gw, p, settlement)) for p in (gw.bedrock, gw.vertex))

    async def inference_profiles(request: Request) -> Response:
        return await bedrock_profiles(gw, request)

    async def count_tokens(request: Request) -> Response:
        url = _url(anthropic_root, "/v1/messages/count_tokens", request)
        return await relay(gw, gw.anthropic, request, url)

    async def models(request: Request) -> Response:
        if wants_anthropic(request):
            return await relay(gw, gw.anthropic, request, _url(anthropic_root, "/v1/models", request))
        return await relay(gw, gw.openai, request, _url(openai_root, "/models", request))

    batches = BatchesAPI(
        gw.anthropic,
        gw.keyring,
        gw.upstream,
        gw.store,
        gw.pricer,
        gw.budgets,
        gw.ledger,
        gw.metrics,
        gw.inferrer,
        BatchLimits(settings.max_body_bytes, settings.budget_default_max_tokens),
    )

    async def responses_relay(request: Request) -> Response:
        # Stored responses (retrieve, delete, cancel) and token counting: relayed, not metered.
        url = _url(openai_root, request.url.path.removeprefix("/v1"), request)
        return await relay(gw, gw.openai_responses, request, url, parse=False)

    async def hello(request: Request) -> Response:
        return Response(status_code=200)

    drain = Drain(settings.drain_delay_s)

    async def health(request: Request) -> Response:
        # A writer stuck on the database for too long is unhealthy: rows pile up in the journal.
        stall = gw.ledger.stall_s
        healthy = stall <= settings.ledger_stall_unhealthy_s
        return JSONResponse(
            {
                "status": "ok" if healthy else "unhealthy",
                "version": __version__,
                "ledger_queue_depth": gw.ledger.queue_depth,
                "ledger_stall_s": round(stall, 3),
                "ledger_rows_quarantined": gw.ledger.rows_quarantined,
                "draining": drain.draining,  # still 200: a drain must not get the process killed
            },
            200 if healthy else 503,
        )

    async def live(request: Request) -> Response:
        # Liveness for an orchestrator: the process answers. Not /healthz, which turns 503 while the
        # database is down: restarting replicas then would not help, and they could not start.
        return JSONResponse({"status": "live"})

    async def ready(request: Request) -> Response:
        # Readiness: a load balancer sends calls only while this says 200.
        if drain.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ready"})

    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    async def metrics(request: Request) -> Response:
        # Unauthenticated unless SPENDGATE_METRICS_TOKEN is set: expose it to the monitoring network only.
        if metrics_token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
            if not hmac.compare_digest(given, metrics_token.encode()):
                return Response("metrics need Authorization: Bearer <SPENDGATE_METRICS_TOKEN>\n", 401)
        return Response(await gw.metrics.render(), headers={"content-type": CONTENT_TYPE})

    github_secret = (
        settings.github_webhook_secret.get_secret_value() if settings.github_webhook_secret else None
    )

    async def github_webhook(request: Request) -> Response:
        return await finance_webhook(gw, github_secret, request)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.upstream.start()
        gw.ledger.start()
        background = [
            asyncio.create_task(gw.keyring.refresh_forever()),
            asyncio.create_task(gw.budgets.maintain_forever(settings.budget_refresh_s)),
            asyncio.create_task(
                run_alerts_forever(
                    gw.store, settings, config=alerts_config, on_result=gw.metrics.alert_delivered
                )
            ),
            asyncio.create_task(run_reports_forever(gw.store, settings, schedule=schedule)),
        ]
        try:
            with drain.on_sigterm():
                yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await gw.budgets.drain()
            await gw.budgets.counters.close()
            await gw.sticky.close()
            await gw.upstream.close()
            await asyncio.to_thread(gw.ledger.stop)
            gw.store.close()

    from spendgate.admin.api import create_admin_app
    from spendgate.console import console_app

    routes = [
        Route("/v1/messages", proxies["/v1/messages"], methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/messages/batches", batches.create, methods=["POST"]),
        Route("/v1/messages/batches", batches.list_batches, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", batches.retrieve, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", batches.delete, methods=["DELETE"]),
        Route("/v1/messages/batches/{batch_id}/cancel", batches.cancel, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", BatchResults(batches), methods=["GET"]),
        Route("/v1/chat/completions", proxies["/v1/chat/completions"], methods=["POST"]),
        Route("/v1/responses", proxies["/v1/responses"], methods=["POST"]),
        Route("/v1/responses/input_tokens", responses_relay, methods=["POST"]),
        Route("/v1/responses/{response_id}", responses_relay, methods=["GET", "DELETE"]),
        Route("/v1/responses/{response_id}/cancel", responses_relay, methods=["POST"]),
        Route("/v1/embeddings", proxies["/v1/embeddings"], methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/bedrock/inference-profiles", inference_profiles, methods=["GET"]),
        Route("/api/hello", hello, methods=["GET", "HEAD"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Route("/livez", live, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/webhooks/github", github_webhook, methods=["POST"]),
        Mount("/admin", app=create_admin_app(gw)),
        Mount("/ui", app=console_app(gw)),
    ]

    async def not_routed(request: Request, exc: Exception) -> Response:
        # An unknown path or method gets JSON in the format of the API its path belongs to.
        assert isinstance(exc, HTTPException)
        path = request.url.path
        openai = path.startswith(_OPENAI_PATHS) and not wants_anthropic(request)
        provider: Provider = gw.openai if openai else gw.anthropic
        if path.startswith("/bedrock/"):
            provider = gw.bedrock  # Bedrock's shape, for the AWS SDKs
        message = f"Spendgate has no {request.method} {request.url.path[:200]}"
        error = MethodNotAllowed(message) if exc.status_code == 405 else UnknownEndpoint(message)
        status, headers, body = provider.error(error, "")
        headers = {**(exc.headers or {}), **headers}
        return Response(body, status, headers=headers, media_type="application/json")

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_routed})
    app.state.gateway = gw
    return SpendgateApp(app, proxies, drain, prefixed)


def create_served_app(settings: Settings | None = None) -> SpendgateApp:
    """`create_app` for a server process (`spendgate serve`, each of its workers).

    What start-up builds (imported modules, price data, settings) lives as long as the process,
    so it is moved out of the garbage collector's sight: without that, every full collection
    rescans ~110k start-up objects (tens of milliseconds, on the request path) to free a few.

    The youngest generation is collected every YOUNG_GC_THRESHOLD allocations rather than
    Python's 700: at 700, a collection comes every few calls and scans the objects of the calls
    still in flight (alive, so promoted and scanned again later); at 10,000 most have been freed
    by then. That is ~5% fewer instructions a call under load (bench/instructions.py), for
    pauses of well under a millisecond.
    """
    settings = settings or Settings()
    app = create_app(settings, ingest_process=settings.ingest_in_process())
    app.state.gateway.pricer.preload()  # ~20k objects: part of start-up, not of the first call
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    return app


YOUNG_GC_THRESHOLD = 10_000  # see create_served_app

# Paths of the OpenAI API (its own error format); everything else answers in Anthropic's.
_OPENAI_PATHS = ("/v1/chat", "/v1/responses", "/v1/embeddings", "/v1/models", "/v1/completions")


def _url(root: str, path: str, request: Request) -> str:
    query = request.url.query
    return f"{root}{path}?{query}" if query else f"{root}{path}"
