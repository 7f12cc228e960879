"""The HTTP callback receiver behind `sika serve`: store every callback, answer fast,
then hand the parsed hint to the handlers upper layers registered.

Operators retry a callback that is not acknowledged quickly, so the answer never waits on
the handlers; and since the row is committed first, nothing received is ever lost. A body
names farmers and their phones, so it is stored encrypted, beside what was parsed from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError as PydanticError
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.crypto import PiiKeys, load_keys
from core.errors import ValidationError
from core.logging import get_logger
from core.settings import load_settings
from providers import registry
from providers.base import CallbackEvent
from providers.models import ProviderCallback

MAX_BODY_BYTES = 64 * 1024
# the associated data of an encrypted body: it decrypts only as a callback body
CALLBACK_BODY = "provider_callbacks.body"
# a phone number, however spaced, in a parser's message about a body it could not read
_NUMBER = re.compile(r"\+?\d(?:[\s.-]?\d){5,}")
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

CallbackHandler = Callable[[CallbackEvent, int], None]

log = get_logger(__name__)

_handlers: list[CallbackHandler] = []


def register_callback_handler(handler: CallbackHandler) -> CallbackHandler:
    """Subscribe `handler(event, callback_id)` to every parsed callback; usable as a decorator.

    Programmes (AgriPME payouts, CIZO collections) register theirs at start-up. A handler
    receives a HINT: it must confirm with the adapter's `payout_status` before money moves,
    must be idempotent (operators send duplicates), and should only enqueue work. Its
    exceptions are logged and swallowed: the row is already stored.
    """
    if handler not in _handlers:
        _handlers.append(handler)
    return handler


def unregister_callback_handler(handler: CallbackHandler) -> None:
    """Remove a handler registered before (no error when absent)."""
    if handler in _handlers:
        _handlers.remove(handler)


def _dispatch(event: CallbackEvent, callback_id: int) -> None:
    for handler in list(_handlers):
        try:
            handler(event, callback_id)
        except Exception:
            log.exception(
                "callback.handler_failed",
                provider=event.provider,
                reference=event.sika_reference,
                callback_id=callback_id,
                handler=getattr(handler, "__qualname__", repr(handler)),
            )


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def parse_error_summary(exc: Exception) -> str:
    """Why a body was not parsed, without what it said: a validation error gives only
    its fields and error types, any other message has its numbers masked."""
    if isinstance(exc, PydanticError):
        where = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['type']}"
            for error in exc.errors()
        )
        return f"{type(exc).__name__}: {where}"[:1000]
    return _NUMBER.sub("…", f"{type(exc).__name__}: {exc}")[:1000]


def callback_body(row: ProviderCallback, keys: PiiKeys) -> bytes | None:
    """A stored callback's body as received (None for one stored before encryption)."""
    if row.body_enc is None:
        return None
    return keys.keyring.decrypt_bytes(row.body_enc, CALLBACK_BODY)


def _sms_reference(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    value = data.get("reference") if isinstance(data, dict) else None
    return str(value)[:128] if value else None


def create_app(
    session_factory: sessionmaker[Session],
    *,
    max_body: int = MAX_BODY_BYTES,
    keys: PiiKeys | None = None,
) -> Starlette:
    """The receiver app writing to `session_factory`'s database, encrypting bodies with
    `keys` (by default the personal-data keys the settings name).

    The installed adapters are read once here, so each callback costs no entry-point scan.
    """
    ring = (keys or load_keys(load_settings())).keyring
    parsers = {name: registry.adapter_class(name).parse_callback for name in registry.available()}

    def parse(provider: str, headers: dict[str, str], body: bytes) -> CallbackEvent:
        if provider == "sms":
            raise ValidationError("SMS delivery reports are stored, not parsed into payment hints")
        return parsers[provider](headers, body)

    def store(provider: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        event: CallbackEvent | None = None
        error: str | None = None
        try:
            event = parse(provider, headers, body)
        except Exception as exc:  # any parser bug still leaves the row stored
            error = parse_error_summary(exc)
        row = ProviderCallback(
            provider=provider,
            headers=headers,
            body_enc=ring.encrypt_bytes(body, CALLBACK_BODY),
            sika_reference=(
                event.sika_reference[:128]
                if event
                else _sms_reference(body)
                if provider == "sms"
                else None
            ),
            operator_reference=(event.operator_reference or "")[:128] or None if event else None,
            outcome=str(event.outcome) if event else None,
            parse_error=error,
        )
        with session_factory() as session:
            session.add(row)
            session.commit()
            return row.id, (event if event is not None else error)

    async def callback(request: Request) -> JSONResponse:
        provider = request.path_params["provider"]
        if provider != "sms" and provider not in parsers:
            return JSONResponse({"error": f"unknown provider {provider!r}"}, status_code=404)
        try:
            body = await _read_body(request, max_body)
        except _TooLarge:
            log.warning("callback.too_large", provider=provider, limit=max_body)
            return JSONResponse({"error": f"body larger than {max_body} bytes"}, status_code=413)
        headers = {
            key: ("***" if key.lower() in SENSITIVE_HEADERS else value)
            for key, value in request.headers.items()
        }
        callback_id, parsed = await run_in_threadpool(store, provider, headers, body)
        if isinstance(parsed, CallbackEvent):
            log.info(
                "callback.received",
                provider=provider,
                callback_id=callback_id,
                reference=parsed.sika_reference,
                operator_reference=parsed.operator_reference,
                outcome=parsed.outcome,
            )
            task = BackgroundTask(_dispatch, parsed, callback_id)
            return JSONResponse({"id": callback_id, "status": "received"}, background=task)
        log.warning(
            "callback.unparsed", provider=provider, callback_id=callback_id, parse_error=parsed
        )
        # Acknowledged anyway: the row is kept, and a 4xx would only make the
        # operator resend the same unreadable body.
        return JSONResponse({"id": callback_id, "status": "stored", "parse_error": parsed})

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/callbacks/{provider}", callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
