"""The dramatiq actors that carry payout work: send a chunk, query a chunk, SMS a chunk.

Actors are declared against a broker when a worker or an in-process run starts, never at
import time. Each takes ids only and is safe to run twice, since a message may arrive
more than once (docs/architecture.md#runtime).
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq

from core.crypto import load_keys
from core.db import get_sessionmaker
from core.errors import SikaError
from core.settings import load_settings
from payouts.dispatch import CHECK, NOTIFY, SEND, Dispatcher, payout_queue

_lock = threading.Lock()
_dispatcher: Dispatcher | None = None

# a chunk of 100 payouts at 16 in flight, each allowed the operator timeout, fits easily
_TIME_LIMIT_MS = 15 * 60 * 1000


def get_dispatcher() -> Dispatcher:
    """The process's dispatcher, built from the settings on first use."""
    global _dispatcher
    with _lock:
        if _dispatcher is None:
            settings = load_settings()
            _dispatcher = Dispatcher(get_sessionmaker(), settings, load_keys(settings))
        return _dispatcher


def close_dispatcher() -> None:
    """Release the process's dispatcher (its HTTP connections and threads)."""
    global _dispatcher
    with _lock:
        if _dispatcher is not None:
            _dispatcher.close()
            _dispatcher = None


def declare(broker: dramatiq.Broker) -> None:
    """Declare the payout actors on `broker` (once per broker)."""
    if SEND in broker.actors:
        return

    # A configuration or validation error will not mend itself: no retry. Anything else
    # (database restarted, broker hiccup) is retried; every step below is idempotent.
    common: dict[str, Any] = {
        "broker": broker,
        "queue_name": payout_queue(),
        "time_limit": _TIME_LIMIT_MS,
        "throws": (SikaError,),
    }
    work = {"max_retries": 20, "min_backoff": 500, "max_backoff": 30_000}

    @dramatiq.actor(actor_name=SEND, **common, **work)
    def send(line_ids: list[int]) -> None:
        get_dispatcher().send(line_ids)

    @dramatiq.actor(actor_name=CHECK, **common, **work)
    def check(line_ids: list[int], round: int = 0) -> None:
        get_dispatcher().check(line_ids, round)

    # an SMS is a courtesy: fewer, slower retries than the money
    @dramatiq.actor(
        actor_name=NOTIFY, max_retries=5, min_backoff=1_000, max_backoff=60_000, **common
    )
    def notify(line_ids: list[int]) -> None:
        get_dispatcher().notify(line_ids)
