"""Benchmark 1, `ledger`: single transfers a second through `ledger.api.transfer`, eight
client processes on one hot float with a limit, beside the same transfer shape written
as plain SQL by a minimal hand-made ledger in the same database, in the same run.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.synchronize import Barrier
from typing import Any

import psycopg

from bench._common import (
    Benchmark,
    Outcome,
    Target,
    libpq,
    register,
    scratch_database,
    vacuum_analyze,
)

CLIENTS = 8
AMOUNT = 3_000
WARM_UP = 20
FLOAT = "bench:float"
TREASURY = "bench:treasury"

# The hand-made ledger: two counters per account, one limit checked under the row lock,
# and an append-only transfers table with the checks any ledger would have.
_PLAIN_SCHEMA = """
CREATE TABLE plain_accounts (
    id bigint PRIMARY KEY,
    limited boolean NOT NULL,
    debits_posted bigint NOT NULL DEFAULT 0,
    credits_posted bigint NOT NULL DEFAULT 0,
    CHECK (NOT limited OR debits_posted <= credits_posted)
);
CREATE TABLE plain_transfers (
    id text PRIMARY KEY,
    debit_account_id bigint NOT NULL REFERENCES plain_accounts (id),
    credit_account_id bigint NOT NULL REFERENCES plain_accounts (id),
    amount bigint NOT NULL CHECK (amount > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (debit_account_id <> credit_account_id)
);
"""
_PLAIN_DEBIT = (
    "UPDATE plain_accounts SET debits_posted = debits_posted + %(amount)s"
    " WHERE id = %(debit)s AND (NOT limited OR credits_posted - debits_posted >= %(amount)s)"
)
_PLAIN_CREDIT = (
    "UPDATE plain_accounts SET credits_posted = credits_posted + %(amount)s WHERE id = %(credit)s"
)
_PLAIN_INSERT = (
    "INSERT INTO plain_transfers (id, debit_account_id, credit_account_id, amount)"
    " VALUES (%(id)s, %(debit)s, %(credit)s, %(amount)s)"
)


def wallet(n: int) -> str:
    return f"bench:wallet:{n}"


def _prepare(url: str, size: int) -> None:
    """Sika's accounts and the plain ledger's, each float funded for every transfer."""
    from sqlalchemy.orm import sessionmaker

    from core import db
    from core.db import unit_of_work
    from ledger import api
    from ledger.types import AccountKind, AccountSpec, Limit, Transfer

    engine = db.build_engine(url, pool_size=1)
    factory = sessionmaker(engine, expire_on_commit=False)
    with unit_of_work(factory) as session:
        api.create_accounts(
            session,
            [
                AccountSpec(TREASURY, AccountKind.EQUITY),
                AccountSpec(FLOAT, AccountKind.ASSET, Limit.DEBITS),
                *(AccountSpec(wallet(n), AccountKind.EXPENSE) for n in range(CLIENTS)),
            ],
        )
    funding = (size + CLIENTS * WARM_UP) * AMOUNT * 4
    api.transfer(factory, Transfer.single("bench:fund", TREASURY, FLOAT, funding))
    engine.dispose()
    with psycopg.connect(libpq(url)) as conn:
        conn.execute(_PLAIN_SCHEMA)
        # 1 treasury, 2 float (limited), 10+ wallets: the float is locked before a wallet,
        # as Sika locks accounts in id order
        conn.execute(
            "INSERT INTO plain_accounts (id, limited, debits_posted, credits_posted)"
            " VALUES (1, false, %s, 0), (2, true, 0, %s)",
            (funding, funding),
        )
        conn.execute(
            "INSERT INTO plain_accounts (id, limited) SELECT 10 + n, false"
            " FROM generate_series(0, %s) n",
            (CLIENTS - 1,),
        )


def _sika_client(
    url: str, client: int, count: int, tag: str, barrier: Barrier, results: Any
) -> None:
    from sqlalchemy.orm import sessionmaker

    from core import db
    from ledger import api
    from ledger.types import Result, Transfer

    engine = db.build_engine(url, pool_size=1)
    factory = sessionmaker(engine, expire_on_commit=False)
    credit = wallet(client)

    def one(transfer_id: str) -> bool:
        outcome = api.transfer(factory, Transfer.single(transfer_id, FLOAT, credit, AMOUNT))
        return outcome.result is Result.CREATED

    for i in range(WARM_UP):
        one(f"{tag}:warm:{client}:{i}")
    barrier.wait()
    started = time.perf_counter()
    refused = sum(not one(f"{tag}:{client}:{i}") for i in range(count))
    results.put((client, started, time.perf_counter(), count, refused))
    engine.dispose()


def _plain_client(
    url: str, client: int, count: int, tag: str, barrier: Barrier, results: Any
) -> None:
    with psycopg.connect(libpq(url)) as conn:

        def one(transfer_id: str) -> bool:
            params = {"id": transfer_id, "debit": 2, "credit": 10 + client, "amount": AMOUNT}
            with conn.transaction():
                if conn.execute(_PLAIN_DEBIT, params).rowcount != 1:
                    return False
                conn.execute(_PLAIN_CREDIT, params)
                conn.execute(_PLAIN_INSERT, params)
            return True

        for i in range(WARM_UP):
            one(f"{tag}:warm:{client}:{i}")
        barrier.wait()
        started = time.perf_counter()
        refused = sum(not one(f"{tag}:{client}:{i}") for i in range(count))
        results.put((client, started, time.perf_counter(), count, refused))


def _conflicts(url: str) -> tuple[int, int]:
    """(deadlocks, rolled-back transactions) of the database so far: retries show here."""
    time.sleep(1.0)  # statistics reach pg_stat_database within a second of each commit
    with psycopg.connect(libpq(url)) as conn:
        row = conn.execute(
            "SELECT deadlocks, xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _round(url: str, kind: str, size: int, tag: str) -> dict[str, float]:
    """One measured round: CLIENTS processes, started together, `size` transfers in all."""
    deadlocks, rollbacks = _conflicts(url)
    context = mp.get_context("spawn")
    barrier = context.Barrier(CLIENTS)
    results = context.Queue()
    target = _sika_client if kind == "sika" else _plain_client
    share = [size // CLIENTS + (1 if n < size % CLIENTS else 0) for n in range(CLIENTS)]
    clients = [
        context.Process(target=target, args=(url, n, share[n], tag, barrier, results))
        for n in range(CLIENTS)
    ]
    for process in clients:
        process.start()
    reports = [results.get() for _ in clients]
    for process in clients:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a {kind} client failed with exit code {process.exitcode}")
    started = min(r[1] for r in reports)
    ended = max(r[2] for r in reports)
    done = sum(r[3] for r in reports)
    refused = sum(r[4] for r in reports)
    if refused:
        raise RuntimeError(f"{refused} {kind} transfers were refused: the float ran dry")
    after = _conflicts(url)
    return {
        "transfers": done,
        "seconds": ended - started,
        "per_second": done / (ended - started),
        "deadlocks": after[0] - deadlocks,
        "rollbacks": after[1] - rollbacks,
    }


def run(size: int) -> Outcome:
    rounds: dict[str, list[dict[str, float]]] = {"sika": [], "plain": []}
    with scratch_database("ledger") as url:
        _prepare(url, size * 2)
        # plain, Sika, Sika, plain: a drift of the shared machine over the run weighs
        # on both sides alike
        for index, kind in enumerate(("plain", "sika", "sika", "plain")):
            vacuum_analyze(url)
            rounds[kind].append(_round(url, kind, size, f"r{index}"))

    def total(kind: str) -> float:
        return sum(r["transfers"] for r in rounds[kind]) / sum(r["seconds"] for r in rounds[kind])

    sika, plain = total("sika"), total("plain")
    return Outcome(
        figures={"transfers_per_second": sika, "rounds": rounds["sika"], "clients": CLIENTS},
        reference={"transfers_per_second": plain, "rounds": rounds["plain"]},
        scores={"ratio_to_plain_sql": sika / plain},
        method={
            "clients": f"{CLIENTS} processes (not threads: the GIL would cap the clients, "
            "not Sika), each with its own connection, started together at a barrier after "
            f"{WARM_UP} warm-up transfers; throughput = transfers / (last end - first start)",
            "sika": "ledger.api.transfer(factory, Transfer.single(id, float, wallet, amount)): "
            "its own transaction, ledger_submit() in PostgreSQL, the float limited by "
            "debits_must_not_exceed_credits; every client debits the same float",
            "reference": "the same transfer by a hand-made ledger in the same database, "
            "from psycopg in the same kind of process: UPDATE the float's counter under "
            "its row lock with the limit in the WHERE clause, UPDATE the wallet's, INSERT "
            "the transfer row, COMMIT",
            "order": "plain, Sika, Sika, plain rounds of `size` transfers each; VACUUM "
            "ANALYZE and CHECKPOINT before each; figures are totals over both rounds; each "
            "round's deadlocks and rollbacks (pg_stat_database) show retried transactions",
        },
    )


BENCHMARK = register(
    Benchmark(
        name="ledger",
        default_size=20_000,
        targets=(Target("ratio_to_plain_sql", ">=", 0.8),),
        run=run,
        summary="single transfers a second, 8 clients on one hot limited float, vs plain SQL",
    )
)
