"""``spendgate fake-upstream``: the fake providers (Anthropic, OpenAI, Bedrock, Vertex) in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("fake-upstream")
    def fake_upstream(
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 9999,
        latency_ms: Annotated[float, typer.Option(help="Delay before response headers.")] = 0,
        chunk_delay_ms: Annotated[float, typer.Option(help="Delay between stream events.")] = 0,
        output_tokens: Annotated[int, typer.Option(help="Default output length in tokens.")] = 24,
        whole_streams: Annotated[
            bool,
            typer.Option(
                help="Send each stream in one write when there is no chunk delay (benchmarks: a write "
                "per event makes the fake the bottleneck)."
            ),
        ] = False,
        anthropic_key: Annotated[
            str | None, typer.Option(help="Require this Anthropic API key (default: accept any).")
        ] = None,
        openai_key: Annotated[
            str | None, typer.Option(help="Require this OpenAI API key (default: accept any).")
        ] = None,
        aws_access_key_id: Annotated[
            str | None,
            typer.Option(
                help="Require Bedrock calls to be SigV4-signed by this key (with the secret below)."
            ),
        ] = None,
        aws_secret_access_key: Annotated[
            str | None,
            typer.Option(help="The secret of --aws-access-key-id.", envvar="FAKE_AWS_SECRET_ACCESS_KEY"),
        ] = None,
    ) -> None:
        """Serve a fake of the Anthropic and OpenAI APIs, Bedrock and Vertex AI (for tests, demos and
        benchmarks)."""
        # Imported here so that building the CLI stays cheap.
        from spendgate.fake_upstream.server import base_url, bind_socket, serve_forever
        from spendgate.fake_upstream.settings import FakeSettings

        settings = FakeSettings(
            anthropic_api_key=anthropic_key,
            openai_api_key=openai_key,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            latency_ms=latency_ms,
            chunk_delay_ms=chunk_delay_ms,
            output_tokens=output_tokens,
            whole_streams=whole_streams,
        )
        try:
            sock = bind_socket(host, port)
        except OSError as exc:
            typer.echo(f"cannot listen on {host}:{port}: {exc}", err=True)
            raise typer.Exit(1) from None
        url = base_url(sock)
        typer.echo(f"Anthropic base URL: {url}")
        typer.echo(f"OpenAI base URL:    {url}/v1")
        typer.echo(f"Bedrock base URL:   {url}   Vertex AI base URL: {url}")
        typer.echo(
            "Steer requests with x-fake-mode / x-fake-usage / x-fake-output-tokens headers. Ctrl+C stops."
        )
        serve_forever(settings, sock)
