"""`batch retry` on a real broker (RabbitMQ and Redis) and the real sandbox: only lines that
failed for a reason a new attempt could fix get a new attempt; a pending or an unknown
line is only ever queried, under its one reference, as often as the schedule allows.

The sandbox's test numbers (docs/operators.md): `000006` stays pending for ever, `000007` is
paid but its answer is held past Sika's time-out, so Sika records `unknown` until a status
query finds it succeeded. A number not registered or at the balance cap is kept out of a
batch by its pre-flight, so those failures are made as they happen in life, after the
pre-flight: a wallet found fine when the batch was made is closed (not registered: final)
or filled to the balance cap (retryable: a new attempt succeeds once the wallet has room)
before the batch is dispatched.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import psycopg
import pytest

from core.db import unit_of_work
from core.settings import load_settings
from payouts import worker
from payouts.dispatch import schedule_check
from providers.sandbox.state import BALANCE_CAP
from tests.conftest import _clear_caches, _libpq
from tests.payout_world import (
    approve,
    assert_paid_once,
    dispatch,
    fund,
    lines,
    make_batch,
    on_test_number,
    retry,
    run_workers,
    sandbox_payouts,
    schedule,
    setup_world,
    wait_for_lines,
)

PENDING_FOREVER, HANGS = "000006", "000007"
TEST_NUMBERS = (PENDING_FOREVER, HANGS)


@dataclass(frozen=True)
class Dispatched:
    """The dispatched batch, and the numbers whose wallets changed after its pre-flight."""

    id: int
    unregistered: frozenset[str]  # closed: the operator no longer knows the number
    capped: frozenset[str]  # filled to the balance cap


def on_numbers(rows: list[dict], numbers: frozenset[str]) -> list[dict]:
    """The lines paying one of `numbers`."""
    return [row for row in rows if row["msisdn"] in numbers]


@pytest.fixture
def batch(real_broker, sika_env, sandbox, monkeypatch, tmp_path, database_url):
    """A dispatched batch of 20 farmers, two (one Flooz, one T-Money) on each of 000006 and
    000007, every wallet fine at the pre-flight; then, before dispatch, two other wallets
    (one Flooz, one T-Money) closed and two filled to the balance cap. Floats funded in the
    ledger and at the sandbox. Status queries one second apart, twice."""
    monkeypatch.setenv("SIKA_SANDBOX_URL", sandbox.url)
    # shorter than the sandbox holds a 000007 answer (5 s)
    monkeypatch.setenv("SIKA_OPERATOR_TIMEOUT", "2")
    monkeypatch.setenv("SIKA_STATUS_CHECK_DELAYS", "[1, 1]")
    _clear_caches()
    keys = setup_world(tmp_path, farmers=20, test_numbers=TEST_NUMBERS)
    batch_id = make_batch(keys)
    # Every line passed its pre-flight: none is out of the manifest
    made = lines(database_url)
    assert len(made) == 20
    assert {(r["status"], r["reason"]) for r in made} == {("created", None)}
    # Then, between the pre-flight and the payout, as happens in life: for each operator,
    # one farmer's wallet is closed and another's fills up to the balance cap
    plain = [r for r in made if not r["msisdn"].endswith(TEST_NUMBERS)]
    unregistered, capped = set(), set()
    for operator in ("flooz", "tmoney"):
        first, second = [r["msisdn"] for r in plain if r["operator"] == operator][:2]
        sandbox.put_wallet(first, status="unregistered")
        sandbox.put_wallet(second, balance=BALANCE_CAP)
        unregistered.add(first)
        capped.add(second)
    approve(batch_id)
    for operator in ("flooz", "tmoney"):
        fund(operator, 1_000_000, f"test:fund:{operator}")
        sandbox.topup(operator, 1_000_000)
    assert dispatch(batch_id, chunk=7).queued == 20
    return Dispatched(batch_id, frozenset(unregistered), frozenset(capped))


def _statuses(database_url: str) -> dict[int, str]:
    with psycopg.connect(_libpq(database_url)) as conn:
        return dict(conn.execute("SELECT id, status FROM payout_lines").fetchall())


def _attempts(database_url: str) -> dict[int, str]:
    """Archived attempts: the line and the reference it was sent under."""
    with psycopg.connect(_libpq(database_url)) as conn:
        return dict(conn.execute("SELECT line_id, reference FROM payout_attempts").fetchall())


def _kept(before: list[dict], after: list[dict]) -> None:
    """Each line of `before` is the same line in `after`: status, reference, sends."""
    now = {r["id"]: r for r in after}
    for line in before:
        kept = now[line["id"]]
        assert (kept["status"], kept["reference"], kept["sends"]) == (
            line["status"],
            line["reference"],
            line["sends"],
        ), (line, kept)


def test_retry_sends_nothing_new_for_pending_or_unknown_lines(batch, sandbox, database_url):
    sent = {r["id"]: r["reference"] for r in lines(database_url)}
    # When workers run until every line is final or has no status query left,
    # watching the 000007 lines as they go
    hung_ids = {r["id"] for r in on_test_number(lines(database_url), HANGS)}
    seen: dict[int, set[str]] = {i: set() for i in hung_ids}

    def watch(_: worker.Progress) -> None:
        for line_id, status in _statuses(database_url).items():
            if line_id in seen:
                seen[line_id].add(status)

    assert run_workers(batch.id, watch).done
    rows = lines(database_url)
    marks = schedule(database_url)
    delays = load_settings().status_check_delays
    hung, forever = on_test_number(rows, HANGS), on_test_number(rows, PENDING_FOREVER)
    capped, unregistered = on_numbers(rows, batch.capped), on_numbers(rows, batch.unregistered)
    assert len(hung) == len(forever) == len(capped) == len(unregistered) == 2
    paid = sandbox_payouts(sandbox)
    # Then each 000007 line went unknown (no answer in time) and status queries found it
    # succeeded: one transaction at the operator, under the line's one reference, sent once
    for line in hung:
        assert "unknown" in seen[line["id"]], seen
        assert line["status"] == "succeeded"
        assert (line["reference"], line["sends"]) == (sent[line["id"]], 1)
        assert paid[line["msisdn"][-8:]] == 1
        # each time Sika found it open it scheduled one query, and the last one found it
        checks = marks[line["id"]]["checks"]
        assert 1 <= checks <= len(delays)
        assert sandbox.status_queries(line["reference"]) == checks
    # and each 000006 line is still pending, queried once a delay and then no more: Sika
    # found it open once on sending and once a query, the last query scheduling nothing
    for line in forever:
        assert line["status"] == "pending"
        assert (line["reference"], line["sends"]) == (sent[line["id"]], 1)
        assert marks[line["id"]]["checks"] == len(delays) + 1
        assert marks[line["id"]]["check_due_at"] is None
        assert sandbox.status_queries(line["reference"]) == marks[line["id"]]["checks"] - 1
        assert paid[line["msisdn"][-8:]] == 1
    # the capped lines failed retryable, the unregistered ones for good
    assert {(r["status"], r["reason"], marks[r["id"]]["retryable"]) for r in capped} == {
        ("failed", "balance_cap", True)
    }
    assert {(r["status"], r["reason"], marks[r["id"]]["retryable"]) for r in unregistered} == {
        ("failed", "not_registered", False)
    }
    queries = {r["reference"]: sandbox.status_queries(r["reference"]) for r in hung + forever}

    # When the capped farmers make room in their wallets and the batch is retried
    for line in capped:
        sandbox.put_wallet(line["msisdn"], balance=0)
    report = retry(batch.id)
    # Then only the capped lines get a new attempt
    assert (report.retried, report.skipped) == (len(capped), 0)
    assert report.amount == sum(r["amount"] for r in capped)
    assert _attempts(database_url) == {r["id"]: r["reference"] for r in capped}
    retried = {r["id"] for r in capped}
    _kept([r for r in rows if r["id"] not in retried], lines(database_url))
    assert run_workers(batch.id).done
    after = assert_paid_once(database_url, sandbox)
    # and, once they settled, each was paid under a new reference, sent once
    for line in (r for r in after if r["id"] in retried):
        assert line["status"] == "succeeded"
        assert line["reference"] == sent[line["id"]].removesuffix("-1") + "-2"
        assert line["sends"] == 1
    # while the pending, the once-unknown and the unregistered lines kept their reference
    # and their one send, and the sandbox saw nothing new of them: not a transaction, not
    # a status query
    _kept([r for r in rows if r["id"] not in retried], after)
    now_paid = sandbox_payouts(sandbox)
    assert now_paid == paid + Counter(r["msisdn"][-8:] for r in capped)
    assert {ref: sandbox.status_queries(ref) for ref in queries} == queries


def test_a_line_still_unknown_at_retry_time_is_not_retried(
    batch, sandbox, database_url, monkeypatch
):
    # Given status queries far off, and workers stopped once no line is being sent:
    # the 000007 lines are unknown, their first status query not made yet, and every
    # T-Money line pending (T-Money answers a payout "received, processing")
    monkeypatch.setenv("SIKA_STATUS_CHECK_DELAYS", "[60]")
    _clear_caches()
    with worker.running(threads=4):
        rows = wait_for_lines(
            database_url, lambda rs: all(r["status"] not in ("queued", "submitted") for r in rs)
        )
    sandbox.wait_quiet()
    hung, capped = on_test_number(rows, HANGS), on_numbers(rows, batch.capped)
    marks = schedule(database_url)
    paid = sandbox_payouts(sandbox)
    for line in hung:
        assert (line["status"], line["sends"]) == ("unknown", 1)
        assert marks[line["id"]]["check_due_at"] is not None
        assert sandbox.status_queries(line["reference"]) == 0
        # though the operator paid it
        [transaction] = [t for t in sandbox.transactions() if t["reference"] == line["reference"]]
        assert transaction["status"] == "succeeded"
    # the Flooz capped line failed at once; the T-Money one is pending in Sika, though the
    # operator refused it
    failed = [r for r in capped if r["status"] == "failed"]
    assert [r["operator"] for r in failed] == ["flooz"]
    assert {r["status"] for r in capped if r not in failed} == {"pending"}
    # When the capped farmers make room and the batch is retried
    for line in capped:
        sandbox.put_wallet(line["msisdn"], balance=0)
    report = retry(batch.id)
    # Then neither the unknown lines nor the pending ones are retried: only the failed one
    assert report.retried == len(failed) == 1
    assert _attempts(database_url) == {r["id"]: r["reference"] for r in failed}
    retried = {r["id"] for r in failed}
    _kept([r for r in rows if r["id"] not in retried], lines(database_url))
    # and once the retried line settled, nothing new was sent for the others
    with worker.running(threads=4):
        wait_for_lines(
            database_url,
            lambda rs: all(r["status"] == "succeeded" for r in rs if r["id"] in retried),
        )
    _kept([r for r in rows if r["id"] not in retried], lines(database_url))
    assert sandbox_payouts(sandbox) == paid + Counter(r["msisdn"][-8:] for r in failed)
    # When a status query of the open lines is made (as a callback's hint queues one)
    with unit_of_work() as session:
        schedule_check(session, [r["id"] for r in rows if r["status"] in ("pending", "unknown")])
    assert run_workers(batch.id).done
    # Then it finds the unknown lines succeeded under their one reference: one query each,
    # still one transaction each at the operator, and every payout made exactly once
    after = {r["id"]: r for r in assert_paid_once(database_url, sandbox)}
    for line in hung:
        assert after[line["id"]]["status"] == "succeeded"
        assert (after[line["id"]]["reference"], after[line["id"]]["sends"]) == (
            line["reference"],
            1,
        )
        assert sandbox.status_queries(line["reference"]) == 1
    assert sandbox_payouts(sandbox) == paid + Counter(r["msisdn"][-8:] for r in failed)
