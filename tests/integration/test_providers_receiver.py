"""The callback receiver stores every callback raw in PostgreSQL before anything else,
refuses oversize bodies, and hands parsed hints to registered handlers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.crypto import BlindIndex, Keyring, PiiKeys, load_keys
from core.settings import load_settings
from providers.base import CallbackEvent, Outcome
from providers.models import ProviderCallback
from providers.receiver import (
    callback_body,
    create_app,
    register_callback_handler,
    unregister_callback_handler,
)
from tests.conftest import SIKA

with warnings.catch_warnings():  # starlette's notice about httpx2 is not ours to act on
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

FLOOZ_BODY = json.dumps(
    {
        "amount": 9000,
        "refid": "F1",
        "mrchrefid": "AGR-1",
        "msisdn": "22896000001",
        "status": "0",
        "message": "ok",
    }
).encode()

# the receiver's personal-data keys: bodies are stored encrypted with them
KEYS = PiiKeys(Keyring({1: os.urandom(32)}), BlindIndex(os.urandom(32)))


def rows(factory: sessionmaker[Session]) -> list[ProviderCallback]:
    with factory() as session:
        return list(session.scalars(select(ProviderCallback).order_by(ProviderCallback.id)))


def test_callbacks_are_stored_raw_and_handed_to_handlers(
    session_factory: sessionmaker[Session],
) -> None:
    seen: list[tuple[CallbackEvent, int]] = []

    def handler(event: CallbackEvent, callback_id: int) -> None:
        seen.append((event, callback_id))

    def broken(event: CallbackEvent, callback_id: int) -> None:
        raise RuntimeError("a bug upstairs must not lose the callback")

    register_callback_handler(broken)
    register_callback_handler(handler)
    try:
        client = TestClient(create_app(session_factory, keys=KEYS))
        # Given a Flooz callback, sent twice (operators duplicate), and a garbage one
        for _ in range(2):
            answer = client.post(
                "/callbacks/flooz",
                content=FLOOZ_BODY,
                headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
            )
            assert answer.status_code == 200
        garbage = client.post("/callbacks/tmoney", content=b"\x00not json")
        assert garbage.status_code == 200
    finally:
        unregister_callback_handler(broken)
        unregister_callback_handler(handler)
    # Then all three are stored byte for byte (encrypted), secrets in headers masked
    stored = rows(session_factory)
    assert [r.provider for r in stored] == ["flooz", "flooz", "tmoney"]
    assert callback_body(stored[0], KEYS) == FLOOZ_BODY
    assert callback_body(stored[2], KEYS) == b"\x00not json"
    assert stored[0].sika_reference == "AGR-1"
    assert stored[0].operator_reference == "F1"
    assert stored[0].outcome == "succeeded"
    assert stored[0].received_at.tzinfo is not None
    assert stored[0].headers["authorization"] == "***"
    assert stored[2].parse_error
    assert stored[2].sika_reference is None
    # And the handler saw both parsed hints, with their row ids
    assert [(e.sika_reference, e.outcome, i) for e, i in seen] == [
        ("AGR-1", Outcome.SUCCEEDED, stored[0].id),
        ("AGR-1", Outcome.SUCCEEDED, stored[1].id),
    ]


def test_oversize_and_unknown_provider_are_refused(session_factory: sessionmaker[Session]) -> None:
    client = TestClient(create_app(session_factory, max_body=1024, keys=KEYS))
    assert client.post("/callbacks/flooz", content=b"x" * 1025).status_code == 413

    def chunked():  # no Content-Length: the limit must hold while streaming too
        for _ in range(10):
            yield b"y" * 200

    assert client.post("/callbacks/tmoney", content=chunked()).status_code == 413
    assert client.post("/callbacks/mtn", content=b"{}").status_code == 404
    assert client.get("/healthz").json() == {"status": "ok"}
    assert rows(session_factory) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sika_serve_receives_over_real_http(
    sika_env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    import os

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")} | sika_env
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [SIKA, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail((tmp_path / "serve.log").read_text())
            time.sleep(0.1)
        answer = httpx.post(f"{url}/callbacks/flooz", content=FLOOZ_BODY, timeout=5)
        assert answer.status_code == 200
        big = httpx.post(f"{url}/callbacks/flooz", content=b"z" * 70_000, timeout=5)
        assert big.status_code == 413
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    stored = rows(session_factory)
    keys = load_keys(load_settings())  # the dev keys `sika serve` made under SIKA_HOME
    assert [(r.provider, r.sika_reference, callback_body(r, keys)) for r in stored] == [
        ("flooz", "AGR-1", FLOOZ_BODY)
    ]


def test_a_body_the_parser_chokes_on_is_still_stored(
    session_factory: sessionmaker[Session],
) -> None:
    client = TestClient(create_app(session_factory, keys=KEYS))
    hostile = json.dumps(
        {"mrchrefid": "R" * 5000, "status": {"nested": True}, "amount": 10**30}
    ).encode()
    assert client.post("/callbacks/flooz", content=hostile).status_code == 200
    [row] = rows(session_factory)
    assert callback_body(row, KEYS) == hostile
