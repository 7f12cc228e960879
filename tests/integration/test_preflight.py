"""Pre-flight account checks on real PostgreSQL and the sandbox over HTTP: each verdict, the
lines kept out of the manifest, the maker's inclusions and new signatures, the cache and
resumability of the look-ups, holder names encrypted at rest, and a farmer whose number
now belongs to someone else left unpaid while the rest of the batch is paid.
"""

from __future__ import annotations

import psycopg
import pytest
from alembic import command
from sqlalchemy import func, select, text

from agripme.batches import (
    BATCH_CREATE,
    REROUTED,
    FarmerRegistry,
    batch_create_arguments,
    create_season_batch,
)
from core import db, migrate
from core.crypto import load_keys
from core.db import get_sessionmaker, unit_of_work
from core.errors import AuthorizationError, NotFoundError, ValidationError
from core.models import AuditEntry
from core.settings import load_settings
from payouts import preflight
from payouts.batches import approve_batch, batch_summary, get_batch, submit_batch
from payouts.models import LOOKUP_HOLDER, LOOKUP_MSISDN, BatchStep, PreflightLookup, Verdict
from payouts.preflight import include_arguments, include_line, verdict_of
from providers.base import AccountStatus, KycResult, Outcome, Reason
from providers.sandbox.people import holder_name
from tests.conftest import _clear_caches, _libpq
from tests.payout_world import (
    approval,
    approve,
    assert_paid_once,
    dispatch,
    fund,
    lines,
    make_batch,
    on_batch,
    on_test_number,
    run_workers,
    sandbox_payouts,
    setup_world,
    sign,
)
from tests.payout_world import (
    batches as batch_service,
)

# the sandbox's test numbers the pre-flight tells apart (docs/operators.md#sandbox)
VERDICT_OF_NUMBER = {
    "000002": Verdict.NOT_REGISTERED,
    "000003": Verdict.LOCKED,
    "000004": Verdict.INACTIVE,
    "000005": Verdict.AT_BALANCE_CAP,
    "000010": Verdict.NAME_MISMATCH,
    "000011": Verdict.PORTED,
    "000012": Verdict.UNREACHABLE,
}
EXCLUDED_NUMBERS = ("000002", "000003", "000004", "000005")


def expected_verdict(row: dict, suffix: str) -> Verdict:
    """The verdict of a test number's line: T-Money's look-up knows a wallet only as ACTIF
    or INACTIF, so a locked T-Money wallet is inactive to it."""
    verdict = VERDICT_OF_NUMBER[suffix]
    if verdict is Verdict.LOCKED and row["msisdn"][3:5] == "91":
        return Verdict.INACTIVE
    return verdict


def _world(monkeypatch, sandbox, tmp_path, *, farmers: int, test_numbers: tuple[str, ...]):
    monkeypatch.setenv("SIKA_SANDBOX_URL", sandbox.url)
    # the sandbox holds a 000012 look-up 5 s: a 1 s timeout gives up on each of 3 tries
    monkeypatch.setenv("SIKA_OPERATOR_TIMEOUT", "1")
    monkeypatch.setenv("SIKA_STATUS_CHECK_DELAYS", "[1, 2, 4]")
    _clear_caches()
    return setup_world(tmp_path, farmers=farmers, test_numbers=test_numbers)


@pytest.fixture
def world(sika_env, sandbox, monkeypatch, tmp_path):
    """Agents, 20 farmers (14 on the pre-flight's test numbers, one Flooz and one T-Money
    each, then 6 ordinary ones), season 2026A; floats not funded."""
    return _world(
        monkeypatch, sandbox, tmp_path, farmers=20, test_numbers=tuple(VERDICT_OF_NUMBER)
    )


@pytest.fixture
def plain_world(sika_env, sandbox, monkeypatch, tmp_path):
    """Agents, 12 farmers: two on 000010 (someone else's wallet), the rest ordinary."""
    return _world(monkeypatch, sandbox, tmp_path, farmers=12, test_numbers=("000010",))


