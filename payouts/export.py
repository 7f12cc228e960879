"""A batch's lines as CSV: each line's outcome, reason, operator reference and pre-flight
verdict (`held out` lines are listed too, with the verdict that kept them out).

Phone numbers are masked. A full export (`--reveal`) decrypts them for someone to read,
so it is an auditor's signed request (`<programme>.batch.export`), recorded in the audit
log like any act.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import csvsafe
from core.authority import SignedRequest, authorize
from core.crypto import PiiKeys
from core.errors import AuthorizationError, ValidationError
from core.models import Role
from payouts.batches import batch_command, get_batch
from payouts.models import LINE_MSISDN
from providers.msisdn import mask

EXPORT_COLUMNS = (
    "line",
    "seq",
    "payee",
    "msisdn",
    "operator",
    "amount",
    "status",
    "reason",
    "attempt",
    "reference",
    "operator_reference",
    "submitted_at",
    "resolved_at",
    "verdict",
)


def export_arguments(batch_id: int) -> dict[str, Any]:
    """What a request for a full export (phone numbers in clear) signs."""
    return {"batch_id": batch_id, "reveal": True}


def export_batch(
    session: Session,
    batch_id: int,
    out: Path,
    keys: PiiKeys,
    *,
    reveal: bool = False,
    request: SignedRequest | None = None,
) -> int:
    """Write one CSV row per line of the batch to `out`; how many. Phone numbers are
    masked unless `reveal`, which needs `request`: an auditor's, checked and recorded
    before anything is decrypted."""
    batch = get_batch(session, batch_id)
    if reveal:
        if request is None:
            raise AuthorizationError(
                "an export with phone numbers in clear is an auditor's signed request:"
                " pass --agent NAME"
            )
        authorize(
            session,
            request,
            command=batch_command(batch.programme, "export"),
            arguments=export_arguments(batch.id),
            roles=[Role.AUDITOR],
        )
    rows = session.execute(
        text(
            "SELECT id, seq, payee, msisdn_enc, operator, amount, status, reason, attempt,"
            " reference, operator_reference, submitted_at, resolved_at, preflight"
            " FROM payout_lines WHERE batch_id = :b ORDER BY seq"
        ).execution_options(yield_per=5000),
        {"b": batch.id},
    )
    try:
        handle = out.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"--out: cannot write {out}: {exc.strerror}") from None
    count = 0
    with handle:
        writer = csvsafe.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        for r in rows:
            phone = keys.keyring.decrypt(bytes(r.msisdn_enc), LINE_MSISDN)
            writer.writerow(
                [
                    r.id,
                    r.seq,
                    r.payee,
                    phone if reveal else mask(phone),
                    r.operator,
                    r.amount,
                    r.status,
                    r.reason or "",
                    r.attempt,
                    r.reference,
                    r.operator_reference or "",
                    r.submitted_at.isoformat() if r.submitted_at else "",
                    r.resolved_at.isoformat() if r.resolved_at else "",
                    r.preflight or "",
                ]
            )
            count += 1
    return count
