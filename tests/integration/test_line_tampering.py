"""A payout line changed behind Sika's back, on real PostgreSQL and the sandbox over HTTP.

The insider of issue 12 edits a queued line (its amount, its phone number) with the line
trigger disabled, as a superuser can. The worker must not send such a line: it is failed
as `manifest_mismatch`, flagged, audited, and its hold voided; nobody at the operator is
paid. A line whose ledger hold is gone is not sent either, and an in-flight line changed
the same way is not sent again when the operator says it never got it. Reconciliation
judges a statement line against the amount the ledger holds or posted for it, so editing
the line row to agree with a changed statement hides nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db import get_sessionmaker, unit_of_work
from core.settings import load_settings
from ledger import api as ledger
from payouts.dispatch import Dispatcher
from payouts.models import LINE_MSISDN
from reconciliation.service import reconcile_statement
from tests.conftest import _clear_caches, _libpq, _url_for
from tests.payout_world import (
    approve,
    assert_paid_once,
    dispatch,
    fund,
    lines,
    make_batch,
    retry,
    run_workers,
    setup_world,
)

# numbers of the insider's accomplice, one per operator's prefixes
# (docs/architecture.md#scale-and-limits)
ACCOMPLICE = {"flooz": "22899123456", "tmoney": "22890123456"}
TAMPERED_AMOUNT = 99_999


@pytest.fixture
def world(real_broker, sika_env, sandbox, monkeypatch, tmp_path):
    """Agents, 12 farmers, season 2026A, both floats funded in the ledger and the sandbox."""
    monkeypatch.setenv("SIKA_SANDBOX_URL", sandbox.url)
    monkeypatch.setenv("SIKA_OPERATOR_TIMEOUT", "2")
    monkeypatch.setenv("SIKA_STATUS_CHECK_DELAYS", "[1, 2, 4]")
    _clear_caches()
    keys = setup_world(tmp_path, farmers=12)
    for operator in ("flooz", "tmoney"):
        fund(operator, 1_000_000, f"test:fund:{operator}")
        sandbox.topup(operator, 1_000_000)
    return keys


def _dispatched_batch(keys) -> int:
    """A batch made by awa, approved by kodjo, reserved and queued; no worker has run."""
    batch_id = make_batch(keys)
    approve(batch_id)
    dispatch(batch_id, chunk=5)
    return batch_id


@contextmanager
def _superuser(database_url: str) -> Iterator[psycopg.Connection]:
    """The test database as PostgreSQL's superuser: an insider with the keys to the server,
    whatever role Sika itself connects as."""
    url = _url_for(make_url(database_url).database or "")
    with psycopg.connect(_libpq(url)) as conn:
        yield conn


def _tamper(database_url: str, line_id: int, sql: str, *params: object) -> None:
    """Run `UPDATE payout_lines SET <sql> WHERE id = line_id` around the line trigger."""
    with _superuser(database_url) as conn:
        conn.execute("ALTER TABLE payout_lines DISABLE TRIGGER payout_lines_forward_only")
        conn.execute(f"UPDATE payout_lines SET {sql} WHERE id = %s", (*params, line_id))  # noqa: S608
        conn.execute("ALTER TABLE payout_lines ENABLE TRIGGER payout_lines_forward_only")


def _by_id(database_url: str) -> dict[int, dict]:
    """Every line as `payout_world.lines` reads it, with its pending transfer's id."""
    with _superuser(database_url) as conn:
        holds = dict(conn.execute("SELECT id, pending_id FROM payout_lines").fetchall())
    return {row["id"]: {**row, "pending_id": holds[row["id"]]} for row in lines(database_url)}