def _line_rows(database_url: str, batch_id: int) -> list[dict]:
    """The batch's lines with their pre-flight columns and number, by seq."""
    by_id = {row["id"]: row for row in lines(database_url)}
    with psycopg.connect(_libpq(database_url)) as conn:
        cur = conn.execute(
            "SELECT id, seq, preflight, preflight_score, held_out, included_by, include_reason"
            " FROM payout_lines WHERE batch_id = %s ORDER BY seq",
            (batch_id,),
        )
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return [{**by_id[row["id"]], **row} for row in rows]


def _lookups(database_url: str) -> int:
    """Look-ups asked of the operators so far: each answer is one row."""
    with psycopg.connect(_libpq(database_url)) as conn:
        row = conn.execute("SELECT count(*) FROM preflight_lookups").fetchone()
    assert row is not None
    return int(row[0])


def _audit(action: str) -> list[AuditEntry]:
    with unit_of_work() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _summary(batch_id: int) -> dict:
    with unit_of_work() as session:
        return batch_summary(session, batch_id)


# --- the verdict of one answer ------------------------------------------------------------


def _kyc(status: AccountStatus, first: str | None = None, last: str | None = None) -> KycResult:
    return KycResult(
        provider="flooz",
        msisdn="22897000001",
        outcome=Outcome.SUCCEEDED,
        status=status,
        first_name=first,
        last_name=last,
    )


def test_verdict_of_an_answer():
    # an active wallet in the payee's name, written another way, is ok with its score
    verdict, score = verdict_of(_kyc(AccountStatus.ACTIVE, "Kossi", "MENSAH"), "mensah kossi", 85)
    assert verdict is Verdict.OK
    assert score is not None
    assert score >= 85
    # someone else's name is a mismatch, with the score that says how far
    verdict, score = verdict_of(_kyc(AccountStatus.ACTIVE, "Abla", "LAWSON"), "Kossi Mensah", 85)
    assert verdict is Verdict.NAME_MISMATCH
    assert score is not None
    assert score < 85
    # no name to compare (a company's wallet): the status alone
    assert verdict_of(_kyc(AccountStatus.ACTIVE, "Abla", "LAWSON"), None, 85) == (Verdict.OK, None)
    for status, expected in (
        (AccountStatus.LOCKED, Verdict.LOCKED),
        (AccountStatus.INACTIVE, Verdict.INACTIVE),
        (AccountStatus.AT_BALANCE_CAP, Verdict.AT_BALANCE_CAP),
        (AccountStatus.NOT_REGISTERED, Verdict.NOT_REGISTERED),
    ):
        assert verdict_of(_kyc(status), "Kossi Mensah", 85) == (expected, None)
    # no usable answer
    silent = KycResult(
        provider="flooz", msisdn="22897000001", outcome=Outcome.UNKNOWN, reason=Reason.NO_ANSWER
    )
    assert verdict_of(silent, "Kossi Mensah", 85) == (Verdict.UNREACHABLE, None)


# --- a batch's pre-flight -----------------------------------------------------------------


