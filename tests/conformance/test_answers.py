"""Every recorded operator answer in `shapes.SHAPES`, replayed to Sika's adapters, draws the
outcome the table names; and the adapters write what the public clients write where it
matters (the status query's key, getBalance's number, the resend after a refused token).

`httpx.MockTransport` replays the operator's recorded answer: it stands in for the
operator, not for any of Sika's code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from defusedxml.ElementTree import fromstring

from providers.base import CollectionRequest, Outcome, PayoutRequest, Reason
from providers.config import TLC_DEFAULT_KEY
from providers.dialects import Dialect
from providers.flooz import FloozAdapter
from providers.tmoney import SignInRefused, TMoneyAdapter
from tests.conformance.shapes import (
    FIXTURES,
    FLOOZ_COLLECTION_REF,
    FLOOZ_MERCHANT,
    FLOOZ_PAYEE,
    FLOOZ_PAYER,
    FLOOZ_PAYOUT_REF,
    MOOV_TRANSFER_ID,
    SHAPES,
    TMONEY_COLLECTION_REF,
    TMONEY_PAYEE,
    TMONEY_PAYER,
    TMONEY_PAYOUT_REF,
    TMONEY_SHAPES,
    TMONEY_SIGN_IN,
    Call,
    Operator,
    Shape,
)

Handler = Callable[[httpx.Request], httpx.Response]

FLOOZ_URL = "http://flooz.test"
TMONEY_URL = "http://tmoney.test"
TLC = "http://api.merchant.tlc.com/"
DIALECTS = [Dialect.CLIENTS, Dialect.MODEL]


def answer(shape: Shape) -> httpx.Response:
    """The operator's recorded answer, as it came over the wire."""
    return httpx.Response(
        shape.http_status, content=shape.body(), headers={"Content-Type": shape.content_type}
    )


def flooz(handler: Handler, dialect: Dialect) -> FloozAdapter:
    return FloozAdapter(
        FLOOZ_URL,
        "sika",
        "sika",
        TLC_DEFAULT_KEY,
        transport=httpx.MockTransport(handler),
        dialect=dialect,
        merchant_msisdn=FLOOZ_MERCHANT,
    )


def tmoney(handler: Handler, dialect: Dialect) -> TMoneyAdapter:
    return TMoneyAdapter(
        TMONEY_URL, "sika", "sika", transport=httpx.MockTransport(handler), dialect=dialect
    )


class Gateway:
    """The T-Money gateway replayed: `/login` answers `sign_in`, every other call `rest`."""

    def __init__(self, sign_in: Handler, rest: Handler) -> None:
        self.sign_in = sign_in
        self.rest = rest
        self.requests: list[httpx.Request] = []

    @property
    def logins(self) -> int:
        return sum(1 for r in self.requests if r.url.path == "/login")

    def calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/login"]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/login":
            return self.sign_in(request)
        return self.rest(request)


@dataclass
class Observed:
    """What the adapter made of one answer: its outcome, reason and result object."""

    outcome: Outcome
    reason: Reason | None
    result: Any


def _observed(result: Any) -> Observed:
    return Observed(result.outcome, getattr(result, "reason", None), result)


def meet(shape: Shape, dialect: Dialect) -> Observed:
    """Run the adapter call the shape belongs to against its replayed answer."""
    if shape.operator is Operator.FLOOZ:
        return _meet_flooz(shape, dialect)
    return _meet_tmoney(shape, dialect)


def _meet_flooz(shape: Shape, dialect: Dialect) -> Observed:
    if shape.call is Call.CALLBACK:
        headers = {"content-type": shape.content_type}
        return _observed(FloozAdapter.parse_callback(headers, shape.body()))
    adapter = flooz(lambda _request: answer(shape), dialect)
    try:
        return _observed(_flooz_call(adapter, shape.call))
    finally:
        adapter.close()


