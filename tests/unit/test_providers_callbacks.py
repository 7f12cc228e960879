"""Callback parsing: operator bodies → typed hints; garbage → `CallbackError`, never a hint."""

from __future__ import annotations

import json

import pytest

from providers.base import CallbackError, Kind, Outcome, Reason
from providers.flooz import FloozAdapter
from providers.tmoney import TMoneyAdapter


def test_flooz_callback() -> None:
    body = json.dumps(
        {
            "amount": "9000",
            "refid": "F1",
            "mrchrefid": "AGR-1",
            "msisdn": "22896000001",
            "status": "0",
            "message": "ok",
        }
    ).encode()
    event = FloozAdapter.parse_callback({}, body)
    assert (
        event.provider,
        event.sika_reference,
        event.operator_reference,
        event.outcome,
        event.amount,
        event.kind,
    ) == ("flooz", "AGR-1", "F1", Outcome.SUCCEEDED, 9000, Kind.PAYOUT)


def test_flooz_callback_failure_code() -> None:
    body = json.dumps(
        {
            "amount": 9000,
            "refid": "F2",
            "mrchrefid": "AGR-2",
            "status": 555,
            "msisdn": "22896000002",
            "message": "not registered",
        }
    ).encode()
    event = FloozAdapter.parse_callback({}, body)
    assert (event.outcome, event.reason) == (Outcome.FAILED, Reason.NOT_REGISTERED)


def test_tmoney_callback() -> None:
    body = json.dumps(
        {
            "code": "2002",
            "idRequete": "AGR-3",
            "refTmoney": "T3",
            "statutRequete": "SUCCES",
            "typeRequete": "CREDIT",
            "montant": 40000,
            "numeroClient": "22890000001",
        }
    ).encode()
    event = TMoneyAdapter.parse_callback({}, body)
    assert (event.sika_reference, event.operator_reference, event.outcome, event.amount) == (
        "AGR-3",
        "T3",
        Outcome.SUCCEEDED,
        40000,
    )
    debit = json.loads(body) | {
        "typeRequete": "DEBIT",
        "statutRequete": "ECHEC",
        "description": "COMPTE_BLOQUE",
    }
    event = TMoneyAdapter.parse_callback({}, json.dumps(debit).encode())
    assert (event.kind, event.outcome, event.reason) == (
        Kind.COLLECTION,
        Outcome.FAILED,
        Reason.ACCOUNT_LOCKED,
    )


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'{"refid": "F1"}', b'{"mrchrefid": "A", "amount": "lots"}', b"\xff\xfe"],
)
def test_flooz_garbage_is_refused(body: bytes) -> None:
    with pytest.raises(CallbackError):
        FloozAdapter.parse_callback({}, body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b'{"statutRequete": "SUCCES"}',
        b'{"idRequete": "A"}',
        b'{"idRequete": "A", "statutRequete": "SUCCES", "montant": [1]}',
    ],
)
def test_tmoney_garbage_is_refused(body: bytes) -> None:
    with pytest.raises(CallbackError):
        TMoneyAdapter.parse_callback({}, body)
