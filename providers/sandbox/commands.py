"""`sika sandbox serve`: the operator simulators over HTTP."""

from __future__ import annotations

import typer

from providers.dialects import Dialect

app = typer.Typer(help="The Flooz, T-Money and SMS simulators.", no_args_is_help=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8700, help="TCP port."),
    seed: int = typer.Option(7, help="Seed of names, balances and faults."),
    faults: str = typer.Option("none", help="none, flaky, hostile or a JSON profile file."),
    callback_url: str | None = typer.Option(
        None, help="Base URL for callbacks: POSTs go to {url}/flooz and {url}/tmoney."
    ),
    hang_seconds: float = typer.Option(
        30.0, help="How long an answer is held when it must time out (000007, timeouts)."
    ),
    token_ttl: int = typer.Option(900, help="T-Money token lifetime, sandbox-clock seconds."),
    username: str = typer.Option("sika", help="Username for both operators."),
    password: str = typer.Option("sika", help="Password for both operators."),
    flooz_key: str = typer.Option(
        "tlc12345tlc12345tlc12345tlc12345", help="32-byte AES key of the Flooz token."
    ),
    dialect: Dialect = typer.Option(
        Dialect.CLIENTS,
        help="Wire to answer in: clients (as the public client libraries show the "
        "operators) or model (Sika's first model of them).",
    ),
) -> None:
    """Serve the Flooz, T-Money and SMS simulators until interrupted."""
    import uvicorn

    from core.errors import ValidationError
    from providers.sandbox.app import create_app
    from providers.sandbox.faults import load_profile
    from providers.sandbox.runtime import Config

    if len(flooz_key.encode()) != 32:
        raise ValidationError("the Flooz key must be exactly 32 bytes (AES-256)")
    config = Config(
        seed=seed,
        profile=load_profile(faults),
        callback_url=callback_url,
        hang_seconds=hang_seconds,
        token_ttl_seconds=token_ttl,
        username=username,
        password=password,
        flooz_key=flooz_key,
        dialect=dialect,
    )
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
