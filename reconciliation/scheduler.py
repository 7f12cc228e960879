"""The nightly job: at 02:00 Lomé time (UTC+0 all year) every operator's reconciliation
for the previous day, then that day's ledger seal. A periodiq-scheduled dramatiq actor.

No person acts at 02:00, so nothing here is signed by an agent and no `--agent` or role
reaches it: the job runs as the server, with the ledger key that signs its reports and
seal, and on nothing but what the operator says (`reconciliation.runs.run_nightly`).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import dramatiq
from periodiq import PeriodiqMiddleware, Scheduler, cron

from core import clock
from core.db import get_sessionmaker
from core.errors import SikaError
from core.logging import get_logger
from core.settings import load_settings
from ledger.seals import load_ledger_key, seal_day
from providers.registry import available
from reconciliation.runs import run_nightly
from reconciliation.service import RunSummary

log = get_logger(__name__)

NIGHTLY = "reconciliation.nightly"
QUEUE = "reconciliation"
SCHEDULE = "0 2 * * *"
# the operators whose statements Sika can read (providers.statements.READERS)
OPERATORS = ("flooz", "tmoney")


def nightly(day: dt.date | None = None) -> dict[str, Any]:
    """Reconcile every configured operator for `day` (default yesterday), then seal it.

    An operator that cannot be reconciled (statement unavailable, refused) is logged and
    the others still run; the seal follows whatever happened, since it only covers the
    ledger's own rows.
    """
    settings = load_settings()
    day = day or clock.today() - dt.timedelta(days=1)
    factory = get_sessionmaker()
    results: dict[str, Any] = {}
    for provider in [p for p in OPERATORS if p in available()]:
        try:
            summary: RunSummary = run_nightly(factory, settings, provider, day)
            results[provider] = summary.as_dict()
        except SikaError as exc:
            log.error("reconciliation.nightly_failed", provider=provider, error=str(exc))
            results[provider] = {"error": str(exc)}
    with factory() as session, session.begin():
        seal = seal_day(session, load_ledger_key(settings), day)
    results["seal"] = seal.as_dict()
    log.info("reconciliation.nightly", day=day.isoformat(), seal=seal.hash)
    return results


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    """Declare the nightly actor on `broker` (with periodiq's middleware) and return it."""
    if NIGHTLY in broker.actors:
        return broker.get_actor(NIGHTLY)
    if not any(isinstance(m, PeriodiqMiddleware) for m in broker.middleware):
        broker.add_middleware(PeriodiqMiddleware(skip_delay=3600))

    def run(day: str | None = None) -> None:
        nightly(dt.date.fromisoformat(day) if day else None)

    # safe to run twice: a rerun replaces the day's result and sealing a sealed day is a no-op
    return dramatiq.actor(
        run,
        actor_name=NIGHTLY,
        queue_name=QUEUE,
        broker=broker,
        periodic=cron(SCHEDULE),
        max_retries=3,
        time_limit=3_600_000,
        throws=(SikaError,),
    )


def serve(broker: dramatiq.Broker) -> None:
    """Send the nightly message at 02:00 Lomé time, forever (periodiq's scheduler loop)."""
    # periodiq reads the local time zone; Lomé is UTC all year round
    os.environ["TZ"] = "UTC"
    time.tzset()
    actor = declare(broker)
    scheduler = Scheduler(actors=[actor])
    scheduler.schedule()
    scheduler.loop()
