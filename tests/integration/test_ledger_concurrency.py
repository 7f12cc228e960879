"""Many writers on one hot, limited account: no overdraft, exact balances, and no
deadlock or serialisation error ever reaches the caller."""

from __future__ import annotations

import random
import threading

from core.db import unit_of_work
from ledger import api
from ledger.types import AccountKind, AccountSpec, Limit, Result, Transfer


def test_threads_hammering_a_hot_float(session_factory) -> None:
    # Given a float of 5,000 and two limited wallets that also trade with each other
    with unit_of_work(session_factory) as s:
        api.create_accounts(
            s,
            [
                AccountSpec("float", AccountKind.ASSET, Limit.DEBITS),
                AccountSpec("treasury", AccountKind.EQUITY),
                AccountSpec("wallet:a", AccountKind.ASSET, Limit.DEBITS),
                AccountSpec("wallet:b", AccountKind.ASSET, Limit.DEBITS),
            ],
        )
    api.transfer(session_factory, Transfer.single("fund", "treasury", "float", 5_000))
    errors: list[BaseException] = []
    created: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(40):
                a, b = rng.sample(["float", "wallet:a", "wallet:b"], 2)
                amount = rng.randint(1, 300)
                # Batches touching accounts in opposite orders would deadlock without
                # the id-ordered locks; a pending every few items exercises reservations.
                batch = [
                    Transfer.single(f"w{n}:{i}:x", a, b, amount),
                    Transfer.pending(f"w{n}:{i}:y", b, a, rng.randint(1, 50))
                    if i % 3 == 0
                    else Transfer.single(f"w{n}:{i}:y", b, a, rng.randint(1, 50)),
                ]
                outcomes = api.submit(session_factory, batch)
                for t, outcome in zip(batch, outcomes, strict=True):
                    assert outcome.result in (
                        Result.CREATED,
                        Result.EXCEEDS_CREDITS,
                    ), outcome
                    if outcome.result is Result.CREATED and t.kind == "single":
                        with lock:
                            created.append((t.debit or "", t.credit or "", t.amount or 0))
                # what went in, submitted again, is a pure replay
                done = [t for t, o in zip(batch, outcomes, strict=True) if o.ok]
                assert all(o.result is Result.EXISTS for o in api.submit(session_factory, done))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then no worker saw an error, nothing is overdrawn, and the books balance
    assert errors == []
    with unit_of_work(session_factory) as s:
        balances = api.balances(s, ["float", "wallet:a", "wallet:b", "treasury"])
        report = api.verify_ledger(s)
    assert report.ok, report.problems
    for code in ("float", "wallet:a", "wallet:b"):
        b = balances[code]
        assert b.debits_pending + b.debits_posted <= b.credits_posted
    expected = {"float": 5_000, "wallet:a": 0, "wallet:b": 0}
    for debit, credit, amount in created:
        expected[debit] -= amount
        expected[credit] += amount
    for code, posted in expected.items():
        assert balances[code].credits_posted - balances[code].debits_posted == posted
    assert len(created) > 50


def test_racing_writers_of_one_id_get_created_once_and_exists_otherwise(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        api.create_accounts(
            s,
            [
                AccountSpec("float", AccountKind.ASSET, Limit.DEBITS),
                AccountSpec("treasury", AccountKind.EQUITY),
            ],
        )
    api.transfer(session_factory, Transfer.single("fund", "treasury", "float", 100))
    api.transfer(session_factory, Transfer.pending("hold", "float", "treasury", 60))
    barrier = threading.Barrier(6)
    results: list[Result] = []

    def post() -> None:
        barrier.wait()
        results.append(api.post_pending(session_factory, "hold", amount=60).result)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([Result.CREATED] + [Result.EXISTS] * 5)
    with unit_of_work(session_factory) as s:
        assert api.balance(s, "float").debits_posted == 60