def _flooz_call(adapter: FloozAdapter, call: Call) -> Any:
    match call:
        case Call.PAYOUT:
            return adapter.payout(
                PayoutRequest(
                    reference=FLOOZ_PAYOUT_REF,
                    msisdn=FLOOZ_PAYEE,
                    amount=9000,
                    description="AgriPME 2026A",
                )
            )
        case Call.PAYOUT_STATUS:
            return adapter.payout_status(FLOOZ_PAYOUT_REF)
        case Call.COLLECTION_STATUS:
            return adapter.collection_status(FLOOZ_COLLECTION_REF)
        case Call.TRANSACTION_STATUS:
            return adapter.transaction_status(MOOV_TRANSFER_ID)
        case Call.REQUEST_COLLECTION:
            return adapter.request_collection(
                CollectionRequest(
                    reference=FLOOZ_COLLECTION_REF,
                    msisdn=FLOOZ_PAYER,
                    amount=160,
                    message="CIZO kit solaire",
                )
            )
        case Call.BALANCE:
            return adapter.balance()
        case Call.LOOKUP:
            return adapter.lookup(FLOOZ_PAYEE)
    raise AssertionError(f"no Flooz call {call}")


def _meet_tmoney(shape: Shape, dialect: Dialect) -> Observed:
    if shape.call is Call.CALLBACK:
        headers = {"content-type": shape.content_type}
        return _observed(TMoneyAdapter.parse_callback(headers, shape.body()))
    signing_in = shape.call is Call.SIGN_IN
    gateway = Gateway(
        lambda _request: answer(shape if signing_in else TMONEY_SIGN_IN),
        lambda _request: answer(shape) if not signing_in else _empty_check(),
    )
    adapter = tmoney(gateway, dialect)
    try:
        if signing_in:
            return _sign_in(adapter, gateway)
        return _observed(_tmoney_call(adapter, shape.call))
    finally:
        adapter.close()


def _empty_check() -> httpx.Response:
    return httpx.Response(200, json={"data": []})


def _sign_in(adapter: TMoneyAdapter, gateway: Gateway) -> Observed:
    try:
        adapter.sign_in()
    except SignInRefused as exc:
        return Observed(Outcome.FAILED, exc.reason, exc)
    # The token is what Sika sends afterwards, whatever shape the sign-in had.
    adapter.payout_status(TMONEY_PAYOUT_REF)
    sent = gateway.calls()[-1].headers.get("authorization", "")
    return Observed(Outcome.SUCCEEDED, None, SimpleNamespace(token=sent.removeprefix("Bearer ")))


def _tmoney_call(adapter: TMoneyAdapter, call: Call) -> Any:
    match call:
        case Call.PAYOUT:
            return adapter.payout(
                PayoutRequest(reference=TMONEY_PAYOUT_REF, msisdn=TMONEY_PAYEE, amount=40000)
            )
        case Call.PAYOUT_STATUS:
            return adapter.payout_status(TMONEY_PAYOUT_REF)
        case Call.COLLECTION_STATUS:
            return adapter.collection_status(TMONEY_COLLECTION_REF)
        case Call.REQUEST_COLLECTION:
            return adapter.request_collection(
                CollectionRequest(
                    reference=TMONEY_COLLECTION_REF,
                    msisdn=TMONEY_PAYER,
                    amount=160,
                    message="CIZO kit solaire",
                )
            )
    raise AssertionError(f"no T-Money call {call}")


# --- the table itself --------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.id)
def test_every_shape_has_its_fixture_and_a_public_source(shape: Shape) -> None:
    # Given a row of the table
    # Then its fixture exists, belongs to its operator, and names a repository and a path
    assert shape.fixture.is_file(), shape.file
    assert shape.file.startswith(f"{shape.operator}/")
    owner, _, name = shape.repo.partition("/")
    assert owner, shape.repo
    assert name, shape.repo
    assert shape.path
    assert not shape.path.startswith("/")
    assert shape.operation


def test_every_fixture_file_is_in_the_table() -> None:
    # Given the fixture files on disk and the table's rows
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.is_file()}
    # Then no recorded answer is left untested
    assert on_disk == {shape.file for shape in SHAPES}


# --- reading: every dialect reads every shape --------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.id)
def test_every_recorded_answer_draws_its_outcome(shape: Shape, dialect: Dialect) -> None:
    # Given the operator answering with the recorded shape
    # When Sika makes the call that meets it, in either dialect (reading is tolerant)
    observed = meet(shape, dialect)
    # Then Sika draws the outcome the table names, with the reason and the ids
    assert observed.outcome is shape.outcome, getattr(observed.result, "detail", observed)
    if shape.reason is not None:
        assert observed.reason is shape.reason, getattr(observed.result, "detail", observed)
    for name, expected in shape.records.items():
        actual = getattr(observed.result, name)
        assert actual == expected, f"{name}: {actual!r}, expected {expected!r}"


