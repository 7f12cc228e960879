"""Daily statements in each operator's CSV format, from the transactions of one sandbox-clock
day (by initiated time): payouts, collections and reversals, whatever their status.
"""

from __future__ import annotations

import csv
import io
from datetime import date

from providers.msisdn import Operator
from providers.sandbox.state import (
    MERCHANT_MSISDN,
    MERCHANT_NAME,
    Kind,
    Simulator,
    Transaction,
    TxStatus,
    WalletStatus,
)
from providers.statements import FLOOZ_COLUMNS, TMONEY_COLUMNS

FLOOZ_TYPES = {Kind.PAYOUT: "B2C", Kind.COLLECTION: "C2B", Kind.REVERSAL: "REVERSAL"}
FLOOZ_STATUS = {
    TxStatus.SUCCEEDED: "SUCCESS",
    TxStatus.FAILED: "FAILED",
    TxStatus.PENDING: "PENDING",
}
TMONEY_TYPES = {Kind.PAYOUT: "CREDIT", Kind.COLLECTION: "DEBIT", Kind.REVERSAL: "REVERSAL"}
TMONEY_STATUS = {
    TxStatus.SUCCEEDED: "SUCCES",
    TxStatus.FAILED: "ECHEC",
    TxStatus.PENDING: "EN_COURS",
}


def statement(sim: Simulator, operator: Operator, day: date) -> bytes:
    """That day's statement, UTF-8 CSV with a header line."""
    rows = [tx for tx in sim.transactions if tx.operator == operator and tx.at.date() == day]
    out = io.StringIO()
    if operator == Operator.FLOOZ:
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(FLOOZ_COLUMNS)
        writer.writerows(_flooz_row(sim, tx) for tx in rows)
    else:
        writer = csv.writer(out, delimiter=",", lineterminator="\r\n")
        writer.writerow(TMONEY_COLUMNS)
        writer.writerows(_tmoney_row(tx) for tx in rows)
    return out.getvalue().encode("utf-8")


def _flooz_row(sim: Simulator, tx: Transaction) -> list[str]:
    merchant = MERCHANT_MSISDN[tx.operator]
    wallet = sim.wallets.get(tx.msisdn)
    held = wallet is not None and wallet.operator == tx.operator
    name = wallet.name if held and wallet.status != WalletStatus.UNREGISTERED else ""
    if tx.kind == Kind.PAYOUT:
        parties = [merchant, tx.msisdn, MERCHANT_NAME, name]
    else:
        parties = [tx.msisdn, merchant, name, MERCHANT_NAME]
    return [
        tx.operator_reference,
        tx.at.strftime("%d/%m/%Y %H:%M:%S"),
        *parties,
        FLOOZ_TYPES[tx.kind],
        str(tx.amount),
        str(tx.fee),
        tx.reference,
        FLOOZ_STATUS[tx.status],
    ]


def _tmoney_row(tx: Transaction) -> list[str]:
    return [
        tx.operator_reference,
        tx.reference,
        tx.at.strftime("%Y-%m-%d %H:%M:%S"),
        TMONEY_TYPES[tx.kind],
        tx.msisdn,
        str(tx.amount),
        str(tx.fee),
        TMONEY_STATUS[tx.status],
    ]
