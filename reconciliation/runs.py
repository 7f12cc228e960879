"""Running a day end to end: the statement from a file or the operator, the run in one
transaction that reads the statement as it stages it (a refused statement rolls back, so
nothing is recorded), then the signed report.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core import agents
from core.bounds import check_balance
from core.errors import ConfigError, ProviderError
from core.models import Agent
from core.settings import Settings
from ledger.seals import load_ledger_key
from providers.base import ProviderAdapter
from providers.registry import load_adapter
from reconciliation import reports, service
from reconciliation.service import RunSummary


def open_adapter(settings: Settings, provider: str) -> ProviderAdapter | None:
    """The operator's adapter for status queries and the float, or None if not configured."""
    try:
        return load_adapter(provider, settings)
    except (ProviderError, ConfigError):
        return None


def run_day(
    factory: sessionmaker[Session],
    settings: Settings,
    provider: str,
    day: dt.date,
    *,
    statement: Path | None = None,
    closing_float: int | None = None,
    agent: Agent | None = None,
    cutoff: dt.datetime | None = None,
    record: bool = True,
) -> RunSummary:
    """Reconcile `provider` for `day` and write the signed report; the run's summary."""
    if closing_float is not None:
        check_balance(closing_float, "--closing-float")
    data = (
        service.read_statement_file(statement)
        if statement is not None
        else service.fetch_statement(settings, provider, day)
    )
    adapter = open_adapter(settings, provider)
    try:
        # read while staged: a malformed line raises StatementError out of this block,
        # which rolls the whole run back, so a refused statement leaves nothing behind
        with factory() as session, session.begin():
            summary = service.reconcile_statement(
                session,
                provider,
                day,
                data,
                source=str(statement) if statement is not None else "operator",
                adapter=adapter,
                closing_float=closing_float,
                agent=agent,
                cutoff=cutoff,
            )
            if record:
                agents.record(
                    session,
                    agent,
                    "reconcile.run",
                    {
                        "provider": provider,
                        "day": day.isoformat(),
                        "run": summary.run_id,
                        "statement_sha256": service.statement_digest(data),
                        "auto_resolved": summary.auto_resolved,
                        "open_exceptions": summary.open_exceptions,
                    },
                )
    finally:
        if adapter is not None:
            with contextlib.suppress(Exception):
                adapter.close()
    key = load_ledger_key(settings)
    with factory() as session, session.begin():
        paths = reports.write_reports(session, settings.home_dir, summary, key)
        session.execute(
            text(
                "UPDATE recon_runs SET report_dir = :dir WHERE id = :id AND superseded_at IS NULL"
            ),
            {"dir": str(Path(paths["json"]).parent), "id": summary.run_id},
        )
    return RunSummary(
        summary.run_id,
        summary.provider,
        summary.day,
        summary.counts,
        summary.amounts,
        summary.float_ledger,
        summary.float_provider,
        summary.auto_resolved,
        summary.open_exceptions,
        paths,
    )