# --- writing: Flooz ----------------------------------------------------------------------


def _operation(request: httpx.Request) -> Any:
    """The operation element of a SOAP request Sika sent."""
    body = next(el for el in fromstring(request.content) if el.tag.endswith("Body"))
    return body[0]


def _request_fields(request: httpx.Request) -> dict[str, str]:
    operation = _operation(request)
    request_el = operation.find("request")
    assert request_el is not None, "the fields travel in <request>"
    return {el.tag: el.text or "" for el in request_el}


def _replay(*files: str) -> tuple[list[httpx.Request], Handler]:
    """A handler answering the named Flooz fixtures in turn, and the requests it saw."""
    seen: list[httpx.Request] = []
    bodies = [(FIXTURES / name).read_bytes() for name in files]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = bodies[min(len(seen), len(bodies)) - 1]
        return httpx.Response(200, content=body, headers={"Content-Type": "text/xml"})

    return seen, handler


@pytest.mark.parametrize(
    ("dialect", "field"),
    [(Dialect.CLIENTS, "transid"), (Dialect.MODEL, "referenceid")],
    ids=["clients", "model"],
)
def test_flooz_status_query_carries_our_reference_in_the_dialects_field(
    dialect: Dialect, field: str
) -> None:
    # Given Flooz answering a status query with the clients' <response> shape
    seen, handler = _replay("flooz/status_success.xml")
    # When Sika asks for its payout
    result = flooz(handler, dialect).payout_status(FLOOZ_PAYOUT_REF)
    # Then our reference travels alone, in <transid> as the clients send it (or
    # <referenceid> in the model), inside <request> of getTransactionStatus in TLC's namespace
    assert result.outcome is Outcome.SUCCEEDED
    operation = _operation(seen[0])
    assert operation.tag == f"{{{TLC}}}getTransactionStatus"
    assert _request_fields(seen[0]) == {field: FLOOZ_PAYOUT_REF}


def test_flooz_status_falls_back_to_moovs_id_when_our_reference_is_unknown() -> None:
    # Given Flooz knowing nothing under our reference (94) but the transfer under its own id
    seen, handler = _replay("flooz/status_not_found_94.xml", "flooz/status_by_moov_id.xml")
    # When Sika asks in the clients dialect, knowing Moov's id from the transfer answer
    result = flooz(handler, Dialect.CLIENTS).payout_status(
        FLOOZ_PAYOUT_REF, operator_reference=MOOV_TRANSFER_ID
    )
    # Then it asked by our reference first, then by Moov's id, and draws that answer
    assert [_request_fields(r) for r in seen] == [
        {"transid": FLOOZ_PAYOUT_REF},
        {"transid": MOOV_TRANSFER_ID},
    ]
    assert result.outcome is Outcome.SUCCEEDED
    assert result.reference == FLOOZ_PAYOUT_REF
    assert result.found


def test_flooz_status_not_found_without_moovs_id_asks_once() -> None:
    # Given Flooz knowing nothing under our reference
    seen, handler = _replay("flooz/status_not_found_94.xml")
    # When Sika asks without knowing Moov's id
    result = flooz(handler, Dialect.CLIENTS).payout_status(FLOOZ_PAYOUT_REF)
    # Then one query, and "not found" so that a resend reuses the reference
    assert len(seen) == 1
    assert (result.outcome, result.reason, result.found) == (
        Outcome.FAILED,
        Reason.NOT_FOUND,
        False,
    )


def test_flooz_balance_names_the_merchant_wallet_as_the_clients_do() -> None:
    # Given Flooz answering getBalance
    seen, handler = _replay("flooz/balance.xml")
    # When Sika asks for its float in the clients dialect
    result = flooz(handler, Dialect.CLIENTS).balance()
    # Then the request carries <request><msisdn> with the merchant wallet's number
    assert result.balance == 382222
    assert _operation(seen[0]).tag == f"{{{TLC}}}getBalance"
    assert _request_fields(seen[0]) == {"msisdn": FLOOZ_MERCHANT}


