"""Bounds on untrusted input against real PostgreSQL: amounts and counters the ledger can
hold, registry files that cannot mislead the import, callbacks stored without a phone
number in clear, and forged callbacks that cost one status query a line, not one each.
Each test is a finding of issue 12 that the code before these bounds failed."""

from __future__ import annotations

import json
import os
import tomllib
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from agripme import seasons
from agripme.models import FIRST_NAME, LAST_NAME, Farmer
from agripme.registry import FARMERS_IMPORT, ImportReport, import_arguments, import_farmers
from agripme.sample import write_sample_registry
from cizo import collections
from cizo import registry as cizo_registry
from cizo.models import Payment, PaymentStatus
from core import agents, signing
from core.authority import SignedRequest, sign_request, signed_by
from core.bounds import MAX_AMOUNT, MAX_COUNTER
from core.crypto import BlindIndex, Keyring, PiiKeys, load_keys
from core.db import get_sessionmaker, unit_of_work
from core.errors import LedgerError, ValidationError
from core.models import Role
from core.outbox import OutboxMessage
from core.settings import Settings, load_settings
from ledger import api
from ledger.types import AccountKind, AccountSpec, Transfer
from payouts import callbacks as payout_callbacks
from payouts.dispatch import CHECK
from providers.base import CallbackEvent, Kind, Outcome
from providers.models import ProviderCallback
from providers.receiver import callback_body, create_app, unregister_callback_handler
from tests.conftest import _clear_caches
from tests.fixtures.sandbox import Sandbox
from tests.payout_world import (
    PEOPLE,
    RULES,
    approve,
    create_season,
    dispatch,
    fund,
    import_registry,
    lines,
    make_batch,
)

with warnings.catch_warnings():  # starlette's notice about httpx2 is not ours to act on
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

KEYS = PiiKeys(Keyring({1: os.urandom(32)}), BlindIndex(os.urandom(32)))
HOUSEHOLD = "22896000031"  # a CIZO kit's household
HEADER = "national_id,first_name,last_name,phone,region,prefecture,canton,village,crop,area_ha\n"


def _row(n: int, first: str = "Afi", last: str = "Mensah") -> str:
    return f"TG-{n:03d},{first},{last},228901234{n:02d},Savanes,Tone,Dapaong,Nano,mil,1.5\n"


def _libpq(url: str) -> str:
    return url.replace("+psycopg", "")


def _farmers(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Farmer)) or 0


# --- the ledger's amounts and counters ---------------------------------------------------


