"""`sika db`: the database Sika uses, its schema, and the embedded server."""

from __future__ import annotations

import typer

from core import console, migrate
from core.db import build_engine, masked, resolve_urls
from core.settings import load_settings

app = typer.Typer(
    help="The database: URL, schema upgrades, the embedded server.", no_args_is_help=True
)


@app.command("url")
def url_command(
    show_password: bool = typer.Option(False, "--show-password", help="Print the password too."),
    owner: bool = typer.Option(
        False, "--owner", help="The URL migrations use (the schema owner's), not the app's."
    ),
) -> None:
    """Print the URL of the database in use (password masked)."""
    urls = resolve_urls(load_settings())
    url = urls.owner if owner else urls.app
    console.out.print(url if show_password else masked(url), markup=False)


@app.command("upgrade")
def upgrade_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Apply every pending schema revision, as the schema's owner (SIKA_DATABASE_OWNER_URL)."""
    url = resolve_urls(load_settings()).owner
    engine = build_engine(url, pool_size=1)
    before = migrate.current_revision(engine)
    after = migrate.upgrade(engine)
    engine.dispose()
    console.emit({"from": before, "to": after, "url": masked(url)}, as_json, "schema")


@app.command("stop")
def stop_command() -> None:
    """Stop the embedded PostgreSQL server under SIKA_HOME, if it runs."""
    from core import embedded

    settings = load_settings()
    if settings.database_url is not None:
        console.err.print("SIKA_DATABASE_URL is set: there is no embedded server to stop.")
        return
    stopped = embedded.stop(settings.home_dir)
    console.err.print(
        "embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running"
    )
