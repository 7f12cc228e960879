"""An approved batch changed behind Sika's back before dispatch, on real PostgreSQL and the
sandbox over HTTP.

The insider is a superuser (`admin_database_url`) who disables the line and request
triggers, as anyone with the database owner's rights could. Whatever they change after
the approver signed the manifest (a phone swapped between two lines, re-encrypted with
Sika's own keys; money moved between two lines, the total kept; a line added; a line
removed; the approval replaced by one the maker signed alone), `dispatch` refuses the
batch with a sentence naming it: nothing is reserved, nothing queued, nobody paid.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from agripme import seasons
from agripme.sample import write_sample_registry
from core import agents
from core.authority import load_agent_key, sign_request
from core.crypto import PiiKeys, load_keys
from core.db import unit_of_work
from core.errors import AuthorizationError
from core.settings import load_settings
from ledger import api as ledger
from ledger.types import TransferKind
from payouts import batches
from payouts.models import LINE_MSISDN, BatchStep
from tests.conftest import _clear_caches, _libpq
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
    sign,
)

# the insider's accomplice, one number per operator's prefixes
# (docs/architecture.md#scale-and-limits)
ACCOMPLICE = {"flooz": "22899123456", "tmoney": "22890123456"}
MOVED = 1_000


@pytest.fixture
def world(sika_env, sandbox, monkeypatch, tmp_path) -> PiiKeys:
    """Agents, 12 farmers, season 2026A, both floats funded in the ledger and the sandbox."""
    monkeypatch.setenv("SIKA_SANDBOX_URL", sandbox.url)
    monkeypatch.setenv("SIKA_OPERATOR_TIMEOUT", "2")
    _clear_caches()
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        for name, role in PEOPLE.items():
            agents.add_agent(session, name, role)
    import_registry(write_sample_registry(tmp_path / "f.csv", 12), keys)
    create_season("2026A", seasons.parse_rules(tomllib.loads(RULES)))
    for operator in ("flooz", "tmoney"):
        fund(operator, 1_000_000, f"test:fund:{operator}")
        sandbox.topup(operator, 1_000_000)
    return keys


@contextmanager
def _insider(admin_database_url: str, *triggers: tuple[str, str]) -> Iterator[psycopg.Connection]:
    """A superuser's connection with these `(table, trigger)` disabled for what it does,
    enabled again before its transaction commits."""
    with psycopg.connect(_libpq(admin_database_url)) as conn:
        for table, trigger in triggers:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        yield conn
        for table, trigger in triggers:
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")


LINE_UPDATE = ("payout_lines", "payout_lines_forward_only")
LINE_DELETE = ("payout_lines", "payout_lines_no_delete")
REQUEST_HISTORY = ("payout_batch_requests", "payout_batch_requests_no_update")
BATCH_UPDATE = ("payout_batches", "payout_batches_forward_only")


def _approved_batch(keys: PiiKeys) -> int:
    """A batch made and submitted by awa, approved by kodjo, not yet dispatched."""
    batch_id = make_batch(keys)
    approve(batch_id)
    return batch_id


def _same_operator_pair(rows: list[dict]) -> tuple[dict, dict]:
    """Two lines paying through one operator, the first with the larger amount."""
    for a in rows:
        for b in rows:
            if a["id"] != b["id"] and a["operator"] == b["operator"]:
                return (a, b) if a["amount"] >= b["amount"] else (b, a)
    raise AssertionError("the sample registry should route two farmers to one operator")


def _swap_phones(admin_url: str, keys: PiiKeys, batch_id: int) -> None:
    first, second = _same_operator_pair(lines(_app(admin_url)))
    with _insider(admin_url, LINE_UPDATE) as conn:
        for line, other in ((first, second), (second, first)):
            # re-encrypted with Sika's own key: it decrypts fine, it is simply not the one
            # that was signed
            phone = keys.keyring.encrypt(other["msisdn"], LINE_MSISDN)
            conn.execute(
                "UPDATE payout_lines SET msisdn_enc = %s WHERE id = %s", (phone, line["id"])
            )


def _move_money(admin_url: str, keys: PiiKeys, batch_id: int) -> None:
    richer, poorer = _same_operator_pair(lines(_app(admin_url)))
    with _insider(admin_url, LINE_UPDATE) as conn:
        conn.execute(
            "UPDATE payout_lines SET amount = amount - %s WHERE id = %s", (MOVED, richer["id"])
        )
        conn.execute(
            "UPDATE payout_lines SET amount = amount + %s WHERE id = %s", (MOVED, poorer["id"])
        )
        total = conn.execute(
            "SELECT sum(amount) FROM payout_lines WHERE batch_id = %s", (batch_id,)
        ).fetchone()
    with unit_of_work() as session:
        assert total == (batches.get_batch(session, batch_id).total,), "the total is kept"


def _add_line(admin_url: str, keys: PiiKeys, batch_id: int) -> None:
    with unit_of_work() as session:
        batch = batches.get_batch(session, batch_id)
        nonce, scope = batch.nonce, batch.scope
    with _insider(admin_url) as conn:
        line_id, seq = conn.execute(
            "SELECT max(id) + 1000, max(seq) + 1 FROM payout_lines WHERE batch_id = %s",
            (batch_id,),
        ).fetchone()
        phone = ACCOMPLICE["flooz"]
        # a line as Sika writes one, its MAC made with Sika's own key: only the signed
        # manifest can tell it was never there
        mac = batches.line_mac(
            keys,
            batch_id=batch_id,
            nonce=nonce,
            line_id=line_id,
            seq=seq,
            payee="farmer:999999",
            operator="flooz",
            amount=12_000,
            msisdn=phone,
        )
        conn.execute(
            "INSERT INTO payout_lines (id, batch_id, seq, scope, payee, msisdn_enc, operator,"
            " amount, status, attempt, reference, pending_id, retryable, sends, checks,"
            " line_mac) VALUES (%s, %s, %s, %s, 'farmer:999999', %s, 'flooz', 12000,"
            " 'created', 1, %s, %s, false, 0, 0, %s)",
            (
                line_id,
                batch_id,
                seq,
                scope,
                keys.keyring.encrypt(phone, LINE_MSISDN),
                f"TAMPER-{line_id}",
                f"tamper:{line_id}",
                mac,
            ),
        )


def _remove_line(admin_url: str, keys: PiiKeys, batch_id: int) -> None:
    with _insider(admin_url, LINE_DELETE) as conn:
        conn.execute(
            "DELETE FROM payout_lines WHERE id = ("
            " SELECT max(id) FROM payout_lines WHERE batch_id = %s)",
            (batch_id,),
        )


def _agent_id(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM agents WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def _replace_request(
    conn: psycopg.Connection, batch_id: int, step: str, request, agent_id: int
) -> None:
    """Put `request` in place of the batch's stored `step` request, accepted when the
    original was."""
    accepted_at = conn.execute(
        "DELETE FROM payout_batch_requests WHERE batch_id = %s AND step = %s RETURNING accepted_at",
        (batch_id, step),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO payout_batch_requests (batch_id, step, agent_id, command, arguments,"
        " agent, request_id, issued_at, signature, accepted_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            batch_id,
            step,
            agent_id,
            request.command,
            Jsonb(request.arguments),
            request.agent,
            request.request_id,
            request.issued_at,
            request.signature,
            accepted_at,
        ),
    )


def _maker_approval(batch_id: int, manifest: str, *, in_the_name_of: str):
    """An approval of `manifest` signed with the maker's own key (SIKA_KEYS_DIR/awa.pem)."""
    command = batches.batch_command("agripme", BatchStep.APPROVE)
    arguments = batches.manifest_arguments(batch_id, manifest)
    if in_the_name_of == "awa":
        return sign("awa", command, arguments)
    return sign_request(command, arguments, in_the_name_of, load_agent_key("awa"))