@pytest.fixture
def accounts(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory() as session, session.begin():
        api.create_accounts(
            session, [AccountSpec("a", AccountKind.ASSET), AccountSpec("b", AccountKind.EQUITY)]
        )
    return session_factory


def test_a_counter_past_its_bound_is_refused_in_a_sentence_and_changes_nothing(
    accounts: sessionmaker[Session],
) -> None:
    # Given an account credited up to the counters' bound, 10^15 at a time
    for i in range(MAX_COUNTER // MAX_AMOUNT):
        assert api.transfer(accounts, Transfer.single(f"t{i}", "a", "b", MAX_AMOUNT)).ok
    # When one more franc is sent there, Then the ledger refuses it in one sentence
    with pytest.raises(LedgerError, match=r"transfer t9: .*9,000,000,000,000,000 francs"):
        api.transfer(accounts, Transfer.single("t9", "a", "b", 1))
    # And nothing moved, and the account keeps working within its bound
    with accounts() as session:
        assert api.balance(session, "b").credits_posted == MAX_COUNTER
        assert api.get_transfer(session, "t9") is None
    assert api.transfer(accounts, Transfer.single("back", "b", "a", 5)).ok
    with accounts() as session:
        assert api.verify_ledger(session).ok


def test_the_database_refuses_an_amount_over_the_bound_whoever_calls_it(
    accounts: sessionmaker[Session], database_url: str
) -> None:
    # sika_app calling the ledger's functions itself, past every Python check
    with psycopg.connect(_libpq(database_url)) as conn:
        for call in (
            "SELECT * FROM ledger_move(ARRAY['x1'], 'a', 'b', ARRAY[%s]::bigint[], 'single')",
            "SELECT * FROM ledger_submit(ARRAY['x2'], ARRAY['a'], ARRAY['b'],"
            " ARRAY[%s]::bigint[], ARRAY['single'], NULL, NULL, NULL, NULL)",
        ):
            with pytest.raises(psycopg.errors.CheckViolation, match="amount_bounded"):
                conn.execute(call, (MAX_AMOUNT + 1,))
            conn.rollback()
    with accounts() as session:
        assert api.balance(session, "b").credits_posted == 0


def test_counters_cannot_be_pushed_past_the_bound_behind_the_ledgers_back(
    accounts: sessionmaker[Session], admin_database_url: str
) -> None:
    # a superuser who disables the counters' guard still meets the CHECK
    with psycopg.connect(_libpq(admin_database_url)) as conn:
        conn.execute("ALTER TABLE ledger_accounts DISABLE TRIGGER ledger_accounts_guard")
        with pytest.raises(psycopg.errors.CheckViolation, match="counters_bounded"):
            conn.execute(
                "UPDATE ledger_accounts SET credits_posted = %s WHERE code = 'b'", (2**63 - 1,)
            )


def test_cizo_prices_and_the_programme_are_bounded_in_python_and_in_the_database(
    session_factory: sessionmaker[Session], admin_database_url: str
) -> None:
    with session_factory() as session:
        with pytest.raises(ValidationError, match=r"--per-day .*10\^15"):
            cizo_registry.add_plan(
                session, None, code="BIG", company="X", deposit=0, per_day=2**63, term_days=1
            )
        with pytest.raises(ValidationError, match="price"):
            cizo_registry.add_plan(
                session, None, code="BIG", company="X", deposit=0, per_day=MAX_AMOUNT,
                term_days=2,
            )
        with pytest.raises(ValidationError, match=r"--monthly-amount .*10\^15"):
            cizo_registry.set_programme(session, None, monthly_amount=2**63 - 1)
        with pytest.raises(ValidationError, match="--months"):
            cizo_registry.set_programme(session, None, months=2**31)
    with (
        psycopg.connect(_libpq(admin_database_url)) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="cizo_programme_bounded"),
    ):
        conn.execute("UPDATE cizo_programme SET monthly_subsidy_amount = %s", (2**62,))


# --- registry files --------------------------------------------------------------------------


@pytest.fixture
def importer(session_factory: sessionmaker[Session]) -> Any:
    """Imports as the maker Ama would: a request signed with her key, naming the file."""
    key = signing.generate_private_key()
    with unit_of_work(session_factory) as session:
        agents.add_agent(session, "ama", Role.MAKER, public_key_pem=signing.public_pem(key))

    def run(path: Path, **kw: Any) -> ImportReport:
        request = sign_request(FARMERS_IMPORT, import_arguments(path), "ama", key)
        return import_farmers(session_factory, path, KEYS, request=request, **kw)

    return run


@pytest.fixture
def registry_file(tmp_path: Path):
    def write(body: str) -> Path:
        path = tmp_path / "farmers.csv"
        path.write_text(HEADER + body, encoding="utf-8")
        return path

    return write


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        # a 200 KB field: the csv module's own limit (128 KB) was a raw _csv.Error
        (_row(1) + _row(2, first="A" * 200_000) + _row(3), "row 2: first_name is longer than 4096"),
        (_row(1) + _row(2, last="B" * 5_000), "row 2: last_name is longer than 4096"),
        # a quote never closed used to swallow rows 3 and 4 into row 2's first name
        (_row(1) + _row(2, first='"Afi') + _row(3) + _row(4), "row 2: first_name"),
    ],
    ids=["200KB", "5KB", "unterminated-quote"],
)
def test_a_file_the_reader_cannot_trust_is_refused_whole(
    session_factory: sessionmaker[Session],
    registry_file: Any,
    body: str,
    refusal: str,
    importer: Any,
) -> None:
    path = registry_file(body)
    with pytest.raises(ValidationError, match=refusal) as caught:
        importer(path, chunk_rows=1)
    assert "nothing was imported" in str(caught.value)
    # row 1 was valid and written in its own chunk: the one transaction dropped it
    assert _farmers(session_factory) == 0


def test_phone_and_telephone_together_are_refused(
    session_factory: sessionmaker[Session], tmp_path: Path, importer: Any
) -> None:
    path = tmp_path / "farmers.csv"
    path.write_text(
        HEADER.replace("phone", "phone,telephone")
        + "TG-001,Afi,Mensah,22890123401,22890999999,Savanes,Tone,Dapaong,Nano,mil,1.5\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="'phone' and 'telephone' both give the phone"):
        importer(path)
    assert _farmers(session_factory) == 0


def test_names_with_bidi_zero_width_or_control_characters_are_refused_by_row_and_field(
    session_factory: sessionmaker[Session], registry_file: Any, importer: Any
) -> None:
    path = registry_file(
        _row(1)
        + _row(2, first="Afi\u202eartiM")  # displays as "AfiMitra" reversed
        + _row(3, last="Men\u200bsah")  # looks like row 1's farmer
        + _row(4, first="Ko\x1bdjo")
        + _row(5, last="Kpo\u2067dar")
    )
    report = importer(path)
    assert [(e.row, e.field) for e in report.errors] == [
        (2, "first_name"), (3, "last_name"), (4, "first_name"), (5, "last_name")
    ]
    assert "U+202E" in report.errors[0].message
    assert (report.accepted, report.rejected) == (1, 4)
    with session_factory() as session:
        [farmer] = session.scalars(select(Farmer)).all()
        names = (
            KEYS.keyring.decrypt(farmer.first_name_enc, FIRST_NAME),
            KEYS.keyring.decrypt(farmer.last_name_enc, LAST_NAME),
        )
    assert names == ("Afi", "Mensah")


def test_the_database_refuses_a_place_with_a_bidi_override(
    registry_file: Any, admin_database_url: str, importer: Any
) -> None:
    importer(registry_file(_row(1)))
    with psycopg.connect(_libpq(admin_database_url)) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="places_readable"):
            conn.execute("UPDATE farmers SET village = 'Nano' || chr(8238)")
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation, match="places_readable"):
            conn.execute("UPDATE farmers SET crop = repeat('x', 201)")
        conn.rollback()
        conn.execute("UPDATE farmers SET village = 'Nanò'")  # an accent is a letter