def test_flooz_balance_in_the_model_sends_no_number() -> None:
    # Given Flooz answering getBalance
    seen, handler = _replay("flooz/balance.xml")
    # When Sika asks in the model dialect
    result = flooz(handler, Dialect.MODEL).balance()
    # Then no msisdn is sent at all
    assert result.balance == 382222
    assert _operation(seen[0]).find(".//msisdn") is None


# --- writing: T-Money --------------------------------------------------------------------


def _shape(shape_id: str) -> Shape:
    return next(s for s in TMONEY_SHAPES if s.id == shape_id)


def test_tmoney_refused_token_signs_in_again_and_resends_the_same_request() -> None:
    # Given a gateway that refuses the first token with WSO2's 401 fault, then accepts
    fault, accepted = _shape("tmoney-wso2-fault-401"), _shape("tmoney-tpcredit-accepted-2000")
    tokens = iter(["first-token", "second-token"])

    def sign_in(_request: httpx.Request) -> httpx.Response:
        body = {"statut": {"code": "2000", "message": "ok"}, "data": {"token": next(tokens)}}
        return httpx.Response(200, json=body)

    def rest(request: httpx.Request) -> httpx.Response:
        refused = request.headers["authorization"] == "Bearer first-token"
        return answer(fault if refused else accepted)

    gateway = Gateway(sign_in, rest)
    # When Sika sends a payout
    result = tmoney(gateway, Dialect.CLIENTS).payout(
        PayoutRequest(reference=TMONEY_PAYOUT_REF, msisdn=TMONEY_PAYEE, amount=40000)
    )
    # Then it signed in once more and resent the very same request (same idRequete)
    assert result.outcome is Outcome.PENDING
    assert gateway.logins == 2
    first, second = gateway.calls()
    assert first.url.path == second.url.path == "/m-banking/v1/api/tpcredit"
    assert json.loads(first.content) == json.loads(second.content)
    assert json.loads(second.content)["idRequete"] == TMONEY_PAYOUT_REF
    assert second.headers["authorization"] == "Bearer second-token"


def test_tmoney_refused_sign_in_says_why() -> None:
    # Given a gateway refusing the credentials with statut.code 4001
    refused = _shape("tmoney-signin-refused-4001")
    gateway = Gateway(lambda _r: answer(refused), lambda _r: _empty_check())
    # When Sika signs in
    with pytest.raises(SignInRefused) as caught:
        tmoney(gateway, Dialect.CLIENTS).sign_in()
    # Then the refusal names rejected credentials and nothing else was called
    assert caught.value.reason is Reason.CREDENTIALS_REJECTED
    assert caught.value.detail
    assert gateway.calls() == []


@pytest.mark.parametrize(
    ("dialect", "path"),
    [
        (Dialect.CLIENTS, "/push-api/v1/transactionid"),
        (Dialect.MODEL, "/m-banking/v1/api/tpcredit/check-transaction-id"),
    ],
    ids=["clients", "model"],
)
def test_tmoney_push_status_is_asked_where_the_dialect_says(dialect: Dialect, path: str) -> None:
    # Given a gateway answering the push debit's record
    record = _shape("tmoney-push-transactionid-succes")
    gateway = Gateway(lambda _r: answer(TMONEY_SIGN_IN), lambda _r: answer(record))
    # When Sika asks about its collection
    result = tmoney(gateway, dialect).collection_status(TMONEY_COLLECTION_REF)
    # Then it asked by idRequete at the dialect's path, with the bearer token
    assert result.outcome is Outcome.SUCCEEDED
    (call,) = gateway.calls()
    assert call.method == "GET"
    assert call.url.path == path
    assert parse_qs(call.url.query.decode()) == {"idRequete": [TMONEY_COLLECTION_REF]}
    assert call.headers["authorization"].startswith("Bearer ")


def test_tmoney_sign_in_sends_the_clients_body() -> None:
    # Given a gateway signing in with the clients' statut shape
    gateway = Gateway(lambda _r: answer(TMONEY_SIGN_IN), lambda _r: _empty_check())
    # When Sika signs in
    tmoney(gateway, Dialect.CLIENTS).sign_in()
    # Then it posted exactly the two fields the clients post
    (login,) = gateway.requests
    assert login.method == "POST"
    assert json.loads(login.content) == {"nomUtilisateur": "sika", "motDePasse": "sika"}