def _resigned_by_maker_as_herself(admin_url: str, keys: PiiKeys, batch_id: int) -> None:
    with unit_of_work() as session:
        manifest = batches.get_batch(session, batch_id).manifest
    with _insider(admin_url, REQUEST_HISTORY) as conn:
        request = _maker_approval(batch_id, manifest, in_the_name_of="awa")
        _replace_request(conn, batch_id, "approve", request, _agent_id(conn, "awa"))


def _resigned_by_maker_as_the_approver(admin_url: str, keys: PiiKeys, batch_id: int) -> None:
    with unit_of_work() as session:
        manifest = batches.get_batch(session, batch_id).manifest
    with _insider(admin_url, REQUEST_HISTORY) as conn:
        request = _maker_approval(batch_id, manifest, in_the_name_of="kodjo")
        _replace_request(conn, batch_id, "approve", request, _agent_id(conn, "kodjo"))


def _lines_changed_and_manifest_resigned_by_maker(
    admin_url: str, keys: PiiKeys, batch_id: int
) -> None:
    # the maker raises a line, recomputes the manifest, and signs both steps alone
    with _insider(admin_url, LINE_UPDATE) as conn:
        conn.execute(
            "UPDATE payout_lines SET amount = amount + %s WHERE id = ("
            " SELECT min(id) FROM payout_lines WHERE batch_id = %s)",
            (MOVED, batch_id),
        )
    with unit_of_work() as session:
        manifest, count, total = batches.compute_manifest(
            session, batches.get_batch(session, batch_id)
        )
    with _insider(admin_url, BATCH_UPDATE, REQUEST_HISTORY) as conn:
        conn.execute(
            "UPDATE payout_batches SET manifest = %s, lines = %s, total = %s WHERE id = %s",
            (manifest, count, total, batch_id),
        )
        submit = sign(
            "awa",
            batches.batch_command("agripme", BatchStep.SUBMIT),
            batches.manifest_arguments(batch_id, manifest),
        )
        _replace_request(conn, batch_id, "submit", submit, _agent_id(conn, "awa"))
        approval = _maker_approval(batch_id, manifest, in_the_name_of="kodjo")
        _replace_request(conn, batch_id, "approve", approval, _agent_id(conn, "kodjo"))


