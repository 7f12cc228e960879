"""The SMS gateway client (`POST {SIKA_SMS_URL}`) and French-style amounts for messages.

An SMS is a courtesy, never money: failures are returned as outcomes for the caller to log.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from core.logging import get_logger
from core.settings import Settings
from providers.base import Outcome, Reason
from providers.config import sms_url
from providers.http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    ExchangeFailed,
    build_client,
    exchange,
)
from providers.msisdn import mask

log = get_logger(__name__)


def format_fcfa(amount: int) -> str:
    """`9000` → `9 000 FCFA`: French digit grouping with a plain space, safe in any SMS."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount):,} FCFA".replace(",", " ")


class SmsResult(BaseModel):
    """What the gateway said about one message."""

    model_config = ConfigDict(frozen=True)

    reference: str
    outcome: Outcome
    gateway_id: str | None = None
    reason: Reason | None = None
    detail: str = ""


class SmsClient:
    """Sends one message at a time to the gateway."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url
        self._client = build_client(
            "", connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> SmsClient:
        """Built from `SIKA_SMS_URL` (or `SIKA_SANDBOX_URL`)."""
        return cls(sms_url(settings), **options)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    def send(self, to: str, message: str, reference: str) -> SmsResult:
        """`{"to","message","reference"}` → accepted (succeeded), refused, or unknown."""
        bound = log.bind(provider="sms", reference=reference, msisdn=mask(to))
        try:
            answer = exchange(
                self._client,
                "POST",
                self._url,
                json={"to": to, "message": message, "reference": reference},
            )
        except ExchangeFailed as exc:
            outcome = Outcome.UNKNOWN if exc.sent else Outcome.FAILED
            bound.warning("sms.no_answer", detail=exc.detail)
            return SmsResult(
                reference=reference,
                outcome=outcome,
                reason=Reason.NO_ANSWER if exc.sent else Reason.UNREACHABLE,
                detail=exc.detail,
            )
        try:
            payload = json.loads(answer.body)
        except (UnicodeDecodeError, ValueError):
            payload = None
        if (
            answer.status == 200
            and isinstance(payload, dict)
            and payload.get("status") == "accepted"
        ):
            gateway_id = payload.get("id")
            bound.info("sms.accepted", gateway_id=gateway_id)
            return SmsResult(
                reference=reference,
                outcome=Outcome.SUCCEEDED,
                gateway_id=str(gateway_id) if gateway_id is not None else None,
            )
        outcome = Outcome.UNKNOWN if answer.status >= 500 else Outcome.FAILED
        detail = f"HTTP {answer.status}: {answer.body[:200]!r}"
        bound.warning("sms.refused", outcome=outcome, detail=detail)
        return SmsResult(
            reference=reference,
            outcome=outcome,
            reason=Reason.OPERATOR_REJECTED if outcome is Outcome.FAILED else Reason.OPERATOR_ERROR,
            detail=detail,
        )
