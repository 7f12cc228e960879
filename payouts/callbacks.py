"""Operator callbacks about payouts: a hint that makes Sika query the line's status now.

A callback never moves money by itself (it is unsigned and may be forged, repeated or
late): it only schedules the status query whose answer does.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.db import get_sessionmaker, run_in_transaction
from core.logging import get_logger
from payouts.dispatch import lines_by_reference, schedule_check
from providers.base import CallbackEvent, Kind
from providers.receiver import register_callback_handler

log = get_logger(__name__)


def on_callback(event: CallbackEvent, callback_id: int) -> None:
    """Queue a status query of the payout line the callback names, if there is one."""
    if event.kind is not Kind.PAYOUT:
        return

    def schedule(session: Session) -> list[int]:
        ids = lines_by_reference(session, [event.sika_reference])
        schedule_check(session, ids)
        return ids

    ids = run_in_transaction(get_sessionmaker(), schedule)
    log.info(
        "payout.callback",
        provider=event.provider,
        reference=event.sika_reference,
        callback_id=callback_id,
        lines=ids,
        hinted=event.outcome.value,
    )


def register_handlers() -> None:
    """Subscribe payouts to the callback receiver (called when `sika serve` starts)."""
    register_callback_handler(on_callback)