def test_each_verdict_and_what_it_does_to_the_line(world, database_url, sandbox):
    # Given farmers on every test number the pre-flight tells apart, and ordinary ones
    # When the maker builds the season's batch
    batch_id = make_batch(world)
    rows = _line_rows(database_url, batch_id)
    assert len(rows) == 20
    # Then each test number has its verdict, on its Flooz and its T-Money farmer alike
    for suffix in VERDICT_OF_NUMBER:
        mine = on_test_number(rows, suffix)
        assert len(mine) == 2, suffix
        for row in mine:
            assert row["preflight"] == expected_verdict(row, suffix).value, (suffix, row)
    ordinary = [r for r in rows if not any(r["msisdn"].endswith(s) for s in VERDICT_OF_NUMBER)]
    assert len(ordinary) == 6
    assert {r["preflight"] for r in ordinary} == {"ok"}
    assert all(r["preflight_score"] >= 85 for r in ordinary)
    # And lines that would fail at the operator are out of the manifest, final, not retryable
    for suffix in EXCLUDED_NUMBERS:
        for row in on_test_number(rows, suffix):
            verdict = expected_verdict(row, suffix).value
            assert (row["status"], row["reason"], row["held_out"]) == ("failed", verdict, verdict)
    # And a wallet in someone else's name is held out, still created, with its low score
    for row in on_test_number(rows, "000010"):
        assert (row["status"], row["held_out"]) == ("created", "name_mismatch")
        assert row["preflight_score"] < 85
    # And a ported number is paid at the other operator, in the manifest
    for row in on_test_number(rows, "000011"):
        prefix_operator = "flooz" if row["msisdn"][3:5] == "97" else "tmoney"
        assert row["operator"] != prefix_operator
        assert (row["status"], row["held_out"]) == ("created", None)
    # And an unreachable look-up does not keep its line out
    for row in on_test_number(rows, "000012"):
        assert (row["status"], row["held_out"]) == ("created", None)
    # And the manifest covers exactly the lines in it: ok, ported, unreachable
    summary = _summary(batch_id)
    assert summary["lines"] == 6 + 2 + 2
    assert summary["total"] == sum(r["amount"] for r in rows if r["held_out"] is None)
    assert summary["preflight"] == {
        "ok": 6,
        "name_mismatch": 2,
        "not_registered": 2,
        "inactive": 3,
        "locked": 1,
        "at_balance_cap": 2,
        "ported": 2,
        "unreachable": 2,
        "included_by_maker": 0,
    }
    assert summary["submitted"] is True
    # And the registry's operator override follows each ported farmer, audited
    moved = _audit(REROUTED)
    assert len(moved) == 2
    with unit_of_work() as session:
        overrides = dict(
            session.execute(
                text("SELECT 'farmer:' || id, operator FROM farmers WHERE operator IS NOT NULL")
            ).all()
        )
    assert overrides == {r["payee"]: r["operator"] for r in on_test_number(rows, "000011")}

    # When the batch is approved, Then the lines still held out fail as name_mismatch
    approve(batch_id)
    after = _line_rows(database_url, batch_id)
    for row in on_test_number(after, "000010"):
        assert (row["status"], row["reason"]) == ("failed", "name_mismatch")

    # And every farmer kept out is still owed: the season's next batch has them all
    second = make_batch(world)
    again = _line_rows(database_url, second)
    kept_out = {r["payee"] for r in after if r["held_out"] is not None}
    assert len(kept_out) == 10
    assert {r["payee"] for r in again} == kept_out


def test_approval_fails_held_lines_and_dispatch_sends_only_the_manifest(
    world, database_url, sandbox
):
    batch_id = make_batch(world)
    approve(batch_id)
    for operator in ("flooz", "tmoney"):
        fund(operator, 1_000_000, f"test:fund:{operator}")
    # When the approved batch is dispatched
    report = dispatch(batch_id)
    # Then only the lines in the manifest were reserved and queued
    assert report.queued == _summary(batch_id)["lines"] == 10
    rows = _line_rows(database_url, batch_id)
    out = [r for r in rows if r["held_out"] is not None]
    assert {r["status"] for r in out} == {"failed"}
    # And the database itself never lets an excluded line be queued or retried
    refused = pytest.raises(psycopg.errors.CheckViolation, match="cannot move from failed")
    with psycopg.connect(_libpq(database_url)) as conn, refused:
        conn.execute(
            "UPDATE payout_lines SET status = 'queued', attempt = attempt + 1,"
            " reference = reference || 'x', pending_id = pending_id || 'x'"
            " WHERE id = %s",
            (out[0]["id"],),
        )
    # nor a verdict change once the batch is approved
    with psycopg.connect(_libpq(database_url)) as conn, pytest.raises(
        psycopg.errors.CheckViolation, match="only before its batch is approved"
    ):
        conn.execute(
            "UPDATE payout_lines SET held_out = 'name_mismatch' WHERE id = %s",
            (next(r for r in rows if r["preflight"] == "ok")["id"],),
        )


# --- the maker's inclusion ----------------------------------------------------------------


def _include(batch_id: int, seq: int, reason: str, maker: str = "awa") -> None:
    with unit_of_work() as session:
        batch = get_batch(session, batch_id)
        command = batch_service.batch_command(batch.programme, BatchStep.INCLUDE)
    request = sign(maker, command, include_arguments(batch_id, seq, reason))
    with unit_of_work() as session:
        include_line(session, request, batch_id, seq, reason)


