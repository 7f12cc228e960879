"""Set-based matching: a statement is COPYed into a temporary staging table as it is
read and joined with the payout records on Sika's reference and on the operator's
reference, so a million lines classify in a few SQL statements, not a Python loop; what
comes back to Python is the breaks, and the fees to book a chunk at a time.

A payout's amount is judged against the ledger, not only against its payout line: the
statement line is compared with the amount the line's pending transfer reserved, or what
its post moved once it succeeded. Those rows are append-only and sealed, whereas a line
row edited to agree with a changed statement would otherwise hide the change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import clock
from providers.statements import StatementRow
from reconciliation.models import Category

STAGE = "recon_stage"
CLASSIFIED = "recon_classified"
STAGE_COLUMNS = (
    "line",
    "operator_reference",
    "sika_reference",
    "at",
    "kind",
    "amount",
    "fee",
    "status",
)
# A payout sent in the last minutes of a day may be listed on the next day's statement:
# such lines are looked for in the next day's run, not reported missing in this one.
CUTOFF_MARGIN = dt.timedelta(minutes=10)
# a transaction the operator still shows pending this long before the cut-off is a break;
# younger, both sides agreeing it is pending is simply where things stand
AGED_PENDING_AFTER = dt.timedelta(hours=24)
# how many rows a query that may return one per statement line hands back at a time
CHUNK = 10_000
# Sika's states in which a payout may have been executed by the operator and whose
# pending transfer is still open: reconciliation may settle these.
IN_FLIGHT = ("submitted", "pending", "unknown")
_IN_FLIGHT_SQL = ", ".join(f"'{status}'" for status in IN_FLIGHT)


@dataclass(frozen=True)
class FeeGrid:
    """The fee an operator charges on a payout: `fixed + amount * bps // 10000` francs."""

    fixed: int = 0
    bps: int = 0

    def fee(self, amount: int) -> int:
        """The expected fee on a payout of `amount` francs."""
        return self.fixed + amount * self.bps // 10_000


def stage_lines(session: Session, lines: Iterable[StatementRow]) -> int:
    """COPY statement lines into this transaction's staging table as they come; how many.

    Nothing is kept: a statement that turns out malformed half-way raises out of the COPY
    and the caller's transaction rolls back what was staged. Phone numbers are not
    staged: matching does not need them and they are personal data.
    """
    session.execute(text("DROP TABLE IF EXISTS recon_classified"))
    session.execute(text("DROP TABLE IF EXISTS recon_stage"))
    session.execute(
        text(
            "CREATE TEMP TABLE recon_stage (line integer NOT NULL,"
            " operator_reference text NOT NULL, sika_reference text NOT NULL,"
            " at timestamptz NOT NULL, kind text NOT NULL,"
            " amount bigint NOT NULL, fee bigint NOT NULL, status text NOT NULL)"
            " ON COMMIT DROP"
        )
    )
    raw = session.connection().connection.driver_connection
    count = 0
    # binary COPY: no text to format in Python nor to parse in the server
    with (
        raw.cursor() as cursor,
        cursor.copy(
            f"COPY recon_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["int4", "text", "text", "timestamptz", "text", "int8", "int8", "text"])
        for line in lines:
            # kind and status are StrEnums: the text dumper writes their values
            copy.write_row(
                (
                    line.line,
                    line.operator_reference,
                    line.sika_reference,
                    line.at,
                    line.kind,
                    line.amount,
                    line.fee,
                    line.status,
                )
            )
            count += 1
    session.execute(text("CREATE INDEX ON recon_stage (sika_reference)"))
    session.execute(text("CREATE INDEX ON recon_stage (operator_reference)"))
    # temporary tables are never analysed by autovacuum; the planner needs the row count
    session.execute(text("ANALYZE recon_stage"))
    return count


# Order matters: the first category that applies wins, most serious first. Only module
# constants are formatted into the SQL; every value travels as a bound parameter.
_CLASSIFY = f"""
CREATE TEMP TABLE recon_classified ON COMMIT DROP AS
WITH listed AS (
    SELECT s.*, row_number() OVER (PARTITION BY s.operator_reference ORDER BY s.line)
               AS occurrence
    FROM recon_stage s
), ranked AS (
    -- a second successful payout under one reference of ours: the farmer was paid twice
    SELECT l.*, row_number() OVER (
               PARTITION BY (l.occurrence = 1 AND l.kind = 'payout'
                             AND l.status = 'succeeded'), l.sika_reference
               ORDER BY l.line) AS paid_rank
    FROM listed l
), joined AS (
    SELECT r.*,
           coalesce(p.id, q.id, pa.id) AS payout_line_id,
           CASE WHEN p.id IS NOT NULL THEN p.status WHEN q.id IS NOT NULL THEN q.status
                WHEN pa.id IS NOT NULL THEN a.status END AS sika_status,
           -- a payout: what its post moved, else what its hold reserved (NULL: nothing)
           CASE WHEN coalesce(p.id, q.id, pa.id) IS NOT NULL
                THEN coalesce(lp.amount, lh.amount) ELSE cc.amount END AS ledger_amount,
           coalesce(p.amount, q.amount, pa.amount) AS line_amount,
           cc.operator_reference IS NOT NULL AS collected,
           (p.id IS NULL AND q.id IS NULL AND pa.id IS NOT NULL) AS earlier_attempt
    FROM ranked r
    LEFT JOIN payout_lines p
           ON p.reference = r.sika_reference AND p.operator = :provider
    LEFT JOIN payout_lines q
           ON p.id IS NULL AND r.kind = 'payout' AND q.operator = :provider
          AND q.operator_reference = r.operator_reference
    LEFT JOIN payout_attempts a
           ON p.id IS NULL AND q.id IS NULL AND a.reference = r.sika_reference
    LEFT JOIN payout_lines pa ON pa.id = a.line_id AND pa.operator = :provider
    -- the ledger's side of that attempt: its hold by primary key, its post by the unique
    -- index on pending_id
    LEFT JOIN ledger_transfers lh
           ON lh.id = coalesce(p.pending_id, q.pending_id,
                               CASE WHEN pa.id IS NOT NULL THEN a.pending_id END)
          AND lh.kind = 'pending'
    LEFT JOIN ledger_transfers lp ON lp.pending_id = lh.id AND lp.kind = 'post'
    -- collections a programme counted (the view gathers every programme's)
    LEFT JOIN confirmed_collections cc
           ON r.kind = 'collection' AND cc.provider = :provider
          AND cc.operator_reference = r.operator_reference
), classified AS (
    SELECT j.*,
           CASE WHEN j.kind = 'payout' THEN :fee_fixed + j.amount * :fee_bps / 10000
                ELSE 0 END AS expected_fee,
           CASE
             WHEN j.occurrence > 1
               OR (j.paid_rank > 1 AND j.kind = 'payout' AND j.status = 'succeeded')
               THEN 'duplicate_at_provider'
             -- a collection is in the ledger when a programme counted it; one the
             -- operator failed and nobody counted is simply matched
             WHEN j.kind = 'collection' THEN
               CASE WHEN j.collected AND j.status = 'succeeded' AND j.amount = j.ledger_amount
                      THEN 'matched'
                    WHEN j.collected AND j.status = 'succeeded' THEN 'amount_mismatch'
                    WHEN j.collected THEN 'status_mismatch'
                    WHEN j.status = 'succeeded' THEN 'missing_in_ledger'
                    ELSE 'matched' END
             WHEN j.payout_line_id IS NULL THEN 'missing_in_ledger'
             -- the ledger is the reference; a line row that disagrees with its own ledger
             -- entries was edited behind Sika's back, whatever the statement says
             WHEN j.ledger_amount IS NULL OR j.amount <> j.ledger_amount
               OR j.line_amount <> j.ledger_amount THEN 'amount_mismatch'
             -- pending on both sides is not a break until it has lasted too long
             WHEN j.status = 'pending' THEN
               CASE WHEN j.at < :aged_before THEN 'aged_pending'
                    WHEN j.sika_status IN ({_IN_FLIGHT_SQL}) THEN 'matched'
                    ELSE 'status_mismatch' END
             WHEN j.kind = 'reversal' THEN
               CASE WHEN j.status = 'failed' THEN 'matched'
                    WHEN j.sika_status = 'succeeded' AND NOT j.earlier_attempt
                      THEN 'reversed_after_success'
                    ELSE 'status_mismatch' END
             WHEN j.earlier_attempt THEN
               CASE WHEN j.status = 'failed' THEN 'matched' ELSE 'status_mismatch' END
             WHEN j.status = 'succeeded' AND j.sika_status IN ('succeeded', {_IN_FLIGHT_SQL})
                  AND j.fee <> :fee_fixed + j.amount * :fee_bps / 10000
               THEN 'fee_mismatch'
             WHEN j.status = 'succeeded' AND j.sika_status = 'succeeded' THEN 'matched'
             WHEN j.status = 'failed' AND j.sika_status = 'failed' THEN 'matched'
             ELSE 'status_mismatch'
           END AS category
    FROM joined j
)
SELECT c.*,
       CASE
         WHEN c.kind = 'payout' AND NOT c.earlier_attempt
              AND c.category IN ('status_mismatch', 'fee_mismatch')
              AND c.sika_status IN ({_IN_FLIGHT_SQL})
           THEN CASE c.status WHEN 'succeeded' THEN 'post' WHEN 'failed' THEN 'void' END
         WHEN c.category = 'reversed_after_success' THEN 'suspense'
       END AS auto,
       CASE c.category
         -- the widest gap among statement, ledger and line
         WHEN 'amount_mismatch' THEN greatest(abs(c.amount - coalesce(c.ledger_amount, 0)),
                                              abs(c.amount - coalesce(c.line_amount, c.amount)))
         WHEN 'fee_mismatch' THEN abs(c.fee - c.expected_fee)
         ELSE c.amount
       END AS at_stake
FROM classified c
"""  # noqa: S608


def classify(session: Session, provider: str, grid: FeeGrid, aged_before: dt.datetime) -> None:
    """Classify every staged line into the `recon_classified` temporary table."""
    session.execute(text("DROP TABLE IF EXISTS recon_classified"))
    session.execute(
        text(_CLASSIFY),
        {
            "provider": provider,
            "fee_fixed": grid.fixed,
            "fee_bps": grid.bps,
            "aged_before": aged_before,
        },
    )
    session.execute(text("CREATE INDEX ON recon_classified (category)"))
    session.execute(text("ANALYZE recon_classified"))


def category_totals(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """(count, francs at stake) by category over the classified statement lines."""
    counts = dict.fromkeys((c.value for c in Category), 0)
    amounts = dict.fromkeys((c.value for c in Category), 0)
    rows = session.execute(
        text(
            "SELECT category, count(*) AS n, coalesce(sum(at_stake), 0) AS francs"
            " FROM recon_classified GROUP BY category"
        )
    )
    for row in rows:
        counts[row.category] = int(row.n)
        amounts[row.category] = int(row.francs)
    return counts, amounts


def missing_at_provider(
    session: Session, provider: str, day: dt.date, cutoff: dt.datetime
) -> list[dict[str, object]]:
    """Sika's payouts sent on `day` before `cutoff` that the statement does not list.

    Only lines the operator may have executed count: in flight or succeeded.
    """
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) - CUTOFF_MARGIN
    end = min(start + dt.timedelta(days=1), cutoff)
    # the database stamps `submitted_at` on the wall clock; the day is on Sika's clock
    start, end = clock.database_time(start), clock.database_time(end)
    # the amount at stake is what the ledger holds for the line (the row's as a fallback)
    rows = session.execute(
        text(
            f"SELECT p.id, p.reference, p.operator_reference, p.status,"  # noqa: S608
            f" coalesce(h.amount, p.amount) AS amount, p.pending_id"
            f" FROM payout_lines p"
            f" LEFT JOIN ledger_transfers h ON h.id = p.pending_id AND h.kind = 'pending'"
            f" WHERE p.operator = :provider"
            f" AND p.status IN ('succeeded', {_IN_FLIGHT_SQL})"
            f" AND p.submitted_at >= :start AND p.submitted_at < :end"
            f" AND NOT EXISTS (SELECT 1 FROM recon_stage s WHERE s.sika_reference = p.reference)"
            f" AND NOT (p.operator_reference IS NOT NULL AND EXISTS (SELECT 1 FROM recon_stage s"
            f"  WHERE s.operator_reference = p.operator_reference))"
            f" ORDER BY p.id"
        ),
        {"provider": provider, "start": start, "end": end},
    ).mappings()
    return [dict(r) for r in rows]


def auto_candidates(session: Session, action: str) -> list[dict[str, object]]:
    """The classified lines a run settles itself with `action` (post, void, suspense)."""
    rows = session.execute(
        text(
            "SELECT line, payout_line_id, sika_reference, operator_reference, amount, fee,"
            " expected_fee, status, sika_status, category FROM recon_classified"
            " WHERE auto = :action ORDER BY line"
        ),
        {"action": action},
    ).mappings()
    return [dict(r) for r in rows]


def fees_to_book(session: Session) -> Iterator[list[dict[str, object]]]:
    """Successful payouts whose fee is the expected one and not zero, `CHUNK` at a time:
    each fee is booked, and on a clean day that is every line of the statement."""
    rows = session.execute(
        text(
            "SELECT operator_reference, fee FROM recon_classified"
            " WHERE kind = 'payout' AND status = 'succeeded' AND fee > 0"
            " AND fee = expected_fee AND (category = 'matched' OR auto = 'post')"
            " ORDER BY line"
        ),
        execution_options={"stream_results": True, "yield_per": CHUNK},
    ).mappings()
    for chunk in rows.partitions():
        yield [dict(r) for r in chunk]
