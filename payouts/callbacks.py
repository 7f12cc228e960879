"""Operator callbacks about payouts: a hint that makes Sika query the line's status now.

A callback never moves money by itself (it is unsigned and may be forged, repeated or
late): it only schedules the status query whose answer does, at most one a line per
`SIKA_CALLBACK_QUERY_INTERVAL`, so a flood of forged callbacks costs the operator little.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.db import get_sessionmaker, run_in_transaction
from core.logging import get_logger
from core.settings import load_settings
from payouts.dispatch import lines_by_reference, schedule_check
from providers import hints
from providers.base import CallbackEvent, Kind
from providers.receiver import register_callback_handler

log = get_logger(__name__)


def on_callback(event: CallbackEvent, callback_id: int) -> None:
    """Queue a status query of the payout line the callback names, if there is one and
    no callback had one queued for it within `SIKA_CALLBACK_QUERY_INTERVAL`."""
    if event.kind is not Kind.PAYOUT:
        return
    interval = load_settings().callback_query_interval

    def schedule(session: Session) -> tuple[list[int], list[int]]:
        ids = lines_by_reference(session, [event.sika_reference])
        claimed = hints.claim(session, (line_subject(i) for i in ids), interval)
        queried = [i for i in ids if line_subject(i) in claimed]
        schedule_check(session, queried)
        return ids, queried

    ids, queried = run_in_transaction(get_sessionmaker(), schedule)
    log.info(
        "payout.callback",
        provider=event.provider,
        reference=event.sika_reference,
        callback_id=callback_id,
        lines=ids,
        queried=queried,
        hinted=event.outcome.value,
    )


def line_subject(line_id: int) -> str:
    """How a payout line is named among the callback hints (`providers.hints`)."""
    return f"payout_line:{line_id}"


def register_handlers() -> None:
    """Subscribe payouts to the callback receiver (called when `sika serve` starts)."""
    register_callback_handler(on_callback)
