"""Benchmark 2, `batch`: a payout batch reserved in one call of `ledger.api.reserve`,
beside one set-based INSERT of the same rows (and the counters' UPDATE) into a
hand-made ledger table of the same shape, in the same database and run.
"""

from __future__ import annotations

import psycopg

from bench._common import (
    Benchmark,
    Outcome,
    Target,
    libpq,
    register,
    scratch_database,
    stopwatch,
    vacuum_analyze,
)

FLOAT = "bench:float"
BUDGET = "bench:budget"
EXPENSE = "bench:expense"

# The same columns, keys, foreign keys and checks as ledger_transfers, none of Sika's
# triggers or functions: what a hand-written set-based insert would load into.
_PLAIN_SCHEMA = """
CREATE TABLE plain_accounts (
    id bigint PRIMARY KEY,
    debits_pending bigint NOT NULL DEFAULT 0,
    credits_pending bigint NOT NULL DEFAULT 0,
    credits_posted bigint NOT NULL DEFAULT 0
);
CREATE TABLE plain_transfers (
    id text PRIMARY KEY,
    debit_account_id bigint NOT NULL REFERENCES plain_accounts (id),
    credit_account_id bigint NOT NULL REFERENCES plain_accounts (id),
    amount bigint NOT NULL CHECK (amount > 0),
    kind text NOT NULL,
    timeout integer NOT NULL DEFAULT 0,
    expires_at timestamptz,
    code integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (debit_account_id <> credit_account_id)
);
INSERT INTO plain_accounts (id, credits_posted) VALUES (1, 0), (2, 0);
"""
_PLAIN_INSERT = """
INSERT INTO plain_transfers (id, debit_account_id, credit_account_id, amount, kind, code)
SELECT u.id, 1, 2, u.amount, 'pending', 7
FROM unnest(%(ids)s::text[], %(amounts)s::bigint[]) AS u(id, amount)
"""
_PLAIN_COUNTERS = """
UPDATE plain_accounts SET
    debits_pending = debits_pending + CASE id WHEN 1 THEN %(total)s ELSE 0 END,
    credits_pending = credits_pending + CASE id WHEN 2 THEN %(total)s ELSE 0 END
WHERE id IN (1, 2)
"""


def lines(size: int) -> tuple[list[str], list[int]]:
    """A season's payout lines: distinct ids and 1 to 3 bags of 4,000 francs."""
    return [f"batch:1:line:{i}" for i in range(size)], [4_000 * (1 + i % 3) for i in range(size)]


def _array(values: list[str] | list[int]) -> str:
    # the same one-literal-per-column transport as ledger.api, so both sides pay alike
    return "{" + ",".join(str(v) for v in values) + "}"


def _sika(url: str, ids: list[str], amounts: list[int]) -> float:
    from sqlalchemy.orm import sessionmaker

    from core import db
    from core.db import unit_of_work
    from ledger import api
    from ledger.types import AccountKind, AccountSpec, Limit, Result, Transfer

    engine = db.build_engine(url, pool_size=1)
    factory = sessionmaker(engine, expire_on_commit=False)
    with unit_of_work(factory) as session:
        api.create_accounts(
            session,
            [
                AccountSpec(BUDGET, AccountKind.LIABILITY),
                AccountSpec(FLOAT, AccountKind.ASSET, Limit.DEBITS),
                AccountSpec(EXPENSE, AccountKind.EXPENSE),
            ],
        )
    api.transfer(factory, Transfer.single("bench:fund", BUDGET, FLOAT, sum(amounts) * 2))
    vacuum_analyze(url)
    with stopwatch() as elapsed, unit_of_work(factory) as session:
        outcomes = api.reserve(session, ids, FLOAT, EXPENSE, amounts, code=7)
    engine.dispose()
    refused = [o for o in outcomes if o.result is not Result.CREATED]
    if refused:
        raise RuntimeError(f"{len(refused)} lines were refused, the first: {refused[0]}")
    return elapsed()


def _plain(url: str, ids: list[str], amounts: list[int]) -> float:
    with psycopg.connect(libpq(url)) as conn:
        conn.execute(_PLAIN_SCHEMA)
        conn.commit()
    vacuum_analyze(url)
    with psycopg.connect(libpq(url)) as conn, stopwatch() as elapsed:
        params = {"ids": _array(ids), "amounts": _array(amounts), "total": sum(amounts)}
        with conn.transaction():
            inserted = conn.execute(_PLAIN_INSERT, params).rowcount
            conn.execute(_PLAIN_COUNTERS, params)
    if inserted != len(ids):
        raise RuntimeError(f"the plain insert wrote {inserted} of {len(ids)} rows")
    return elapsed()


def _same_indexes(url: str, ids: list[str], amounts: list[int]) -> float:
    """The plain insert into a copy of ledger_transfers with its indexes and checks but
    none of its triggers: splits Sika's gap between its indexes and its write path."""
    with psycopg.connect(libpq(url)) as conn:
        conn.execute("CREATE TABLE plain_like (LIKE ledger_transfers INCLUDING ALL)")
        conn.commit()
    vacuum_analyze(url)
    with psycopg.connect(libpq(url)) as conn, stopwatch() as elapsed:
        params = {"ids": _array(ids), "amounts": _array(amounts), "total": sum(amounts)}
        with conn.transaction():
            conn.execute(_PLAIN_INSERT.replace("plain_transfers", "plain_like"), params)
            conn.execute(_PLAIN_COUNTERS, params)
    return elapsed()


def run(size: int) -> Outcome:
    ids, amounts = lines(size)
    with scratch_database("batch") as url:
        plain = _plain(url, ids, amounts)
        sika = _sika(url, ids, amounts)
        same_indexes = _same_indexes(url, ids, amounts)
    return Outcome(
        figures={"seconds": sika, "lines_per_second": size / sika},
        reference={
            "seconds": plain,
            "lines_per_second": size / plain,
            "with_ledger_indexes_seconds": same_indexes,
        },
        scores={"ratio_to_plain_sql": sika / plain},
        method={
            "sika": "ledger.api.reserve(session, ids, float, expense, amounts) and COMMIT: "
            "pending transfers against a float limited by debits_must_not_exceed_credits, "
            "timed from the Python call (building the arrays included) to the commit",
            "reference": "one INSERT … SELECT FROM unnest(ids, amounts) into a table with "
            "ledger_transfers' columns, primary key, foreign keys and checks, plus one "
            "UPDATE of the two accounts' pending counters, one transaction, the same "
            "array-literal transport, timed the same way",
            "with_ledger_indexes": "not the reference, a diagnosis: the same insert into "
            "CREATE TABLE … (LIKE ledger_transfers INCLUDING ALL), i.e. with Sika's indexes "
            "and checks but without its function and trigger",
            "order": "reference first, then Sika, then the diagnosis, each on a VACUUMed and "
            "CHECKPOINTed database, in one scratch database",
        },
    )


BENCHMARK = register(
    Benchmark(
        name="batch",
        default_size=1_000_000,
        targets=(Target("ratio_to_plain_sql", "<=", 1.5),),
        run=run,
        summary="a payout batch reserved in one call vs one set-based SQL insert",
    )
)
