"""`sika agripme`: the farmer registry, seasons and payout batches.

Every command that changes something, or decrypts a farmer's personal data, signs a
request with the acting agent's own key (`--agent` or SIKA_AGENT); the service function
checks it and records it in the audit log.
"""

from __future__ import annotations

from pathlib import Path

import typer

from agripme import batches as season_batches
from agripme import registry, seasons
from core import console
from core.authority import signed_by
from core.crypto import load_keys
from core.db import get_sessionmaker, unit_of_work
from core.settings import load_settings
from payouts import preflight
from payouts.batches import preflight_summary
from payouts.commands import (
    preflight_bar,
    preflight_text,
    print_held,
    print_preflight,
    register_batch_commands,
    submit,
)

app = typer.Typer(help="AgriPME: farmers, seasons and payout batches.", no_args_is_help=True)
farmers_app = typer.Typer(
    help="The farmer registry: import, look up, re-encrypt.", no_args_is_help=True
)
app.add_typer(farmers_app, name="farmers")
season_app = typer.Typer(help="Seasons: rules and budget.", no_args_is_help=True)
app.add_typer(season_app, name="season")
batch_app = typer.Typer(
    help="Payout batches: create (with a pre-flight of every wallet), preflight, held,"
    " include, approve, cancel, dispatch, show, retry, export.",
    no_args_is_help=True,
)
app.add_typer(batch_app, name="batch")

_AGENT = typer.Option(
    None, "--agent", envvar="SIKA_AGENT", help="Acting agent; signs with their own key."
)
_ERRORS_SHOWN = 20


@farmers_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="CSV, UTF-8, ',' or ';', French or English headers."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and count; change nothing."),
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Import or update farmers from a registry file (maker); exit 1 unless every row went in."""
    keys = load_keys(load_settings())
    request = None
    if not dry_run:
        # a registry row decides whose wallet a subsidy reaches: the maker signs this file
        arguments = registry.import_arguments(file)
        request = signed_by(agent, registry.FARMERS_IMPORT, arguments)
    report = registry.import_farmers(
        get_sessionmaker(), file, keys, request=request, dry_run=dry_run
    )
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
    reveal: bool = typer.Option(False, "--reveal", help="Show the full phone number (auditor)."),
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One farmer, phone number masked unless --reveal (maker, approver or auditor; a
    signed request, recorded in the audit log)."""
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        farmer_id = registry.get_farmer(session, national_id, keys).id
    request = signed_by(
        agent, registry.FARMERS_SHOW, registry.show_arguments(farmer_id, reveal=reveal)
    )
    with unit_of_work() as session:
        view = registry.show_farmer(session, request, farmer_id, keys, reveal=reveal)
    console.emit(view, as_json, "farmer")


@farmers_app.command("reencrypt")
def reencrypt_command(
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Move every farmer's personal data to the newest key version, after adding one (admin)."""
    keys = load_keys(load_settings())
    request = signed_by(agent, registry.FARMERS_REENCRYPT, registry.reencrypt_arguments(keys))
    rewritten = registry.reencrypt_farmers(get_sessionmaker(), request, keys)
    result = {"key_version": keys.keyring.current, "rewritten": rewritten}
    console.emit(result, as_json, "reencrypt")


@season_app.command("create")
def season_create_command(
    code: str = typer.Argument(..., help="Season code, e.g. 2026A."),
    rules: Path = typer.Option(..., "--rules", help="The season's rules, TOML."),
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a season from its rules file and book its budget in the ledger (treasurer)."""
    parsed = seasons.load_rules(rules)
    request = signed_by(agent, seasons.SEASON_CREATE, seasons.season_arguments(code, parsed))
    with unit_of_work() as session:
        season = seasons.create_season(session, request, code, parsed)
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
    no_preflight: bool = typer.Option(
        False,
        "--no-preflight",
        help="Skip the wallet look-ups: only when every operator of the batch offers none"
        " (SIKA_LOOKUP_UNAVAILABLE); recorded on the lines as `skipped`.",
    ),
    agent: str | None = _AGENT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Build the season's next batch from the registry, look up every farmer's wallet at
    its operator (a progress bar on stderr), write the batch with each line's verdict and
    submit it, signing its manifest, as its maker."""
    settings = load_settings()
    keys = load_keys(settings)
    request = signed_by(
        agent,
        season_batches.BATCH_CREATE,
        season_batches.batch_create_arguments(
            season, region=region, limit=limit, no_preflight=no_preflight
        ),
    )
    with preflight_bar(f"season {season} pre-flight") as show:
        batch = season_batches.create_season_batch(
            get_sessionmaker(),
            request,
            season,
            keys,
            settings=settings,
            region=region,
            limit=limit,
            no_preflight=no_preflight,
            on_progress=show,
            then=lambda session, made: submit(session, made, request.agent),
        )
    with unit_of_work() as session:
        summary = preflight_summary(session, batch.id)
        held = preflight.held_lines(session, batch.id, keys)
    print_preflight(batch.id, summary)
    if not as_json:
        print_held(batch.id, held)
    result = {
        "batch": batch.id,
        "lines": batch.lines,
        "total": batch.total,
        "manifest": batch.manifest,
        "maker": request.agent,
        "held_out": len(held),
        "preflight": summary if as_json else preflight_text(summary),
    }
    console.emit(result, as_json, "batch")


register_batch_commands(batch_app, "agripme", season_batches.FarmerRegistry())
