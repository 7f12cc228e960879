"""The outbox relays committed messages to real brokers, and never a rolled-back one."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import dramatiq
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core import outbox
from core.broker import build_broker, running_worker

BROKERS = {
    "in-process": None,
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "redis": "redis://127.0.0.1:6379/0",
}


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> Any:
    broker = build_broker(BROKERS[request.param])
    yield broker
    broker.close()


def _declare_recorder(broker: dramatiq.Broker, queue: str, seen: list[dict[str, Any]]) -> str:
    name = f"record_{queue}"

    def record(**kwargs: Any) -> None:
        seen.append(kwargs)

    dramatiq.actor(record, broker=broker, actor_name=name, queue_name=queue, max_retries=0)
    return name


def _wait_until(predicate: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_committed_messages_reach_a_worker_and_rolled_back_ones_do_not(
    broker: dramatiq.Broker, session_factory: sessionmaker[Session]
) -> None:
    # Given an actor on a queue of this test's own
    queue = f"q{uuid.uuid4().hex[:12]}"
    seen: list[dict[str, Any]] = []
    actor = _declare_recorder(broker, queue, seen)
    # When one transaction commits a message and another rolls its message back
    with session_factory() as session, session.begin():
        outbox.enqueue(session, actor, queue_name=queue, line=1)
    with session_factory() as session:
        session.begin()
        outbox.enqueue(session, actor, queue_name=queue, line=2)
        session.rollback()
    # Then the relay sends exactly the committed one, and a worker runs it once
    assert outbox.relay_all(session_factory, broker) == 1
    assert outbox.relay_all(session_factory, broker) == 0
    with running_worker(broker, threads=2, queues={queue}) as worker:
        assert _wait_until(lambda: len(seen) >= 1)
        # a second run would come from the queue: wait until it is drained and the worker
        # has finished what it took from it
        broker.join(queue, timeout=15_000)
        worker.join()
    assert seen == [{"line": 1}]
    with session_factory() as session:
        assert outbox.pending_count(session) == 0


def test_relay_loop_wakes_on_notify(session_factory: sessionmaker[Session]) -> None:
    # Given a running relay loop on the in-process broker
    broker = build_broker(None)
    queue = f"q{uuid.uuid4().hex[:12]}"
    seen: list[dict[str, Any]] = []
    actor = _declare_recorder(broker, queue, seen)
    loop = outbox.Relay(session_factory, broker, interval=30)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        # listening, and done with what was pending: only a notification wakes it now
        assert loop.ready.wait(timeout=15), "the relay loop never started listening"
        # When a message is committed
        with session_factory() as session, session.begin():
            outbox.enqueue(session, actor, queue_name=queue, n=7)
        # Then it is relayed well before the 30 s polling interval
        with session_factory() as session:
            assert _wait_until(lambda: outbox.pending_count(session) == 0, timeout=5)
            sent = session.execute(
                text("SELECT count(*) FROM outbox_messages WHERE sent_at IS NOT NULL")
            ).scalar_one()
        assert sent == 1
    finally:
        loop.stop()
        thread.join(timeout=35)
