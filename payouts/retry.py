"""New attempts for lines that definitively failed for a reason a new attempt could fix.

The earlier attempt is archived with its reference; the new one gets a new reference and a
new pending transfer. Pending and unknown lines are never retried: only the operator can
say what became of them. A retry is a signed request of a maker or an approver
(`<programme>.batch.retry`); as for every send, the worker re-checks each line against
what was signed before it sends it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.authority import SignedRequest, authorize
from core.errors import ValidationError
from core.models import Role
from payouts.batches import batch_arguments, batch_command, get_batch
from payouts.dispatch import reserve_and_queue
from payouts.models import BatchStatus


@dataclass(frozen=True)
class RetryReport:
    """Lines given a new attempt, their amount, and retryable lines left out (their payee
    was meanwhile included in another live line of the same scope)."""

    batch: int
    retried: int
    amount: int
    skipped: int


def retry_batch(
    session: Session, request: SignedRequest, batch_id: int, *, chunk: int
) -> RetryReport:
    """Start a new attempt of every retryable failed line of the batch, in one transaction."""
    batch = get_batch(session, batch_id, lock=True)
    authorize(
        session,
        request,
        command=batch_command(batch.programme, "retry"),
        arguments=batch_arguments(batch.id),
        roles=[Role.MAKER, Role.APPROVER],
    )
    if batch.status not in (BatchStatus.DISPATCHED, BatchStatus.COMPLETED):
        raise ValidationError(f"batch {batch_id} has not been dispatched; nothing to retry")
    candidates = (
        session.execute(
            text(
                "SELECT l.id FROM payout_lines l WHERE l.batch_id = :b AND l.status = 'failed'"
                " AND l.retryable ORDER BY l.id FOR UPDATE"
            ),
            {"b": batch.id},
        )
        .scalars()
        .all()
    )
    archived = (
        session.execute(
            text(
                """
            INSERT INTO payout_attempts
                (line_id, attempt, reference, pending_id, status, reason, operator_reference,
                 resolved_at)
            SELECT l.id, l.attempt, l.reference, l.pending_id, l.status, l.reason,
                   l.operator_reference, l.resolved_at
              FROM payout_lines l
             WHERE l.id = ANY(:ids)
               AND NOT EXISTS (SELECT 1 FROM payout_lines o
                                WHERE o.scope = l.scope AND o.payee = l.payee
                                  AND o.status <> 'failed' AND o.id <> l.id)
         RETURNING line_id
            """
            ),
            {"ids": list(candidates)},
        )
        .scalars()
        .all()
    )
    lines = session.execute(
        text(
            """
            UPDATE payout_lines l
               SET status = 'queued', attempt = l.attempt + 1,
                   reference = 'SK' || b.nonce || '-' || l.seq || '-' || (l.attempt + 1),
                   pending_id = 'payout:' || l.id || ':' || (l.attempt + 1),
                   reason = NULL, retryable = false, operator_reference = NULL, sends = 0,
                   checks = 0, check_due_at = NULL, submitted_at = NULL, resolved_at = NULL
              FROM payout_batches b
             WHERE b.id = l.batch_id AND l.id = ANY(:ids) AND l.status = 'failed'
         RETURNING l.id, l.operator, l.pending_id, l.amount
            """
        ),
        {"ids": list(archived)},
    ).all()
    reserve_and_queue(session, batch, lines, chunk=chunk)
    if lines:
        batch.status = BatchStatus.DISPATCHED.value
        batch.completed_at = None
    session.flush()
    amount = sum(int(r.amount) for r in lines)
    return RetryReport(batch.id, len(lines), amount, len(candidates) - len(archived))
