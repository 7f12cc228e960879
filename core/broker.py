"""The dramatiq broker: RabbitMQ or Redis from `SIKA_BROKER_URL`, or in-process when unset.

`get_broker()` is the one place `dramatiq.set_broker` is called. Actors are declared
against the broker it returns (never at import time), so a module can be imported
without touching the network.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
from dramatiq.brokers.stub import StubBroker

from core.settings import load_settings

_lock = threading.Lock()
_broker: dramatiq.Broker | None = None


def build_broker(url: str | None) -> dramatiq.Broker:
    """A broker for `url`: amqp(s):// → RabbitMQ, redis(s):// → Redis, None → in-process."""
    if not url:
        broker: dramatiq.Broker = StubBroker()
        broker.emit_after("process_boot")
        return broker
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, confirm_delivery=True)
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=url)


def get_broker() -> dramatiq.Broker:
    """The process's broker, built from the settings on first use and set globally."""
    global _broker
    with _lock:
        if _broker is None:
            _broker = build_broker(load_settings().broker_url)
            dramatiq.set_broker(_broker)
        return _broker


def reset_broker() -> None:
    """Close the process's broker and forget it, so the next `get_broker()` reads the
    settings again (a test moving from one broker to another)."""
    global _broker
    with _lock:
        if _broker is not None:
            _broker.close()
            _broker = None


def is_in_process(broker: dramatiq.Broker) -> bool:
    """True when messages never leave this process (no broker URL configured)."""
    return isinstance(broker, StubBroker)


@contextmanager
def running_worker(
    broker: dramatiq.Broker, *, threads: int = 8, queues: set[str] | None = None
) -> Iterator[dramatiq.Worker]:
    """A dramatiq worker consuming `broker` in this process for the length of the block."""
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100, queues=queues)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
