"""The nightly job on a real broker (Redis): declared as a periodiq actor due at 02:00
Lomé time, and a message on its queue consumed by a worker reconciles and seals the day
that has ended on Sika's clock (here 31 December, whatever the wall clock says).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator

import dramatiq
import pendulum
import pytest
from dramatiq.brokers.redis import RedisBroker
from periodiq import PeriodiqMiddleware, cron
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core import clock, db, settings
from reconciliation import scheduler
from tests.conftest import new_years_eve
from tests.fixtures.sandbox import Sandbox

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def broker() -> Iterator[RedisBroker]:
    """A Redis broker in a namespace of this test's own, emptied afterwards."""
    found = RedisBroker(url=REDIS, namespace=f"sika-test-{uuid.uuid4().hex[:8]}")
    yield found
    found.flush_all()
    found.close()


def test_nightly_actor_is_periodic_at_two(broker: RedisBroker) -> None:
    # When the nightly actor is declared on the broker
    actor = scheduler.declare(broker)
    # Then periodiq schedules it every day at 02:00 (Lomé is UTC), with explicit limits
    assert actor.options["periodic"] == cron("0 2 * * *")
    assert any(isinstance(m, PeriodiqMiddleware) for m in broker.middleware)
    spec = actor.options["periodic"]
    due = spec.next_valid_date(pendulum.datetime(2026, 11, 23, 17, 40, tz="UTC"))
    assert due == pendulum.datetime(2026, 11, 24, 2, 0, tz="UTC")
    assert spec.validate(pendulum.datetime(2026, 11, 24, 2, 0, tz="UTC"))
    assert not spec.validate(pendulum.datetime(2026, 11, 24, 3, 0, tz="UTC"))
    assert actor.queue_name == scheduler.QUEUE
    assert actor.options["max_retries"] == 3
    assert actor.options["time_limit"] > 0
    # And declaring twice (the worker and the scheduler in one process) is harmless
    assert scheduler.declare(broker) is actor


def test_nightly_message_is_consumed_by_a_worker(
    broker: RedisBroker,
    sika_env: dict[str, str],
    sandbox: Sandbox,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    clock_at: Callable[[dt.datetime], dt.datetime],
) -> None:
    # Given Sika pointed at the sandbox and the actor on a real broker, in the last
    # half second of 31 December on Sika's clock and the sandbox's
    monkeypatch.setenv("SIKA_SANDBOX_URL", sandbox.url)
    settings.load_settings.cache_clear()
    db.get_sessionmaker.cache_clear()
    eve = clock_at(new_years_eve() + dt.timedelta(seconds=0.5))
    actor = scheduler.declare(broker)
    day = eve.date().isoformat()
    # When, past midnight, the scheduler's message (no day: the day that has ended) is
    # sent and a worker consumes the queue
    while clock.today() == eve.date():
        time.sleep(0.01)
    actor.send()
    worker = dramatiq.Worker(broker, queues={scheduler.QUEUE}, worker_threads=1)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with session_factory() as s:
                sealed = s.execute(
                    text("SELECT count(*) FROM ledger_seals WHERE day = :d"), {"d": day}
                ).scalar_one()
            if sealed:
                break
            time.sleep(0.5)
    finally:
        worker.stop()
    # Then both operators were reconciled for that day, then the day was sealed
    with session_factory() as s:
        runs = s.execute(
            text("SELECT provider FROM recon_runs WHERE day = :d ORDER BY provider"), {"d": day}
        ).scalars()
        assert list(runs) == ["flooz", "tmoney"]
    assert sealed == 1
