"""`spendgate serve` (run the gateway), `spendgate migrate` and `spendgate config`."""

from __future__ import annotations

import logging
import logging.config
import os
from typing import TYPE_CHECKING

import typer

from spendgate.cli import present as p
from spendgate.cli.common import settings
from spendgate.cli.present import FORMAT_OPTION, Format, emit

if TYPE_CHECKING:
    from spendgate.config import Settings


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
        port: int = typer.Option(8787, "--port", envvar="SPENDGATE_PORT", help="Port to listen on."),
        workers: int = typer.Option(
            1, "--workers", help="Worker processes (each its own ledger journal; budget counters shared)."
        ),
    ) -> None:
        """Run the gateway: point ANTHROPIC_BASE_URL / the OpenAI base URL at it."""
        run_server(settings(), host, port, workers)

    @app.command()
    def migrate() -> None:
        """Apply the database's pending schema migrations, once, and list them (a deploy step before
        the replicas start; each replica also applies any it finds pending, under a lock)."""
        from spendgate.store import open_store

        store = open_store(settings().database_url)
        try:
            applied = store.migrate()
        finally:
            store.close()
        typer.echo("\n".join(f"applied {name}" for name in applied) if applied else "schema up to date")

    @app.command("config")
    def show_config(fmt: Format = FORMAT_OPTION) -> None:
        """Show every setting in force, secrets redacted."""
        from spendgate.config import describe_settings

        values = settings().redacted()
        rows = [
            {
                "variable": env,
                "value": values.get(env.removeprefix("SPENDGATE_").lower()),
                "default": default,
                "help": help_text,
            }
            for env, default, help_text in describe_settings()
        ]
        columns = [p.text("variable"), p.text("value", missing="(unset)"), p.text("help")]
        emit(rows, fmt, columns, "Settings in force (secrets redacted)")


def run_server(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from spendgate.app import create_served_app
    from spendgate.config import logging_config
    from spendgate.connections import configure, server_options

    logging.config.dictConfig(logging_config(settings.log_level))
    if workers > 1 and not settings.redis_url and settings.counters_dir is None:
        # The workers build their own Settings from the environment: this is how they find
        # the one counters file they share (per-worker counters would let N workers spend N
        # times a budget).
        counters_dir = settings.resolved_spool_dir() / "counters"
        os.environ["SPENDGATE_COUNTERS_DIR"] = str(counters_dir)
        logging.getLogger("spendgate").info(
            "%d workers share budget counters and rate limits in %s", workers, counters_dir
        )
    if settings.ledger_ingest_process == "auto":
        # Decided here, where the number of workers is known; the workers read the answer from the
        # environment as they read everything else.
        chosen = settings.ingest_in_process(workers)
        os.environ["SPENDGATE_LEDGER_INGEST_PROCESS"] = "true" if chosen else "false"
        settings = settings.model_copy(update={"ledger_ingest_process": chosen})
        logging.getLogger("spendgate").info(
            "ledger rows are landed by %s", "a child process" if chosen else "a thread of each worker"
        )
    # uvicorn.run, spelled out: the Config carries the connection limits to every worker.
    config = uvicorn.Config(
        "spendgate.app:create_served_app" if workers > 1 else create_served_app(settings),
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        **server_options(settings),
        access_log=False,
        log_config=logging_config(settings.log_level),
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=settings.drain_timeout_s,
    )
    configure(config, settings.header_timeout_s, settings.body_timeout_s, settings.max_concurrency)
    server = uvicorn.Server(config)
    if workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        server.run()