def _line_state(database_url: str, line_id: int) -> dict:
    with _superuser(database_url) as conn:
        cur = conn.execute(
            "SELECT status, reason, retryable, flagged, sends, submitted_at, pending_id"
            " FROM payout_lines WHERE id = %s",
            (line_id,),
        )
        names = [d.name for d in cur.description]
        row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def _audited(database_url: str, action: str) -> list[dict]:
    with _superuser(database_url) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT arguments FROM audit_log WHERE action = %s ORDER BY id", (action,)
            )
        ]


def test_a_queued_line_changed_behind_sikas_back_is_not_sent(world, sandbox, database_url):
    keys = world
    # Given a dispatched batch whose lines wait in the queue, no worker having run yet
    batch_id = _dispatched_batch(keys)
    before = _by_id(database_url)
    assert {row["status"] for row in before.values()} == {"queued"}
    first, *rest = sorted(before)
    # two other lines of one operator: the insider copies one's phone number onto the other
    second, third = next(
        (a, b)
        for a in rest
        for b in rest
        if a < b and before[a]["operator"] == before[b]["operator"]
    )
    victim = before[first]
    accomplice = ACCOMPLICE[victim["operator"]]
    # Sika's own connection cannot change a line: the trigger refuses
    with (
        psycopg.connect(_libpq(database_url)) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="immutable"),
    ):
        conn.execute("UPDATE payout_lines SET amount = 99999 WHERE id = %s", (first,))
    # When an insider with the superuser's powers disables it, sends one line's 99,999
    # FCFA to another phone (encrypted with Sika's own key), and copies a third line's
    # phone number onto a second one, so that farmer would be paid twice
    fake_phone = keys.keyring.encrypt(accomplice, LINE_MSISDN)
    _tamper(database_url, first, "amount = %s, msisdn_enc = %s", TAMPERED_AMOUNT, fake_phone)
    with _superuser(database_url) as conn:
        conn.execute("ALTER TABLE payout_lines DISABLE TRIGGER payout_lines_forward_only")
        conn.execute(
            "UPDATE payout_lines l SET msisdn_enc = o.msisdn_enc FROM payout_lines o"
            " WHERE l.id = %s AND o.id = %s",
            (second, third),
        )
        conn.execute("ALTER TABLE payout_lines ENABLE TRIGGER payout_lines_forward_only")
    # and the workers run
    progress = run_workers(batch_id)
    assert progress.done
    # Then the changed lines were not sent: failed as manifest_mismatch, flagged, never
    # retryable, never counted as sent
    for line_id in (first, second):
        state = _line_state(database_url, line_id)
        assert state["status"] == "failed", state
        assert state["reason"] == "manifest_mismatch"
        assert state["retryable"] is False
        assert "tamper" in (state["flagged"] or "")
        assert state["sends"] == 0
        assert state["submitted_at"] is None
    # And nothing reached the operator under their references: the accomplice's wallet
    # was credited nothing, no 99,999 FCFA payout exists
    payouts = [t for t in sandbox.transactions() if t["kind"] == "payout"]
    refused = {before[first]["reference"], before[second]["reference"]}
    assert not [t for t in payouts if t["reference"] in refused]
    assert not [t for t in payouts if t["amount"] == TAMPERED_AMOUNT]
    assert sandbox.wallet(accomplice)["credits"] == []
    # and the farmer whose number was copied was paid once, under their own line
    credits = sandbox.wallet(before[third]["msisdn"])["credits"]
    assert [c["reference"] for c in credits] == [before[third]["reference"]]
    # And their holds were voided, so the budget and the float got their reservation back
    with unit_of_work() as session:
        for line_id in (first, second):
            void = ledger.get_transfer(session, f"{before[line_id]['pending_id']}:void")
            assert void is not None
            assert void["amount"] == before[line_id]["amount"]
        for operator in ("flooz", "tmoney"):
            assert ledger.balance(session, f"float:{operator}").credits_pending == 0
        assert ledger.verify_ledger(session).ok
    # And every other line was paid once, for its amount, floats agreeing with the sandbox
    rows = assert_paid_once(database_url, sandbox)
    assert all(r["status"] == "succeeded" for r in rows if r["id"] not in (first, second))
    # And the refusal is in the audit log, naming the lines and why, no phone number in it
    entries = _audited(database_url, "payout.line_refused")
    refused_ids = {item["line"] for entry in entries for item in entry["lines"]}
    assert refused_ids == {first, second}
    assert accomplice not in str(entries)
    # And a retry does not give them a new attempt
    assert retry(batch_id, chunk=5).retried == 0