def _resubmit(batch_id: int, maker: str = "awa") -> None:
    with unit_of_work() as session:
        batch = get_batch(session, batch_id)
        request = sign(
            maker,
            batch_service.batch_command(batch.programme, BatchStep.SUBMIT),
            batch_service.manifest_arguments(batch.id, batch.manifest),
        )
        submit_batch(session, request, batch_id)


def test_maker_includes_a_held_line_and_signs_the_new_manifest(
    plain_world, database_url, sandbox
):
    batch_id = make_batch(plain_world)
    rows = _line_rows(database_url, batch_id)
    held = on_test_number(rows, "000010")
    assert [r["held_out"] for r in held] == ["name_mismatch", "name_mismatch"]
    ok = next(r for r in rows if r["preflight"] == "ok")
    before = _summary(batch_id)
    # Given the approver's signature on the manifest as it is now
    old_approval = approval(batch_id)

    # Bad inputs are refused in one sentence naming the field, and change nothing
    for seq, reason, error, match in (
        (999, "known farmer", NotFoundError, f"--line: batch {batch_id} has no line 999"),
        (ok["seq"], "known farmer", ValidationError, "--line: .* is in the manifest"),
        (held[0]["seq"], "   ", ValidationError, "--reason"),
    ):
        with pytest.raises(error, match=match):
            _include(batch_id, seq, reason)
    with pytest.raises(NotFoundError, match="no payout batch 424242"):
        _include(424242, held[0]["seq"], "known farmer")
    # the approver cannot include a line: it is the maker's
    with pytest.raises(AuthorizationError, match="needs maker"):
        _include(batch_id, held[0]["seq"], "known farmer", maker="kodjo")
    assert _summary(batch_id) == before

    # When the maker includes one held line with a reason
    reason = "Wallet opened by her husband; confirmed at the village meeting"
    _include(batch_id, held[0]["seq"], reason)
    # Then it is in the manifest, with who included it and why, and the manifest changed
    after = _summary(batch_id)
    assert after["lines"] == before["lines"] + 1
    assert after["total"] == before["total"] + held[0]["amount"]
    assert after["manifest"] != before["manifest"]
    assert after["preflight"]["included_by_maker"] == 1
    assert after["submitted"] is False
    line = next(r for r in _line_rows(database_url, batch_id) if r["seq"] == held[0]["seq"])
    assert (line["held_out"], line["include_reason"]) == (None, reason)
    assert line["included_by"] is not None
    entries = _audit("payout.line_included")
    assert [e.arguments["line"] for e in entries] == [held[0]["seq"]]
    # And the same line cannot be included twice
    with pytest.raises(ValidationError, match="is in the manifest"):
        _include(batch_id, held[0]["seq"], reason)

    # And an approval of the old manifest is refused
    stale = pytest.raises(AuthorizationError, match="differ from those it would act on")
    with stale, unit_of_work() as session:
        approve_batch(session, old_approval, batch_id)
    # as is one of the new manifest, until the maker has signed it
    unsigned = pytest.raises(AuthorizationError, match="changed after its maker last signed it")
    with unsigned, unit_of_work() as session:
        approve_batch(session, approval(batch_id), batch_id)
    # When the maker signs the new manifest, Then the approver approves it
    _resubmit(batch_id)
    approve(batch_id)
    final = _line_rows(database_url, batch_id)
    assert next(r for r in final if r["seq"] == held[0]["seq"])["status"] == "created"
    # and the line still held at approval failed as name_mismatch
    assert next(r for r in final if r["seq"] == held[1]["seq"])["reason"] == "name_mismatch"
    # And nothing is included in an approved batch
    with pytest.raises(ValidationError, match="is approved"):
        _include(batch_id, held[1]["seq"], reason)
    # And every manifest the maker signed is kept
    with unit_of_work() as session:
        submits = session.execute(
            text(
                "SELECT count(*) FROM payout_batch_requests"
                " WHERE batch_id = :b AND step = 'submit'"
            ),
            {"b": batch_id},
        ).scalar_one()
    assert submits == 2