# --- stored callbacks ------------------------------------------------------------------------


def _flooz(reference: str, msisdn: str, refid: str) -> bytes:
    return json.dumps(
        {"amount": 9000, "refid": refid, "mrchrefid": reference, "msisdn": msisdn,
         "status": "0", "message": f"paid {msisdn}"}
    ).encode()


def test_stored_callbacks_keep_no_phone_number_in_clear(
    session_factory: sessionmaker[Session], admin_database_url: str
) -> None:
    # Given 25 farmers' payouts called back, each naming the farmer's phone number
    client = TestClient(create_app(session_factory, keys=KEYS))
    phones = [f"228960000{n:02d}" for n in range(25)]
    for n, phone in enumerate(phones):
        assert client.post(
            "/callbacks/flooz", content=_flooz(f"AGR-{n}", phone, f"F{n}")
        ).status_code == 200
    client.post("/callbacks/tmoney", content=b'{"numeroClient": "22890000099", "x": [')
    # Then the rows still say which payout each was about, and the body decrypts
    with session_factory() as session:
        rows = list(session.scalars(select(ProviderCallback).order_by(ProviderCallback.id)))
    assert [r.sika_reference for r in rows[:25]] == [f"AGR-{n}" for n in range(25)]
    assert phones[0].encode() in (callback_body(rows[0], KEYS) or b"")
    # But no phone number is anywhere in the table's bytes as PostgreSQL holds them
    with psycopg.connect(_libpq(admin_database_url), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        as_text = "\n".join(
            r[0] for r in conn.execute("SELECT t::text FROM provider_callbacks t").fetchall()
        )
        files = [
            bytes(r[0])
            for r in conn.execute(
                "SELECT pg_read_binary_file(pg_relation_filepath(c.oid)) FROM pg_class c"
                " WHERE c.oid IN ('provider_callbacks'::regclass,"
                " (SELECT reltoastrelid FROM pg_class WHERE oid = 'provider_callbacks'::regclass))"
            ).fetchall()
        ]
    raw = b"".join(files)
    assert b"AGR-0" in raw  # the file read is the table's
    for phone in [*phones, "22890000099"]:
        assert phone not in as_text
        assert phone[3:].encode() not in raw


# --- forged callbacks coalesce -----------------------------------------------------------------


def _checks_per_line(factory: sessionmaker[Session]) -> Counter[int]:
    """How many status queries of each payout line are queued (`payouts.check` messages)."""
    with factory() as session:
        queued = session.scalars(
            select(OutboxMessage.kwargs).where(OutboxMessage.actor_name == CHECK)
        )
        return Counter(line for kwargs in queued for line in kwargs["line_ids"])


def test_a_thousand_forged_callbacks_cost_one_status_query_per_line(
    sika_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    admin_database_url: str,
    sandbox: Sandbox,
) -> None:
    # an hour: a thousand requests take longer than the default 30 s on a busy machine
    monkeypatch.setenv("SIKA_CALLBACK_QUERY_INTERVAL", "3600")
    # the batch's pre-flight looks each wallet up at the operators
    monkeypatch.setenv("SIKA_SANDBOX_URL", sandbox.url)
    _clear_caches()
    keys = load_keys(load_settings())
    # Given a real AgriPME batch of three lines, made, approved and dispatched
    with unit_of_work() as session:
        for name, role in PEOPLE.items():
            agents.add_agent(session, name, role)
    import_registry(write_sample_registry(tmp_path / "farmers.csv", 3), keys)
    create_season("2026A", seasons.parse_rules(tomllib.loads(RULES)))
    for operator in ("flooz", "tmoney"):
        fund(operator, 1_000_000, f"test:fund:{operator}")
    batch_id = make_batch(keys)
    approve(batch_id)
    assert dispatch(batch_id).queued == 3
    queued = lines(sika_env["SIKA_DATABASE_URL"])
    assert [row["status"] for row in queued] == ["queued"] * 3
    ids = {row["reference"]: row["id"] for row in queued}
    factory = get_sessionmaker()
    assert _checks_per_line(factory) == Counter()
    payout_callbacks.register_handlers()
    try:
        client = TestClient(create_app(factory, keys=keys))
        # When 1,000 forged callbacks name their references (and one naming no line)
        references = [*ids, "SKNOLINE-1-1"]
        for n in range(1000):
            answer = client.post(
                "/callbacks/flooz",
                content=_flooz(references[n % 4], "22896000001", f"FORGED-{n}"),
            )
            assert answer.status_code == 200
        # Then every callback is stored, each under the reference it named
        with factory() as session:
            stored = Counter(session.scalars(select(ProviderCallback.sika_reference)))
        assert stored == {reference: 250 for reference in references}
        # But each line got one status query queued, and the reference of no line none
        assert _checks_per_line(factory) == {line: 1 for line in ids.values()}
        # And once the interval has passed, a line may be queried again (once)
        first = queued[0]
        with psycopg.connect(_libpq(admin_database_url)) as conn:
            conn.execute(
                "UPDATE callback_hint_queries SET queried_at = queried_at - interval '3601 s'"
                " WHERE subject = %s",
                (payout_callbacks.line_subject(first["id"]),),
            )
        for n in range(3):
            client.post(
                "/callbacks/flooz", content=_flooz(first["reference"], "22896000001", f"L{n}")
            )
        assert _checks_per_line(factory) == {
            line: 2 if line == first["id"] else 1 for line in ids.values()
        }
    finally:
        unregister_callback_handler(payout_callbacks.on_callback)


def test_forged_cizo_callbacks_naming_one_kit_cost_one_query(
    session_factory: sessionmaker[Session],
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given BBOXX, its plan and the kit KIT-1, registered by people signing with their keys
    monkeypatch.setenv("SIKA_HOME", str(tmp_path))
    keys_dir = tmp_path / "agent-keys"
    # an hour: a thousand callbacks take longer than the default 30 s on a busy machine
    settings = Settings(
        sandbox_url=sandbox.url, home=tmp_path, keys_dir=keys_dir, callback_query_interval=3600
    )
    keys = load_keys(settings)

    def signed(command: str, arguments: dict[str, Any]) -> SignedRequest:
        return signed_by("awa", command, arguments, settings=settings)

    company = {"code": "BBOXX", "name": "BBOXX Togo", "msisdn": "22896000041"}
    plan = {"code": "MINI", "company": "BBOXX", "deposit": 1_000, "per_day": 100, "term_days": 60}
    kit = {
        "household": "Afi Mensah",
        "msisdn": HOUSEHOLD,
        "company": "BBOXX",
        "plan": "MINI",
        "serial": "KIT-1",
        "opaygo_key": "0123456789abcdef0123456789abcdef",
        "starting_code": "987654321",
    }
    with session_factory() as session, session.begin():
        agents.add_agent(session, "awa", Role.MAKER, keys_dir=keys_dir)
        arguments = cizo_registry.company_arguments(keys, **company)
        cizo_registry.add_company(session, signed("cizo.company.add", arguments), keys, **company)
        cizo_registry.add_plan(session, signed("cizo.plan.add", plan), **plan)
        arguments = cizo_registry.kit_arguments(keys, **kit)
        cizo_registry.register_kit(session, signed("cizo.kit.register", arguments), keys, **kit)
    # And the household really paying the kit's serial at the operator
    sandbox.put_wallet(HOUSEHOLD, balance=100_000)
    paid = sandbox.pay(HOUSEHOLD, 1_300, "KIT-1", "flooz")
    # When 1,000 "paid" callbacks name the serial, the first with the operator's reference
    # of that payment, each other with a reference of its own the operator never issued
    for n in range(1000):
        event = CallbackEvent(
            provider="flooz",
            sika_reference="KIT-1",
            operator_reference=paid["operator_reference"] if n == 0 else f"F{n}",
            outcome=Outcome.SUCCEEDED,
            amount=1_300,
            kind=Kind.COLLECTION,
        )
        collections.handle_callback(event, n, factory=session_factory, settings=settings, keys=keys)
    # Then the operator was asked once: every query of it leaves the payment it was asked
    # about, confirmed or not, and only the first is there, confirmed by the sandbox's answer
    with session_factory() as session:
        asked = session.execute(select(Payment.operator_reference, Payment.status)).all()
    assert [tuple(row) for row in asked] == [(paid["operator_reference"], PaymentStatus.CONFIRMED)]
