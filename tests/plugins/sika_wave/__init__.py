"""A third operator adapter living outside Sika, found only through `sika.providers`.

Its distribution metadata is written by the test into a temporary directory on sys.path,
exactly as pip would install it; Sika's code is not edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from core.settings import Settings
from providers.base import (
    AccountStatus,
    BalanceResult,
    CallbackEvent,
    CollectionRequest,
    KycResult,
    Outcome,
    PayoutRequest,
    Reason,
    StatementLine,
    TransactionResult,
)


class WaveAdapter:
    """Pays everyone, holds a float of 1,234 francs: enough to prove it was found and used."""

    name: ClassVar[str] = "wave"

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> WaveAdapter:
        return cls()

    def payout(self, request: PayoutRequest) -> TransactionResult:
        return TransactionResult(
            provider=self.name,
            reference=request.reference,
            outcome=Outcome.SUCCEEDED,
            operator_reference="W-1",
        )

    def payout_status(
        self, reference: str, operator_reference: str | None = None
    ) -> TransactionResult:
        return TransactionResult(provider=self.name, reference=reference, outcome=Outcome.SUCCEEDED)

    def collection_status(self, reference: str) -> TransactionResult:
        return TransactionResult(provider=self.name, reference=reference, outcome=Outcome.PENDING)

    def transaction_status(self, operator_reference: str) -> TransactionResult:
        # Wave's own references are `W-<n>`; anything else it never issued
        known = operator_reference.startswith("W-")
        return TransactionResult(
            provider=self.name,
            reference="WAVE-MERCHANT" if known else "",
            outcome=Outcome.SUCCEEDED if known else Outcome.FAILED,
            reason=None if known else Reason.NOT_FOUND,
            operator_reference=operator_reference,
            found=known,
        )

    def request_collection(self, request: CollectionRequest) -> TransactionResult:
        return TransactionResult(
            provider=self.name, reference=request.reference, outcome=Outcome.PENDING
        )

    def balance(self) -> BalanceResult:
        return BalanceResult(provider=self.name, outcome=Outcome.SUCCEEDED, balance=1234)

    def lookup(self, msisdn: str) -> KycResult:
        return KycResult(
            provider=self.name,
            msisdn=msisdn,
            outcome=Outcome.SUCCEEDED,
            status=AccountStatus.ACTIVE,
        )

    @staticmethod
    def parse_callback(headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        return CallbackEvent(
            provider="wave", sika_reference=body.decode(), outcome=Outcome.SUCCEEDED
        )

    @staticmethod
    def parse_statement(data: bytes) -> list[StatementLine]:
        return []

    def close(self) -> None:
        pass