# --- look-ups: the cache, resumability, names at rest ------------------------------------


def _rerun(batch_id: int, maker: str = "awa") -> preflight.RerunReport:
    request = on_batch(maker, BatchStep.PREFLIGHT, batch_id)
    settings = load_settings()
    return preflight.rerun_preflight(
        get_sessionmaker(),
        request,
        batch_id,
        settings=settings,
        keys=load_keys(settings),
        payees=FarmerRegistry(),
    )


def test_a_second_preflight_within_the_cache_period_asks_nothing(
    plain_world, database_url, sandbox, monkeypatch
):
    batch_id = make_batch(plain_world)
    asked = _lookups(database_url)
    assert asked == 12
    before = _summary(batch_id)
    # When the maker runs the pre-flight again within the cache period
    report = _rerun(batch_id)
    # Then the operators were asked nothing, and the verdicts are the same
    assert _lookups(database_url) == asked
    assert report.checked == 12
    assert report.summary == before["preflight"]
    assert report.manifest == before["manifest"]
    # When the cache period is over (0 hours), Then every wallet is asked again
    monkeypatch.setenv("SIKA_PREFLIGHT_CACHE_HOURS", "0")
    _clear_caches()
    _rerun(batch_id)
    assert _lookups(database_url) == 2 * asked


def test_an_interrupted_preflight_continues_where_it_stopped(
    sika_env, sandbox, monkeypatch, tmp_path, database_url
):
    monkeypatch.setenv("SIKA_PREFLIGHT_CONCURRENCY", "2")
    keys = _world(monkeypatch, sandbox, tmp_path, farmers=40, test_numbers=())

    class Interrupted(Exception):
        pass

    def stop_after_five(progress: preflight.PreflightProgress) -> None:
        if progress.done >= 5:
            raise Interrupted

    # Given a batch creation interrupted after five look-ups
    request = sign("awa", BATCH_CREATE, batch_create_arguments("2026A"))
    with pytest.raises(Interrupted):
        create_season_batch(
            get_sessionmaker(),
            request,
            "2026A",
            keys,
            settings=load_settings(),
            on_progress=stop_after_five,
        )
    done = _lookups(database_url)
    # (the look-ups in flight when it stopped were answered and kept too)
    assert 5 <= done < 40
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PreflightLookup)) == done
        assert session.execute(text("SELECT count(*) FROM payout_batches")).scalar_one() == 0
    # When the maker builds the batch again
    batch_id = make_batch(keys)
    # Then only the remaining wallets were asked: each one exactly once in all
    assert _lookups(database_url) == 40
    with psycopg.connect(_libpq(database_url)) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT (operator, msisdn_bidx)) FROM preflight_lookups"
        ).fetchone()
    assert row is not None
    assert row[0] == 40
    assert _summary(batch_id)["preflight"]["ok"] == 40


def test_holder_names_are_stored_encrypted(plain_world, admin_database_url, sandbox):
    batch_id = make_batch(plain_world)
    rows = _line_rows(admin_database_url, batch_id)
    # When the lookups table is read raw, every column as text
    with psycopg.connect(_libpq(admin_database_url)) as conn:
        raw = "\n".join(
            r[0] for r in conn.execute("SELECT t::text FROM preflight_lookups t").fetchall()
        )
        enc = conn.execute(
            "SELECT msisdn_bidx, holder_enc, score FROM preflight_lookups WHERE holder_enc"
            " IS NOT NULL"
        ).fetchall()
    # Then no holder's name, nor number, is in it in clear, nor its hex
    assert len(enc) == 12
    for row in rows:
        first, last = holder_name(row["msisdn"])
        for secret in (first, last, row["msisdn"], row["msisdn"][3:]):
            assert secret not in raw
            assert secret.encode().hex() not in raw
    # And the keys give the names back: the wallets' holders as the operator told them
    keys = load_keys(load_settings())
    holders = {keys.keyring.decrypt(bytes(r[1]), LOOKUP_HOLDER) for r in enc}
    ordinary = [r for r in rows if not r["msisdn"].endswith("000010")]
    assert {" ".join(holder_name(r["msisdn"])).upper() for r in ordinary} <= {
        h.upper() for h in holders
    }
    digests = {bytes(r[0]) for r in enc}
    assert {keys.blind_index.digest(r["msisdn"], LOOKUP_MSISDN) for r in rows} == digests
    # And only the score is in clear
    assert all(r[2] is not None for r in enc)


