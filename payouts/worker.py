"""Running the workers: a dramatiq worker and an outbox relay in this process, against the
configured broker (RabbitMQ, Redis) or in-process when none is configured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dramatiq
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.broker import get_broker
from core.db import get_sessionmaker, run_in_transaction
from core.logging import get_logger
from core.outbox import Relay
from core.settings import load_settings
from payouts import actors
from payouts.dispatch import STRANDED_GRACE_SECONDS, sweep

log = get_logger(__name__)

Declarer = Callable[[dramatiq.Broker], object]

_declarers: list[Declarer] = []


def register_declarer(declare: Declarer) -> None:
    """Have every worker of this process also declare a programme's own actors."""
    if declare not in _declarers:
        _declarers.append(declare)


def declare_all(broker: dramatiq.Broker, extra: Sequence[Declarer] = ()) -> None:
    """Declare the payout actors, the registered programmes' and `extra`."""
    actors.declare(broker)
    for declare in (*_declarers, *extra):
        declare(broker)


@contextmanager
def running(
    *, threads: int = 8, extra: Sequence[Declarer] = (), relay: bool = True
) -> Iterator[dramatiq.Worker]:
    """Workers (and the outbox relay) running in this process for the length of the block."""
    broker = get_broker()
    declare_all(broker, extra)
    factory = get_sessionmaker()
    relay_loop = Relay(factory, broker, interval=0.5) if relay else None
    relay_thread = (
        threading.Thread(target=relay_loop.run, name="sika-outbox-relay", daemon=True)
        if relay_loop
        else None
    )
    sweeper = Sweeper(factory)
    sweeper_thread = threading.Thread(target=sweeper.run, name="sika-payout-sweeper", daemon=True)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    if relay_thread is not None:
        relay_thread.start()
    sweeper_thread.start()
    try:
        yield worker
    finally:
        sweeper.stop()
        if relay_loop is not None and relay_thread is not None:
            relay_loop.stop()
            relay_thread.join(timeout=10)
        sweeper_thread.join(timeout=10)
        worker.stop()
        actors.close_dispatcher()


class Sweeper:
    """Every quarter of `sweep_after_seconds`, re-queue the work of lines that stalled."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the loop."""
        self._stop.set()

    def run(self) -> None:
        """Sweep until stopped; a failed pass (database away) is retried next period."""
        settings = load_settings()
        period = max(settings.sweep_after_seconds / 4, 0.5)
        # a `submitted` line is queried only once its request has surely timed out
        in_flight = settings.operator_timeout + STRANDED_GRACE_SECONDS
        while not self._stop.wait(period):
            try:
                run_in_transaction(
                    self.factory,
                    lambda s: sweep(
                        s,
                        older_than=settings.sweep_after_seconds,
                        chunk=settings.dispatch_chunk,
                        in_flight=in_flight,
                    ),
                )
            except Exception:
                log.exception("payout sweep failed; retrying next period")


@dataclass(frozen=True)
class Progress:
    """How far a batch has come: lines final, and lines waiting on news from the operator."""

    lines: int
    final: int
    waiting: int
    succeeded: int = 0
    failed: int = 0

    @property
    def settled(self) -> int:
        """Lines Sika can do nothing more about right now."""
        return self.final + self.waiting

    @property
    def done(self) -> bool:
        """Every line is final, or pending/unknown with no status query left to make."""
        return self.settled >= self.lines


def batch_progress(session: Session, batch_id: int) -> Progress:
    """The batch's progress as the database sees it now."""
    row = session.execute(
        text(
            "SELECT count(*) AS lines,"
            " count(*) FILTER (WHERE status IN ('succeeded', 'failed')) AS final,"
            " count(*) FILTER (WHERE status IN ('pending', 'unknown')"
            "   AND check_due_at IS NULL) AS waiting,"
            " count(*) FILTER (WHERE status = 'succeeded') AS succeeded,"
            " count(*) FILTER (WHERE status = 'failed') AS failed "
            "FROM payout_lines WHERE batch_id = :b"
        ),
        {"b": batch_id},
    ).one()
    return Progress(
        int(row.lines), int(row.final), int(row.waiting), int(row.succeeded), int(row.failed)
    )


def wait_for_batch(
    factory: sessionmaker[Session],
    batch_id: int,
    *,
    timeout: float,
    on_progress: Callable[[Progress], Any] | None = None,
    interval: float = 0.5,
) -> Progress:
    """Poll until the batch is done or `timeout` seconds have passed; the last progress."""
    deadline = time.monotonic() + timeout
    while True:
        with factory() as session:
            current = batch_progress(session, batch_id)
        if on_progress is not None:
            on_progress(current)
        if current.done or time.monotonic() >= deadline:
            return current
        time.sleep(interval)