def test_a_line_whose_hold_was_released_is_not_sent(world, sandbox, database_url):
    keys = world
    # Given a dispatched batch, and one queued line's ledger hold voided by hand
    batch_id = _dispatched_batch(keys)
    before = _by_id(database_url)
    line_id = min(before)
    outcome = ledger.void_pending(get_sessionmaker(), before[line_id]["pending_id"])
    assert outcome.result.value == "created"
    # When the workers run
    assert run_workers(batch_id).done
    # Then that line was not sent: nothing reserves its money any more
    state = _line_state(database_url, line_id)
    assert (state["status"], state["reason"], state["retryable"]) == (
        "failed",
        "hold_mismatch",
        False,
    )
    assert "hold" in (state["flagged"] or "")
    references = {t["reference"] for t in sandbox.transactions()}
    assert before[line_id]["reference"] not in references
    # And the rest of the batch was paid, floats agreeing with the sandbox
    rows = assert_paid_once(database_url, sandbox)
    assert all(r["status"] == "succeeded" for r in rows if r["id"] != line_id)


def test_an_unknown_line_changed_behind_sikas_back_is_not_sent_again(world, sandbox, database_url):
    keys = world
    # Given a line whose first send nobody knows the fate of (the operator never got it)
    _dispatched_batch(keys)
    before = _by_id(database_url)
    line_id = min(before)
    with _superuser(database_url) as conn:
        for status in ("submitted", "unknown"):
            conn.execute(
                "UPDATE payout_lines SET status = %s, sends = 1, submitted_at = now()"
                " WHERE id = %s",
                (status, line_id),
            )
    # and an insider raises its amount behind Sika's back
    _tamper(database_url, line_id, "amount = %s", TAMPERED_AMOUNT)
    # When the status query finds nothing at the operator, which would call for a resend
    dispatcher = Dispatcher(get_sessionmaker(), load_settings(), keys)
    try:
        dispatcher.check([line_id], round_=3)
    finally:
        dispatcher.close()
    # Then nothing is sent: the line stays open for the operator's word, flagged, audited
    assert before[line_id]["reference"] not in {t["reference"] for t in sandbox.transactions()}
    state = _line_state(database_url, line_id)
    assert state["status"] == "unknown"
    assert "manifest_mismatch" in (state["flagged"] or "")
    entries = _audited(database_url, "payout.line_refused")
    assert [item["line"] for entry in entries for item in entry["lines"]] == [line_id]


def test_lines_written_before_they_had_a_mac_are_sealed_at_dispatch(world, sandbox, database_url):
    keys = world
    # Given an approved batch two of whose lines have no MAC, as lines written before
    # revision 0015 (the superuser clears them around the trigger)
    batch_id = make_batch(keys)
    approve(batch_id)
    old = sorted(_by_id(database_url))[:2]
    with _superuser(database_url) as conn:
        conn.execute("ALTER TABLE payout_lines DISABLE TRIGGER payout_lines_forward_only")
        conn.execute("UPDATE payout_lines SET line_mac = NULL WHERE id = ANY(%s)", (old,))
        conn.execute("ALTER TABLE payout_lines ENABLE TRIGGER payout_lines_forward_only")
    # When it is dispatched, Then dispatch seals them once it has checked the manifest
    dispatch(batch_id, chunk=5)
    with _superuser(database_url) as conn:
        unsealed = conn.execute("SELECT count(*) FROM payout_lines WHERE line_mac IS NULL")
        assert unsealed.fetchone() == (0,)
    # and a MAC, once written, is the database's to keep: Sika's own connection cannot
    # change it
    with (
        psycopg.connect(_libpq(database_url)) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="MAC is immutable"),
    ):
        conn.execute("UPDATE payout_lines SET line_mac = NULL WHERE id = %s", (old[0],))
    # And every line is paid, the sealed ones included
    assert run_workers(batch_id).done
    rows = assert_paid_once(database_url, sandbox)
    assert all(r["status"] == "succeeded" for r in rows)