# --- skipping the pre-flight ---------------------------------------------------------------


def test_no_preflight_only_for_operators_without_a_lookup(
    plain_world, database_url, sandbox, monkeypatch
):
    # an operator that offers a look-up is named, and nothing is built
    with pytest.raises(ValidationError, match=r"--no-preflight: (flooz|tmoney) offers a look-up"):
        make_batch(plain_world, no_preflight=True)
    monkeypatch.setenv("SIKA_LOOKUP_UNAVAILABLE", '["flooz"]')
    _clear_caches()
    with pytest.raises(ValidationError, match="--no-preflight: tmoney offers a look-up"):
        make_batch(plain_world, no_preflight=True)
    # When neither operator offers one, Then the batch is made, its lines `skipped`
    monkeypatch.setenv("SIKA_LOOKUP_UNAVAILABLE", '["flooz", "tmoney"]')
    _clear_caches()
    batch_id = make_batch(plain_world, no_preflight=True)
    rows = _line_rows(database_url, batch_id)
    assert {r["preflight"] for r in rows} == {"skipped"}
    assert all(r["held_out"] is None for r in rows)
    assert _lookups(database_url) == 0
    # And the maker's request says so, signed
    [entry] = [e for e in _audit(BATCH_CREATE) if e.arguments.get("no_preflight")]
    assert entry.agent_name == "awa"


# --- the requirement: someone else's wallet is not paid, the rest is ----------------------


def test_a_number_now_someone_elses_is_not_paid_and_the_rest_is(
    real_broker, plain_world, database_url, sandbox
):
    # Given a batch with two farmers whose numbers now belong to someone else
    batch_id = make_batch(plain_world)
    approve(batch_id)
    for operator in ("flooz", "tmoney"):
        fund(operator, 1_000_000, f"test:fund:{operator}")
        sandbox.topup(operator, 1_000_000)
    # When it is dispatched and the workers run on a real broker
    dispatch(batch_id)
    run_workers(batch_id)
    # Then the two are not paid: their lines failed as name_mismatch, nothing left Sika
    rows = assert_paid_once(database_url, sandbox)
    strangers = on_test_number(rows, "000010")
    assert len(strangers) == 2
    assert {(r["status"], r["reason"]) for r in strangers} == {("failed", "name_mismatch")}
    paid = sandbox_payouts(sandbox)
    for row in strangers:
        assert paid[row["msisdn"][-8:]] == 0
    # And every other line of the batch is paid, once
    others = [r for r in rows if r not in strangers]
    assert len(others) == 10
    assert {r["status"] for r in others} == {"succeeded"}
    assert all(paid[r["msisdn"][-8:]] == 1 for r in others)


# --- the migration ------------------------------------------------------------------------


def test_the_migration_goes_down_and_up_again(owner_database_url):
    # Given a database at head, as the schema's owner migrates it
    engine = db.build_engine(owner_database_url, pool_size=1)
    try:
        assert migrate.current_revision(engine) == "0018_preflight"
        # When 0018 is taken back, Then the table and the line columns are gone
        command.downgrade(migrate.alembic_config(engine), "0017_ledger_proposals")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('preflight_lookups')")).scalar() is None
            columns = conn.execute(
                text(
                    "SELECT count(*) FROM information_schema.columns"
                    " WHERE table_name = 'payout_lines' AND column_name IN"
                    " ('preflight', 'preflight_score', 'held_out', 'included_by',"
                    " 'include_reason')"
                )
            ).scalar()
        assert columns == 0
        # And it comes back whole
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == "0018_preflight"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('preflight_lookups')")).scalar()
    finally:
        engine.dispose()
