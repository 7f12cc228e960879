"""Benchmark `reconcile`: a synthetic T-Money statement file read and matched against as
many payout lines (inserted set-based) through `reconciliation.service.reconcile_statement`,
the path `sika reconcile run` takes, in a child process → seconds and peak memory (RSS of
that process and its children).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import resource
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

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
            "INSERT INTO agents (name) VALUES ('bench') RETURNING id"
        ).fetchone()[0]
        batch = conn.execute(
            "INSERT INTO payout_batches (programme, scope, debit_account, description, status,"
            " nonce, lines, total, manifest, maker_id) VALUES ('agripme',"
            " '2026A', 'agripme:budget:2026a', 'bench', 'dispatched', 'b', %s, 0, 'm', %s)"
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
        # each line's hold and its post, as dispatch and the worker leave them: matching
        # judges a statement line against the ledger; the float is funded by as much, so
        # it ends at zero like the operator's closing balance
        accounts = dict(
            conn.execute(
                "INSERT INTO ledger_accounts (code, kind) VALUES ('agripme:budget:2026a',"
                " 'liability'), ('float:tmoney', 'asset'), ('bench:treasury', 'equity')"
                " RETURNING code, id"
            ).fetchall()
        )
        budget, float_, treasury = (
            accounts[c] for c in ("agripme:budget:2026a", "float:tmoney", "bench:treasury")
        )
        for kind, suffix, resolves in (("pending", "", None), ("post", ":post", "payout:")):
            conn.execute(
                "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount,"
                " kind, pending_id) SELECT 'payout:' || g || %s, %s, %s,"
                " (ARRAY[4000, 8000, 12000])[1 + g %% 3], %s, %s || g"
                " FROM generate_series(1, %s) AS g",
                (suffix, budget, float_, kind, resolves, size),
            )
        conn.execute(
            "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, kind)"
            " SELECT 'bench:fund', %s, %s, sum((ARRAY[4000, 8000, 12000])[1 + g %% 3]), 'single'"
            " FROM generate_series(1, %s) AS g",
            (float_, treasury, size),
        )
        conn.commit()
    return elapsed()


HEADER = "refTmoney,idRequete,dateHeureTmoney,typeRequete,numeroClient,montant,frais,statutRequete"


def _write_statement(path: Path, size: int) -> float:
    """The operator's export as a file: every line succeeded, a few listed twice or
    changed. Written a chunk at a time by the parent, so its memory is not measured."""
    start = dt.datetime.combine(DAY, dt.time(6))
    with stopwatch() as elapsed, path.open("w", encoding="utf-8", newline="") as out:
        out.write(f"{HEADER}\r\n")
        rows: list[str] = []
        for g in range(1, size + 1):
            amount = AMOUNTS[g % 3]
            if g % BREAK_EVERY == 1:
                amount += 100  # amount_mismatch
            at = start + dt.timedelta(seconds=g % 36_000)
            row = (
                f"{7_200_000_000 + g},SKbench-{g}-1,{at:%Y-%m-%d %H:%M:%S},CREDIT,"
                f"228{g % 100_000_000:08d},{amount},0,SUCCES\r\n"
            )
            rows.append(row)
            if g % BREAK_EVERY == 2:  # duplicate_at_provider
                rows.append(row)
            if len(rows) >= 10_000:
                out.write("".join(rows))
                rows.clear()
        out.write("".join(rows))
    return elapsed()


def _child(url: str, statement: Path, conn: Connection) -> None:
    """Read the statement file and reconcile it in one transaction, as `sika reconcile run`
    does (reports aside), timed inside."""
    from sqlalchemy.orm import sessionmaker

    from core import db
    from reconciliation.service import read_statement_file, reconcile_statement

    engine = db.build_engine(url, pool_size=1)
    factory = sessionmaker(engine, expire_on_commit=False)
    started = time.perf_counter()
    data = read_statement_file(statement)
    with factory() as session, session.begin():
        summary = reconcile_statement(
            session,
            "tmoney",
            DAY,
            data,
            source=str(statement),
            closing_float=0,
            cutoff=dt.datetime.combine(DAY, dt.time(23), tzinfo=dt.UTC),
        )
        lines = session.execute(
            text("SELECT statement_lines FROM recon_runs WHERE id = :id"), {"id": summary.run_id}
        ).scalar_one()
    elapsed = time.perf_counter() - started
    engine.dispose()
    conn.send(
        {
            "seconds": elapsed,
            "statement_bytes": len(data),
            "statement_lines": lines,
            "counts": summary.counts,
            "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
    )
    conn.close()


def _reconcile_in_child(url: str, statement: Path) -> tuple[dict[str, Any], int]:
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(url, statement, send))
    process.start()
    with PeakRss(process.pid) as sampler:
        report = receive.recv()
        process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"the reconciliation process failed with exit code {process.exitcode}")
    return report, sampler.peak


def run(size: int) -> Outcome:
    with scratch_database("reconcile") as url, tempfile.TemporaryDirectory() as folder:
        insert_seconds = _populate(url, size)
        vacuum_analyze(url)
        statement = Path(folder) / "tmoney.csv"
        build_seconds = _write_statement(statement, size)
        report, peak = _reconcile_in_child(url, statement)
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
            "statement_build_seconds": build_seconds,
            "statement_bytes": report["statement_bytes"],
        },
        reference={"payout_lines_insert_seconds": insert_seconds},
        scores={"seconds": seconds, "peak_rss_mb": peak_bytes / 1_000_000},
        method={
            "reconcile": "read_statement_file then reconcile_statement(session, 'tmoney', "
            "day, data) on the file's bytes, as `sika reconcile run --statement` calls them "
            "(the signed reports aside), in a fresh spawned process, one transaction, timed "
            "inside it: the file read, its CSV read and validated line by line while it is "
            "COPYed into the staging table, indexes, set-based classification, breaks and "
            "exceptions written, run recorded",
            "data": "N succeeded payout lines inserted with generate_series; a T-Money CSV "
            "export of N lines plus one duplicate per 1,000, one amount changed per 1,000, "
            "written to a file by the parent process (not timed)",
            "memory": "max of psutil sampling (every 20 ms) of the process tree's summed RSS "
            "and getrusage ru_maxrss of the process (the statement file's bytes included; "
            "the PostgreSQL server's memory is not)",
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
