"""`sika agripme`: the farmer registry, seasons and payout batches."""

from __future__ import annotations

from pathlib import Path

import typer

from agripme import batches as season_batches
from agripme import registry, seasons
from core import agents, console
from core.crypto import load_keys
from core.db import get_sessionmaker, unit_of_work
from core.models import Role
from core.settings import load_settings
from payouts.commands import register_batch_commands

app = typer.Typer(help="AgriPME: farmers, seasons and payout batches.", no_args_is_help=True)
farmers_app = typer.Typer(
    help="The farmer registry: import, look up, re-encrypt.", no_args_is_help=True
)
app.add_typer(farmers_app, name="farmers")
season_app = typer.Typer(help="Seasons: rules and budget.", no_args_is_help=True)
app.add_typer(season_app, name="season")
batch_app = typer.Typer(
    help="Payout batches: create, approve, dispatch, show, retry, export.", no_args_is_help=True
)
app.add_typer(batch_app, name="batch")

_AGENT = typer.Option(None, "--agent", envvar="SIKA_AGENT", help="Acting agent.")
_ERRORS_SHOWN = 20


@farmers_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="CSV, UTF-8, ',' or ';', French or English headers."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and count; change nothing."),
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Import or update farmers from a registry file; exit 1 unless every row went in."""
    keys = load_keys(load_settings())
    acting = None
    if not dry_run:
        # a registry row decides whose wallet a subsidy reaches: only makers and admins
        with unit_of_work() as session:
            acting = agents.require_role(session, agent, Role.MAKER, Role.ADMIN)
    report = registry.import_farmers(get_sessionmaker(), file, keys, agent=acting, dry_run=dry_run)
    if as_json:
        console.print_json(report.as_dict())
    else:
        summary = {k: v for k, v in report.as_dict().items() if k != "errors"}
        console.print_record(summary, "farmers import" + (" (dry run)" if dry_run else ""))
        for error in report.errors[:_ERRORS_SHOWN]:
            console.err.print(f"row {error.row}: {error.field}: {error.message}", markup=False)
        hidden = len(report.errors) - _ERRORS_SHOWN + report.errors_omitted
        if hidden > 0:
            console.err.print(f"… and {hidden} more (use --json to see them all)")
    if not report.ok:
        raise typer.Exit(1)


@farmers_app.command("show")
def show_command(
    national_id: str = typer.Argument(..., help="The farmer's national ID or voter card."),
    reveal: bool = typer.Option(
        False, "--reveal", help="Show the full phone number (auditor or admin; audit-logged)."
    ),
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One farmer, phone number masked unless --reveal."""
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        farmer = registry.get_farmer(session, national_id, keys)
        if reveal:
            acting = agents.require_role(session, agent, Role.AUDITOR, Role.ADMIN)
            # the farmer's id, not the national ID: the audit log is stored readable
            agents.record(session, acting, "agripme.farmers.reveal", {"farmer_id": farmer.id})
        view = registry.farmer_view(farmer, keys, reveal=reveal)
    console.emit(view, as_json, "farmer")


@farmers_app.command("reencrypt")
def reencrypt_command(
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Move every farmer's personal data to the newest key version (after adding one)."""
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        acting = agents.require_role(session, agent, Role.ADMIN)
    rewritten = registry.reencrypt_farmers(get_sessionmaker(), keys)
    with unit_of_work() as session:
        acting = agents.get_agent(session, acting.name)
        agents.record(
            session,
            acting,
            "agripme.farmers.reencrypt",
            {"key_version": keys.keyring.current, "rewritten": rewritten},
        )
    result = {"key_version": keys.keyring.current, "rewritten": rewritten}
    console.emit(result, as_json, "reencrypt")


@season_app.command("create")
def season_create_command(
    code: str = typer.Argument(..., help="Season code, e.g. 2026A."),
    rules: Path = typer.Option(..., "--rules", help="The season's rules, TOML."),
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a season from its rules file and book its budget in the ledger."""
    parsed = seasons.load_rules(rules)
    with unit_of_work() as session:
        acting = agents.require_role(session, agent, Role.ADMIN, Role.MAKER)
        season = seasons.create_season(session, code, parsed, acting)
        agents.record(
            session,
            acting,
            "agripme.season.create",
            {"season": season.code, "rules": parsed.as_stored()},
        )
        result = {
            "season": season.code,
            "budget": season.budget,
            "account": seasons.budget_account(season.code),
            "per_bag": parsed.per_bag,
            "max_bags": parsed.max_bags,
            "regions": [r.value for r in parsed.regions] if parsed.regions else "all",
        }
    console.emit(result, as_json, "season")


@season_app.command("show")
def season_show_command(
    code: str = typer.Argument(..., help="Season code."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A season's rules, budget and what is left of it."""
    with unit_of_work() as session:
        season, parsed = seasons.get_season(session, code)
        result = {
            "season": season.code,
            "budget": season.budget,
            "remaining": seasons.remaining_budget(session, code),
            "rules": parsed.as_stored(),
        }
    console.emit(result, as_json, "season")


@batch_app.command("create")
def batch_create_command(
    season: str = typer.Option(..., "--season", help="Season code."),
    region: str | None = typer.Option(None, "--region", help="Only this region."),
    limit: int | None = typer.Option(None, "--limit", help="At most this many farmers."),
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Build the season's next batch from the registry and sign it as its maker."""
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        acting = agents.require_role(session, agent, Role.MAKER)
        batch = season_batches.create_season_batch(
            session, season, keys, acting, region=region, limit=limit
        )
        agents.record(
            session,
            acting,
            "agripme.batch.create",
            {
                "batch": batch.id,
                "season": season,
                "lines": batch.lines,
                "total": batch.total,
                "manifest": batch.manifest,
            },
        )
        result = {
            "batch": batch.id,
            "lines": batch.lines,
            "total": batch.total,
            "manifest": batch.manifest,
        }
    console.emit(result, as_json, "batch")


register_batch_commands(batch_app)
