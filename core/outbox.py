"""Transactional outbox: a message is written in the same transaction as the state change
that causes it, then relayed to the broker.

A crash can never lose a message (it is committed with its cause) nor invent one (an
aborted transaction takes its messages with it). Relaying is at-least-once: a message
may reach the broker twice if the relay dies between sending and marking, which is why
every actor is safe to run twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from typing import Any

import dramatiq
from sqlalchemy import BigInteger, DateTime, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from core.db import Base
from core.logging import get_logger

log = get_logger(__name__)

NOTIFY_CHANNEL = "sika_outbox"
_MESSAGE_NAMESPACE = uuid.UUID("6f1c1f7e-5a6b-4c44-9b55-0c2a3f0e7a11")


class OutboxMessage(Base):
    """A message waiting to be relayed to the broker (sent_at NULL) or already relayed."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    queue_name: Mapped[str] = mapped_column(String(100))
    actor_name: Mapped[str] = mapped_column(String(100))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    delay_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_outbox_messages_unsent", "id", postgresql_where=text("sent_at IS NULL")),
    )


def enqueue(
    session: Session,
    actor_name: str,
    *,
    queue_name: str = "default",
    delay_ms: int | None = None,
    **kwargs: Any,
) -> None:
    """Record a message for `actor_name` in the caller's transaction."""
    session.add(
        OutboxMessage(
            queue_name=queue_name, actor_name=actor_name, kwargs=kwargs, delay_ms=delay_ms
        )
    )
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def message_id(outbox_id: int) -> str:
    """A stable dramatiq message id per outbox row, so a re-relayed message is recognisable."""
    return str(uuid.uuid5(_MESSAGE_NAMESPACE, str(outbox_id)))


def relay(factory: sessionmaker[Session], broker: dramatiq.Broker, *, limit: int = 500) -> int:
    """Send up to `limit` pending messages to `broker`; returns how many were sent.

    Rows are claimed with SKIP LOCKED, so several relays can run side by side.
    """
    with factory() as session, session.begin():
        rows = session.execute(
            text(
                "SELECT id, queue_name, actor_name, kwargs, delay_ms FROM outbox_messages "
                "WHERE sent_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
            ),
            {"limit": limit},
        ).all()
        for row in rows:
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=row.queue_name,
                actor_name=row.actor_name,
                args=(),
                kwargs=row.kwargs,
                options={},
                message_id=message_id(row.id),
            )
            broker.enqueue(message, delay=row.delay_ms)
        if rows:
            session.execute(
                text("UPDATE outbox_messages SET sent_at = now() WHERE id = ANY(:ids)"),
                {"ids": [row.id for row in rows]},
            )
    if rows:
        log.debug("outbox relayed", count=len(rows))
    return len(rows)


def relay_all(factory: sessionmaker[Session], broker: dramatiq.Broker) -> int:
    """Relay until nothing is pending; returns the total sent."""
    total = 0
    while sent := relay(factory, broker):
        total += sent
    return total


def pending_count(session: Session) -> int:
    """Messages written but not yet relayed."""
    query = text("SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL")
    return int(session.execute(query).scalar_one())


class Relay:
    """A loop that relays as soon as a transaction commits a message (LISTEN/NOTIFY), and
    at least every `interval` seconds in case a notification was missed."""

    def __init__(
        self, factory: sessionmaker[Session], broker: dramatiq.Broker, *, interval: float = 1.0
    ) -> None:
        self.factory = factory
        self.broker = broker
        self.interval = interval
        self._stopping = False
        # set while the loop listens and has relayed what was pending when it began: from
        # then on a commit wakes it, which a caller relying on NOTIFY can wait for
        self.ready = threading.Event()

    def stop(self) -> None:
        """Ask the loop to end, waking it at once (or within `interval`)."""
        self._stopping = True
        try:
            with self.factory() as session, session.begin():
                session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
        except Exception:  # the database is away: the loop notices within `interval`
            log.warning("outbox relay could not be woken; it stops within its interval")

    def run(self) -> None:
        """Relay until `stop()` is called, reconnecting when the database goes away."""
        while not self._stopping:
            try:
                self._listen()
            except Exception:  # the relay must outlive a database restart
                log.exception("outbox relay lost its database connection; reconnecting")
                time.sleep(self.interval)

    def _listen(self) -> None:
        engine = self.factory.kw["bind"]
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            driver.autocommit = True
            driver.execute(f"LISTEN {NOTIFY_CHANNEL}")
            while not self._stopping:
                try:
                    relay_all(self.factory, self.broker)
                except Exception:  # a broker or database hiccup: try again next pass
                    log.exception("outbox relay pass failed; retrying")
                self.ready.set()
                # wake on the first notification, or after `interval` at the latest
                for _ in driver.notifies(timeout=self.interval, stop_after=1):
                    pass
        finally:
            self.ready.clear()
            raw.invalidate()