def _app(admin_url: str) -> str:
    """The same database as sika_app (what `payout_world.lines` reads)."""
    return (
        make_url(admin_url)
        .set(username="sika_app", password=None)
        .render_as_string(hide_password=False)
    )


TAMPERINGS: dict[str, Callable[[str, PiiKeys, int], None]] = {
    "swapped_phone": _swap_phones,
    "money_moved_total_kept": _move_money,
    "line_added": _add_line,
    "line_removed": _remove_line,
    "approval_resigned_by_maker_as_herself": _resigned_by_maker_as_herself,
    "approval_resigned_by_maker_as_the_approver": _resigned_by_maker_as_the_approver,
    "lines_changed_and_manifest_resigned_by_maker": _lines_changed_and_manifest_resigned_by_maker,
}


def _assert_nothing_reserved_or_sent(admin_url: str, batch_id: int) -> None:
    with unit_of_work() as session:
        for operator in ("flooz", "tmoney"):
            assert ledger.balance(session, f"float:{operator}").credits_pending == 0
        assert ledger.balance(session, "agripme:budget:2026a").debits_pending == 0
        assert batches.batch_summary(session, batch_id)["status"] == "approved"
    with psycopg.connect(_libpq(admin_url)) as conn:
        pending = conn.execute(
            "SELECT count(*) FROM ledger_transfers WHERE kind = %s",
            (TransferKind.PENDING.value,),
        ).fetchone()
        queued = conn.execute("SELECT count(*) FROM outbox_messages").fetchone()
        statuses = conn.execute(
            "SELECT DISTINCT status FROM payout_lines WHERE batch_id = %s", (batch_id,)
        ).fetchall()
    assert pending == (0,), "nothing may be reserved"
    assert queued == (0,), "nothing may be queued"
    assert statuses == [("created",)]


def _assert_nobody_credited(sandbox: Sandbox, phones: set[str]) -> None:
    assert [t for t in sandbox.transactions() if t["kind"] == "payout"] == []
    for phone in phones | set(ACCOMPLICE.values()):
        assert sandbox.wallet(phone)["credits"] == [], phone


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_an_approved_batch_changed_before_dispatch_is_refused(
    world, sandbox, admin_database_url, database_url, tampering
):
    keys = world
    # Given a batch made by awa and approved by kodjo, funded, not yet dispatched
    batch_id = _approved_batch(keys)
    phones = {row["msisdn"] for row in lines(database_url)}
    # When an insider changes it behind Sika's back, around the triggers
    TAMPERINGS[tampering](admin_database_url, keys, batch_id)
    # Then dispatch refuses the batch with a sentence naming it
    with pytest.raises(AuthorizationError, match=rf"\bbatch {batch_id}\b.*refusing to pay it"):
        dispatch(batch_id)
    # And nothing is reserved in the ledger, nothing queued, the batch still approved
    _assert_nothing_reserved_or_sent(admin_database_url, batch_id)
    # And at the sandbox nobody was credited: no farmer, no accomplice
    _assert_nobody_credited(sandbox, phones)
    # And the refusal holds: a second attempt is refused the same way
    with pytest.raises(AuthorizationError, match=rf"\bbatch {batch_id}\b"):
        dispatch(batch_id, agent="awa")
    _assert_nothing_reserved_or_sent(admin_database_url, batch_id)
