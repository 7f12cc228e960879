"""Benchmark `reconcile`: a synthetic operator statement matched against as many payout
lines (inserted set-based) through `reconciliation.service.reconcile_lines` in a child
process → seconds and peak memory (RSS of that process and its children).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

import psycopg

from bench._common import (
    Benchmark,
    Outcome,
    PeakRss,
    Target,
    libpq,
    register,
    scratch_database,
    stopwatch,
    vacuum_analyze,
)

DAY = dt.date(2026, 11, 23)
AMOUNTS = (4000, 8000, 12000)
# one line in this many is a break, so the classification does real work on each kind
BREAK_EVERY = 1000


def _populate(url: str, size: int) -> float:
    """An agent, a dispatched batch and `size` succeeded T-Money payout lines, set-based."""
    with psycopg.connect(libpq(url)) as conn, stopwatch() as elapsed:
        agent = conn.execute(
            "INSERT INTO agents (name, role, public_key, key_fingerprint)"
            " VALUES ('bench', 'maker', 'k', 'f')"
            " RETURNING id"
        ).fetchone()[0]
        batch = conn.execute(
            "INSERT INTO payout_batches (programme, scope, debit_account, description, status,"
            " nonce, lines, total, manifest, maker_id, maker_signature) VALUES ('agripme',"
            " '2026A', 'agripme:budget:2026a', 'bench', 'dispatched', 'b', %s, 0, 'm', %s, 's')"
            " RETURNING id",
            (size, agent),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO payout_lines (batch_id, seq, scope, payee, msisdn_enc, operator, amount,"
            " status, attempt, reference, pending_id, retryable, sends, checks,"
            " operator_reference, submitted_at, resolved_at)"
            " SELECT %s, g, '2026A', 'farmer:' || g, '\\x00', 'tmoney',"
            " (ARRAY[4000, 8000, 12000])[1 + g %% 3], 'succeeded', 1, 'SKbench-' || g || '-1',"
            " 'payout:' || g, false, 1, 0, (7200000000 + g)::text,"
            " %s::timestamptz + (g %% 36000) * interval '1 second',"
            " %s::timestamptz + (g %% 36000) * interval '1 second'"
            " FROM generate_series(1, %s) AS g",
            (batch, f"{DAY} 06:00:00+00", f"{DAY} 06:00:00+00", size),
        )
        conn.commit()
    return elapsed()


def _statement(size: int) -> list[Any]:
    """The operator's statement: every line succeeded, a few listed twice or changed."""
    from providers.base import Kind, StatementLine, StatementStatus

    start = dt.datetime.combine(DAY, dt.time(6), tzinfo=dt.UTC)
    lines: list[Any] = []
    for g in range(1, size + 1):
        amount = AMOUNTS[g % 3]
        if g % BREAK_EVERY == 1:
            amount += 100  # amount_mismatch
        line = StatementLine.model_construct(
            provider="tmoney",
            line=len(lines) + 2,
            operator_reference=str(7_200_000_000 + g),
            sika_reference=f"SKbench-{g}-1",
            at=start + dt.timedelta(seconds=g % 36_000),
            kind=Kind.PAYOUT,
            msisdn=None,
            amount=amount,
            fee=0,
            status=StatementStatus.SUCCEEDED,
        )
        lines.append(line)
        if g % BREAK_EVERY == 2:  # duplicate_at_provider
            lines.append(line.model_copy(update={"line": len(lines) + 2}))
    return lines


def _child(url: str, size: int, conn: Connection) -> None:
    """Build the parsed statement, then reconcile it in one transaction, timed inside."""
    from sqlalchemy.orm import sessionmaker

    from core import db
    from reconciliation.service import reconcile_lines

    with stopwatch() as built:
        lines = _statement(size)
    engine = db.build_engine(url, pool_size=1)
    factory = sessionmaker(engine, expire_on_commit=False)
    started = time.perf_counter()
    with factory() as session, session.begin():
        summary = reconcile_lines(
            session,
            "tmoney",
            DAY,
            lines,
            statement_sha256="0" * 64,
            source="bench",
            closing_float=0,
            cutoff=dt.datetime.combine(DAY, dt.time(23), tzinfo=dt.UTC),
        )
    elapsed = time.perf_counter() - started
    engine.dispose()
    conn.send(
        {
            "seconds": elapsed,
            "statement_build_seconds": built(),
            "statement_lines": len(lines),
            "counts": summary.counts,
            "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
    )
    conn.close()


def _reconcile_in_child(url: str, size: int) -> tuple[dict[str, Any], int]:
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(url, size, send))
    process.start()
    with PeakRss(process.pid) as sampler:
        report = receive.recv()
        process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"the reconciliation process failed with exit code {process.exitcode}")
    return report, sampler.peak


def run(size: int) -> Outcome:
    with scratch_database("reconcile") as url:
        insert_seconds = _populate(url, size)
        vacuum_analyze(url)
        report, peak = _reconcile_in_child(url, size)
    breaks = size // BREAK_EVERY + (1 if size % BREAK_EVERY >= 1 else 0)
    counts = report["counts"]
    if counts["amount_mismatch"] != breaks or counts["matched"] != size - breaks:
        raise RuntimeError(f"unexpected classification: {counts}")
    peak_bytes = max(peak, report["ru_maxrss_bytes"])
    seconds = report["seconds"]
    return Outcome(
        figures={
            "seconds": seconds,
            "lines_per_second": report["statement_lines"] / seconds,
            "statement_lines": report["statement_lines"],
            "peak_rss_bytes": peak_bytes,
            "peak_rss_mb": peak_bytes / 1_000_000,
            "peak_rss_sampled_bytes": peak,
            "ru_maxrss_bytes": report["ru_maxrss_bytes"],
            "counts": counts,
            "statement_build_seconds": report["statement_build_seconds"],
        },
        reference={"payout_lines_insert_seconds": insert_seconds},
        scores={"seconds": seconds, "peak_rss_mb": peak_bytes / 1_000_000},
        method={
            "reconcile": "reconcile_lines(session, 'tmoney', day, lines) in a fresh spawned "
            "process, one transaction, timed inside it: COPY into the staging table, indexes, "
            "set-based classification, breaks and exceptions written, run recorded",
            "data": "N succeeded payout lines inserted with generate_series; a statement of "
            "N lines plus one duplicate per 1,000, one amount changed per 1,000, built "
            "in memory as StatementLine objects (not timed)",
            "memory": "max of psutil sampling (every 20 ms) of the process tree's summed RSS "
            "and getrusage ru_maxrss of the process (statement objects included)",
            "reference": "the set-based INSERT of the N payout lines",
        },
    )


BENCHMARK = register(
    Benchmark(
        name="reconcile",
        default_size=1_000_000,
        targets=(Target("seconds", "<=", 20, "s"), Target("peak_rss_mb", "<=", 1000, "MB")),
        run=run,
        summary="a statement reconciled against as many payout lines: seconds and peak memory",
    )
)
