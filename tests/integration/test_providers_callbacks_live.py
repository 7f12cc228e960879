"""Operator callbacks over real HTTP: the sandbox calls Sika's receiver, which stores each one
raw in PostgreSQL and hands the hints on; hints are confirmed by status before being trusted.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.crypto import BlindIndex, Keyring, PiiKeys
from core.settings import Settings
from providers import registry
from providers.base import CallbackEvent, Outcome, PayoutRequest
from providers.models import ProviderCallback
from providers.receiver import (
    callback_body,
    create_app,
    register_callback_handler,
    unregister_callback_handler,
)
from tests.fixtures.sandbox import free_port

# the receiver's personal-data keys: bodies are stored encrypted with them
KEYS = PiiKeys(Keyring({1: os.urandom(32)}), BlindIndex(os.urandom(32)))


@pytest.fixture
def receiver(session_factory: sessionmaker[Session]) -> Iterator[str]:
    """Sika's callback receiver served by uvicorn in a thread, against this test's database."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(session_factory, keys=KEYS), host="127.0.0.1", port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def stored(factory: sessionmaker[Session], count: int, timeout: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        with factory() as session:
            rows = list(session.scalars(select(ProviderCallback).order_by(ProviderCallback.id)))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


@pytest.mark.parametrize("provider", ["flooz", "tmoney"])
def test_sandbox_callbacks_are_stored_raw_and_confirmed_by_status(
    provider: str, sandbox: Any, receiver: str, session_factory: sessionmaker[Session]
) -> None:
    seen: list[CallbackEvent] = []
    lock = threading.Lock()

    def handler(event: CallbackEvent, callback_id: int) -> None:
        with lock:
            seen.append(event)

    register_callback_handler(handler)
    try:
        # Given callbacks pointed at Sika, delayed at random so they arrive out of order
        sandbox.set_callback_url(f"{receiver}/callbacks")
        sandbox.set_faults({"callback_delay_rate": 1.0, "callback_delay_seconds": [0.0, 0.6]})
        sandbox.topup(provider, 100_000)
        adapter = registry.load_adapter(provider, Settings(sandbox_url=sandbox.url))
        prefix = "96" if provider == "flooz" else "90"
        # When three payouts are sent: a success, a locked wallet, a success called back twice
        for suffix in ("000001", "000003", "000009"):
            adapter.payout(
                PayoutRequest(
                    reference=f"LIVE-{suffix}", amount=5000, msisdn=f"228{prefix}{suffix}"
                )
            )
        assert len(stored(session_factory, 4)) >= 4
        # the receiver stores a row before it answers: once every callback the sandbox
        # scheduled is over, the rows are all there and no fifth can come
        sandbox.wait_quiet()
        rows = stored(session_factory, 0)  # as they are now
        # each handler runs just after its answer
        deadline = time.monotonic() + 5
        while len(seen) < len(rows) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        unregister_callback_handler(handler)
    # Then four raw rows are stored (000009 twice), all parsed
    assert len(rows) == 4
    assert sum(t["callbacks_scheduled"] for t in sandbox.transactions()) == 4
    assert all(r.provider == provider and r.parse_error is None for r in rows)
    assert sorted(r.sika_reference for r in rows) == [
        "LIVE-000001",
        "LIVE-000003",
        "LIVE-000009",
        "LIVE-000009",
    ]
    assert all(callback_body(r, KEYS).startswith(b"{") for r in rows)
    # And each hint, whatever its arrival order, agrees with the status query that confirms it
    assert len(seen) == 4
    for event in seen:
        assert adapter.payout_status(event.sika_reference).outcome is event.outcome
    assert {e.sika_reference: e.outcome for e in seen} == {
        "LIVE-000001": Outcome.SUCCEEDED,
        "LIVE-000003": Outcome.FAILED,
        "LIVE-000009": Outcome.SUCCEEDED,
    }