def _tmoney_statement_with(data: bytes, amounts: dict[str, int]) -> bytes:
    """The T-Money statement with the amount of the rows of these references changed."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    header = rows[0]
    ref, amount = header.index("idRequete"), header.index("montant")
    for row in rows[1:]:
        if row and row[ref] in amounts:
            row[amount] = str(amounts[row[ref]])
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def test_reconciliation_compares_the_statement_with_the_ledger(world, sandbox, database_url):
    keys = world
    # Given a batch paid in full, every line posted in the ledger
    batch_id = _dispatched_batch(keys)
    assert run_workers(batch_id).done
    paid = [row for row in assert_paid_once(database_url, sandbox) if row["operator"] == "tmoney"]
    assert len(paid) >= 3, "the sample registry routes a few farmers to T-Money"
    hidden, edited, clean = paid[:3]
    # When the operator's statement shows 99,999 FCFA paid under one line's reference and
    # that line's row is edited to agree, and another line's row alone is edited
    for row in (hidden, edited):
        _tamper(database_url, row["id"], "amount = %s", TAMPERED_AMOUNT)
    statement = _tmoney_statement_with(
        sandbox.statement("tmoney", sandbox.today()), {hidden["reference"]: TAMPERED_AMOUNT}
    )
    with unit_of_work() as session:
        summary = reconcile_statement(
            session, "tmoney", dt.date.fromisoformat(sandbox.today()), statement, source="test"
        )
    # Then both are amount mismatches, judged against what the ledger posted
    with unit_of_work() as session:
        breaks = {
            row.payout_line_id: row
            for row in session.execute(
                text(
                    "SELECT payout_line_id, category, statement_amount, ledger_amount, amount"
                    " FROM recon_breaks WHERE run_id = :run"
                ),
                {"run": summary.run_id},
            )
        }
    assert summary.counts["amount_mismatch"] == 2, summary.counts
    assert breaks[hidden["id"]].category == "amount_mismatch"
    assert breaks[hidden["id"]].statement_amount == TAMPERED_AMOUNT
    assert breaks[hidden["id"]].ledger_amount == hidden["amount"]
    assert breaks[hidden["id"]].amount == TAMPERED_AMOUNT - hidden["amount"]
    assert breaks[edited["id"]].category == "amount_mismatch"
    assert breaks[edited["id"]].statement_amount == edited["amount"]
    assert breaks[edited["id"]].ledger_amount == edited["amount"]
    # And the untouched line matched
    assert clean["id"] not in breaks
    # And an auditor sees the three amounts side by side, in an exception left open
    with unit_of_work() as session:
        posted = ledger.get_transfer(session, f"payout:{hidden['id']}:1:post")
        exception = session.execute(
            text(
                "SELECT status, amount, detail FROM recon_exceptions"
                " WHERE payout_line_id = :line AND category = 'amount_mismatch'"
            ),
            {"line": hidden["id"]},
        ).one()
    assert posted is not None
    assert posted["amount"] == hidden["amount"]
    assert exception.status == "open"
    assert exception.amount == TAMPERED_AMOUNT - hidden["amount"]
    assert f"of {TAMPERED_AMOUNT} FCFA" in exception.detail
    assert f"of {hidden['amount']} FCFA in the ledger" in exception.detail
    assert f"its payout line says {TAMPERED_AMOUNT} FCFA" in exception.detail
