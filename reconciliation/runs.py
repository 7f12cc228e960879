"""Running a day end to end: the statement from a file or the operator, the run in one
transaction that reads the statement as it stages it (a refused statement rolls back, so
nothing is recorded), then the signed report.

Two doors lead here. `run_day` is an auditor's signed request, checked in the run's own
transaction: the auditor may bring the statement and the closing float, and the request
names them (the statement by its SHA-256). `run_nightly` is the scheduler's: no person
acts, so there is no agent to name and no role to claim. It runs as the server, which
holds the ledger key that signs its reports and that day's seal, and it takes nothing a
person chooses: the statement and the float come from the operator itself. Running
`sika scheduler --once` by hand therefore does what the night would have done, no more.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.authority import SignedRequest, authorize
from core.bounds import check_balance
from core.errors import ConfigError, ProviderError
from core.models import Agent, Role
from core.settings import Settings
from ledger.seals import load_ledger_key
from providers.base import ProviderAdapter
from providers.registry import load_adapter
from reconciliation import reports, service
from reconciliation.service import RunSummary

# who runs a day on their own word (a statement file, a closing float): an auditor
RUN_ROLES = (Role.AUDITOR,)
# how the scheduler's runs read in the audit log, where no agent signs them
NIGHTLY_ACTION = "reconcile.nightly"


def open_adapter(settings: Settings, provider: str) -> ProviderAdapter | None:
    """The operator's adapter for status queries and the float, or None if not configured."""
    try:
        return load_adapter(provider, settings)
    except (ProviderError, ConfigError):
        return None


def run_arguments(
    provider: str,
    day: dt.date,
    *,
    statement: bytes | None = None,
    closing_float: int | None = None,
    cutoff: dt.datetime | None = None,
) -> dict[str, Any]:
    """What `sika reconcile run` signs and `run_day` checks: the statement by its SHA-256
    (None: fetched from the operator), the closing float and the cutoff as given."""
    return {
        "provider": provider,
        "day": day.isoformat(),
        "statement_sha256": service.statement_digest(statement) if statement is not None else None,
        "closing_float": closing_float,
        "cutoff": audit.utc_text(cutoff) if cutoff is not None else None,
    }


def run_day(
    factory: sessionmaker[Session],
    settings: Settings,
    request: SignedRequest,
    provider: str,
    day: dt.date,
    *,
    statement: bytes | None = None,
    source: str | None = None,
    closing_float: int | None = None,
    cutoff: dt.datetime | None = None,
) -> RunSummary:
    """`sika reconcile run` (auditor): reconcile `provider` for `day` from `statement` (the
    file's bytes; None: fetch it from the operator) and write the signed report.

    The request is checked and recorded in the run's own transaction, with its effects.
    """
    if closing_float is not None:
        check_balance(closing_float, "--closing-float")
    arguments = run_arguments(
        provider, day, statement=statement, closing_float=closing_float, cutoff=cutoff
    )
    data = statement if statement is not None else service.fetch_statement(settings, provider, day)
    return _run(
        factory,
        settings,
        provider,
        day,
        data,
        source=source or ("statement" if statement is not None else "operator"),
        closing_float=closing_float,
        cutoff=cutoff,
        request=(request, arguments),
    )


def run_nightly(
    factory: sessionmaker[Session], settings: Settings, provider: str, day: dt.date
) -> RunSummary:
    """The scheduler's run of `provider` for `day`: the operator's own statement and float,
    the default cutoff, no agent (see the module's docstring); recorded in the audit log as
    the server's act."""
    data = service.fetch_statement(settings, provider, day)
    return _run(
        factory,
        settings,
        provider,
        day,
        data,
        source="operator",
        closing_float=None,
        cutoff=None,
        request=None,
    )


def _run(
    factory: sessionmaker[Session],
    settings: Settings,
    provider: str,
    day: dt.date,
    data: bytes,
    *,
    source: str,
    closing_float: int | None,
    cutoff: dt.datetime | None,
    request: tuple[SignedRequest, Mapping[str, Any]] | None,
) -> RunSummary:
    """The run itself: an agent's (`request` with the arguments it must carry) or, with
    `request` None, the scheduler's, recorded as the server's act."""
    adapter = open_adapter(settings, provider)
    try:
        # read while staged: a malformed line raises StatementError out of this block,
        # which rolls the whole run back (its request included), so a refused statement
        # leaves nothing behind
        with factory() as session, session.begin():
            agent: Agent | None = None
            if request is not None:
                signed, arguments = request
                agent = authorize(
                    session, signed, command="reconcile.run", arguments=arguments, roles=RUN_ROLES
                )
            summary = service.reconcile_statement(
                session,
                provider,
                day,
                data,
                source=source,
                adapter=adapter,
                closing_float=closing_float,
                agent=agent,
                cutoff=cutoff,
            )
            if agent is None:
                audit.record(
                    session,
                    None,
                    NIGHTLY_ACTION,
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
