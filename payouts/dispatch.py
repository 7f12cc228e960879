"""Dispatch: reserve an approved batch in the ledger, then send, query and settle its lines.

The rule that keeps money safe (docs/architecture.md#payout-states): a line whose request
may have reached the operator is only ever queried, and re-sent only under the same
reference once the operator says it has no such transaction. Every state change is a
conditional update committed before the next step, and every message is written through
the outbox with its cause.

Dispatch verifies the whole batch against its signed manifest; the worker, which sends a
chunk at a time, re-checks each line it is about to send: the line still fits the MAC it
was written with (`payouts.batches.line_mac`), and the ledger still holds exactly the
line's amount for it, open, between the batch's budget and the operator's float. A line
that fails either check is not sent: it fails as `manifest_mismatch` or `hold_mismatch`
(never retryable), its hold is voided, and it is flagged, logged and audited. The check
rides on the claiming query and costs a few microseconds of HMAC per line: no query more.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core import clock, outbox
from core.audit import record as audit_record
from core.authority import SignedRequest, authorize
from core.crash import ANSWERED, CLAIMED, RECORDED, crash_at
from core.crypto import DecryptionError, PiiKeys
from core.db import run_in_transaction
from core.errors import LedgerError, ValidationError
from core.logging import get_logger
from core.models import Role
from core.settings import Settings, load_settings
from ledger import api as ledger
from ledger.types import AccountKind, AccountSpec, Result
from payouts.batches import (
    batch_arguments,
    batch_command,
    get_batch,
    line_mac_matches,
    seal_unsealed_lines,
    verify_manifest,
)
from payouts.models import LINE_MSISDN, BatchStatus, LineStatus, PayoutBatch
from providers.base import Outcome, PayoutRequest, ProviderAdapter, Reason, TransactionResult
from providers.msisdn import mask
from providers.registry import load_adapter
from providers.sms import SmsClient, format_fcfa

log = get_logger(__name__)

SEND = "payouts.send"
CHECK = "payouts.check"
NOTIFY = "payouts.notify"

# a line found `submitted` by a redelivered message may still be on its way to the
# operator from the worker that claimed it: query it only once that request has timed out
STRANDED_GRACE_SECONDS = 5
# resends under the same reference after the operator said it has no such transaction
MAX_SENDS = 3
_OPEN = (LineStatus.SUBMITTED.value, LineStatus.PENDING.value, LineStatus.UNKNOWN.value)
_SETTLED_OK = (Result.CREATED, Result.EXISTS, Result.PENDING_TRANSFER_ALREADY_POSTED)
_VOIDED_OK = (Result.CREATED, Result.EXISTS, Result.PENDING_TRANSFER_ALREADY_VOIDED)
# why a worker refused to send a line (payout_lines.reason); neither is ever retried
MANIFEST_MISMATCH = "manifest_mismatch"
HOLD_MISMATCH = "hold_mismatch"
REFUSED_ACTION = "payout.line_refused"
_RESOLVED = {"post": "posted", "void": "voided", "expire": "expired"}


def payout_queue() -> str:
    """The broker queue of payout work; its prefix keeps deployments sharing a broker apart."""
    return f"{load_settings().queue_prefix}.payouts"


def float_account(operator: str) -> str:
    """The ledger account of the government's e-money at `operator`."""
    return f"float:{operator}"


def float_spec(operator: str) -> AccountSpec:
    """An operator float: an asset that may not go below zero, reservations included."""
    return AccountSpec(float_account(operator), AccountKind.ASSET, "credits")


@dataclass(frozen=True)
class LineOutcome:
    """What is now known of one line's current attempt."""

    line_id: int
    status: LineStatus
    reason: str | None = None
    retryable: bool = False
    operator_reference: str | None = None


# --- dispatch ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchReport:
    """What `dispatch_batch` did: lines reserved and queued (0 when already dispatched)."""

    batch: int
    queued: int
    amount: int
    messages: int
    already: bool


def _short_message(
    batch: PayoutBatch, operator: str, result: Result, needed: int, free: int
) -> str:
    # TigerBeetle's names: `exceeds_debits` is the credit side (the float) going past its
    # debits, `exceeds_credits` the debit side (the budget) going past its credits
    if result is Result.EXCEEDS_DEBITS:
        return (
            f"the {operator} float is short for batch {batch.id}: it needs {needed} FCFA and "
            f"{max(free, 0)} FCFA is free; add funds with `sika funds add --operator {operator}`"
        )
    if result is Result.EXCEEDS_CREDITS:
        return f"{batch.debit_account} cannot cover batch {batch.id}: its budget is spent"
    if result is Result.DEBIT_ACCOUNT_NOT_FOUND:
        return f"batch {batch.id} debits {batch.debit_account}, which does not exist in the ledger"
    return f"the ledger refused to reserve batch {batch.id} ({operator}): {result.value}"


def enqueue_sends(session: Session, line_ids: Sequence[int], *, chunk: int) -> int:
    """Queue the sending of these lines (all of one operator), `chunk` a message; how many."""
    ids = sorted(line_ids)
    for start in range(0, len(ids), chunk):
        outbox.enqueue(
            session, SEND, queue_name=payout_queue(), line_ids=ids[start : start + chunk]
        )
    return -(-len(ids) // chunk)


def reserve_and_queue(
    session: Session, batch: PayoutBatch, lines: Sequence[Any], *, chunk: int
) -> int:
    """Reserve queued lines (rows with id, operator, pending_id, amount) in the ledger, one
    set-based step per operator float, and queue their sending; returns the messages.

    A float or budget that is short raises `LedgerError`: the caller's transaction then
    takes back everything, so nothing is reserved and nothing is queued.
    """
    operators = sorted({line.operator for line in lines})
    ledger.create_accounts(session, [float_spec(op) for op in operators])
    messages = 0
    for operator in operators:
        mine = sorted((line for line in lines if line.operator == operator), key=lambda r: r.id)
        amounts = [int(line.amount) for line in mine]
        # what the float could give before this batch took its part, for a refusal's message
        before = ledger.balance(session, float_account(operator))
        free = before.debits_posted - before.credits_posted - before.credits_pending
        outcomes = ledger.reserve(
            session,
            [line.pending_id for line in mine],
            batch.debit_account,
            float_account(operator),
            amounts,
        )
        refused = next(
            (o for o in outcomes if o.result not in (Result.CREATED, Result.EXISTS)), None
        )
        if refused is not None:
            raise LedgerError(_short_message(batch, operator, refused.result, sum(amounts), free))
        messages += enqueue_sends(session, [line.id for line in mine], chunk=chunk)
    return messages


def dispatch_batch(
    session: Session,
    request: SignedRequest,
    batch_id: int,
    *,
    chunk: int,
    keys: PiiKeys | None = None,
) -> DispatchReport:
    """Reserve every line of an approved batch and queue it, in the caller's transaction,
    at the signed request (`<programme>.batch.dispatch`) of a maker or an approver.

    The maker's and the approver's stored requests are verified again against the manifest
    the database recomputes (`verify_manifest`). The reservation is one set-based step per
    operator; if any float or the budget is short nothing is reserved and nothing is
    queued. Dispatching a dispatched batch is a no-op. `keys` (loaded from the settings
    when needed and not given) seal lines written before lines had a MAC.
    """
    batch = get_batch(session, batch_id, lock=True)
    authorize(
        session,
        request,
        command=batch_command(batch.programme, "dispatch"),
        arguments=batch_arguments(batch.id),
        # the batch was made and approved by two people; either may send it on its way
        roles=[Role.MAKER, Role.APPROVER],
    )
    if batch.status in (BatchStatus.DISPATCHED, BatchStatus.COMPLETED):
        return DispatchReport(batch.id, 0, 0, 0, already=True)
    if batch.status == BatchStatus.CANCELLED:
        raise ValidationError(f"batch {batch_id} was cancelled; it is never dispatched")
    if batch.status != BatchStatus.APPROVED:
        raise ValidationError(f"batch {batch_id} has not been approved")
    # sealing first locks those lines, so the manifest below vouches for what was MACed
    seal_unsealed_lines(session, batch, keys)
    verify_manifest(session, batch)
    queued = session.execute(
        text(
            "UPDATE payout_lines SET status = 'queued' WHERE batch_id = :b AND status = 'created'"
            " RETURNING id, operator, pending_id, amount"
        ),
        {"b": batch.id},
    ).all()
    messages = reserve_and_queue(session, batch, queued, chunk=chunk)
    batch.status = BatchStatus.DISPATCHED.value
    batch.dispatched_at = clock.now()
    session.flush()
    amount = sum(int(r.amount) for r in queued)
    log.info("batch.dispatched", batch_id=batch.id, lines=len(queued), amount=amount)
    return DispatchReport(batch.id, len(queued), amount, messages, already=False)


# --- recording outcomes -----------------------------------------------------------------


def record_outcomes(session: Session, outcomes: Sequence[LineOutcome]) -> int:
    """Make final outcomes true in the caller's transaction: the line moves (only if it is
    not final yet) and its pending transfer is posted or voided; returns lines changed.

    Succeeded lines with a notice get their SMS queued. Safe to call twice or concurrently:
    the conditional update lets only one caller move a line, and ledger ids are derived.
    """
    final = [o for o in outcomes if o.status.final]
    if not final:
        return 0
    moved = session.execute(
        text(
            """
            UPDATE payout_lines AS l
               SET status = v.status, reason = v.reason, retryable = v.retryable,
                   operator_reference = coalesce(v.opref, l.operator_reference),
                   resolved_at = now(), check_due_at = NULL
              FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]),
                          CAST(:reasons AS text[]), CAST(:retryables AS boolean[]),
                          CAST(:oprefs AS text[])) AS v(id, status, reason, retryable, opref)
             WHERE l.id = v.id AND l.status IN ('submitted', 'pending', 'unknown')
         RETURNING l.id, l.status, l.pending_id, l.batch_id
            """
        ),
        {
            "ids": [o.line_id for o in final],
            "statuses": [o.status.value for o in final],
            "reasons": [o.reason if o.status is LineStatus.FAILED else None for o in final],
            "retryables": [o.retryable and o.status is LineStatus.FAILED for o in final],
            "oprefs": [o.operator_reference for o in final],
        },
    ).all()
    posted = sorted((r for r in moved if r.status == LineStatus.SUCCEEDED), key=lambda r: r.id)
    voided = sorted((r for r in moved if r.status == LineStatus.FAILED), key=lambda r: r.id)
    _settle(session, [r.pending_id for r in posted], void=False)
    _settle(session, [r.pending_id for r in voided], void=True)
    if posted:
        notify = (
            session.execute(
                text(
                    "SELECT l.id FROM payout_lines l JOIN payout_batches b ON b.id = l.batch_id "
                    "WHERE l.id = ANY(:ids) AND b.notice IS NOT NULL ORDER BY l.id"
                ),
                {"ids": [r.id for r in posted]},
            )
            .scalars()
            .all()
        )
        if notify:
            outbox.enqueue(session, NOTIFY, queue_name=payout_queue(), line_ids=list(notify))
    complete_batches(session, {r.batch_id for r in moved})
    return len(moved)


def _settle(session: Session, pending_ids: list[str], *, void: bool) -> None:
    if not pending_ids:
        return
    allowed = _VOIDED_OK if void else _SETTLED_OK
    for outcome in ledger.settle(session, pending_ids, void=void):
        if outcome.result not in allowed:
            raise LedgerError(
                f"the ledger refused to {'void' if void else 'post'} {outcome.id}: "
                f"{outcome.result.value}"
            )


def complete_batches(session: Session, batch_ids: Iterable[int]) -> None:
    """Mark dispatched batches whose every line is final as completed."""
    ids = sorted(batch_ids)
    if ids:
        session.execute(
            text(
                "UPDATE payout_batches b SET status = 'completed', completed_at = now() "
                "WHERE b.id = ANY(:ids) AND b.status = 'dispatched' AND NOT EXISTS ("
                " SELECT 1 FROM payout_lines l WHERE l.batch_id = b.id"
                " AND l.status NOT IN ('succeeded', 'failed'))"
            ),
            {"ids": ids},
        )


def _mark_open(
    session: Session, outcomes: Sequence[LineOutcome], *, check_in: int | None
) -> list[int]:
    """Lines now known to be pending or unknown; schedule their next status query."""
    if not outcomes:
        return []
    moved = (
        session.execute(
            text(
                """
            UPDATE payout_lines AS l
               SET status = v.status, reason = v.reason,
                   operator_reference = coalesce(v.opref, l.operator_reference),
                   checks = l.checks + 1,
                   check_due_at = CASE WHEN CAST(:delay AS integer) IS NULL THEN NULL
                                  ELSE now() + make_interval(secs => CAST(:delay AS integer)) END
              FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]),
                          CAST(:reasons AS text[]), CAST(:oprefs AS text[]))
                   AS v(id, status, reason, opref)
             WHERE l.id = v.id AND l.status IN ('submitted', 'pending', 'unknown')
         RETURNING l.id
            """
            ),
            {
                "ids": [o.line_id for o in outcomes],
                "statuses": [o.status.value for o in outcomes],
                "reasons": [o.reason for o in outcomes],
                "oprefs": [o.operator_reference for o in outcomes],
                "delay": check_in,
            },
        )
        .scalars()
        .all()
    )
    return sorted(moved)


def _outcome_of(line_id: int, result: TransactionResult) -> LineOutcome:
    reason = result.reason.value if result.reason else None
    if result.outcome is Outcome.SUCCEEDED:
        return LineOutcome(
            line_id, LineStatus.SUCCEEDED, operator_reference=result.operator_reference
        )
    if result.outcome is Outcome.FAILED and result.reason is not Reason.UNREACHABLE:
        return LineOutcome(
            line_id, LineStatus.FAILED, reason, result.retryable, result.operator_reference
        )
    if result.outcome is Outcome.PENDING:
        return LineOutcome(line_id, LineStatus.PENDING, reason, False, result.operator_reference)
    # nothing reached the operator (unreachable) or nobody knows: the status query decides
    return LineOutcome(line_id, LineStatus.UNKNOWN, reason or Reason.NO_ANSWER.value)


# --- the worker side --------------------------------------------------------------------


@dataclass(frozen=True)
class _Hold:
    """The ledger's pending transfer of a line's attempt as it stands, and its resolution."""

    amount: int | None
    debit: str | None
    credit: str | None
    resolution: str | None


@dataclass(frozen=True)
class _Line:
    id: int
    batch_id: int
    reference: str
    operator: str
    amount: int
    # "" when the stored phone number does not decrypt (altered): such a line never
    # passes the check before sending
    msisdn: str
    status: str
    sends: int
    description: str
    operator_reference: str | None = None
    # what the check before sending needs; absent where lines are only read (SMS)
    seq: int = 0
    payee: str = ""
    pending_id: str = ""
    line_mac: bytes | None = None
    nonce: str = ""
    debit_account: str = ""
    hold: _Hold | None = None


# The ledger's side of each line, joined onto the rows the worker loads anyway: the
# pending transfer by primary key, its resolution by the unique index on pending_id.
# `{l}` is the alias of the payout lines; only this module's constants are formatted in.
_HOLD_COLUMNS = (
    "h.amount AS hold_amount, hd.code AS hold_debit, hc.code AS hold_credit,"
    " r.kind AS hold_resolution"
)
_HOLD_JOINS = """
  LEFT JOIN ledger_transfers h ON h.id = {l}.pending_id AND h.kind = 'pending'
  LEFT JOIN ledger_accounts hd ON hd.id = h.debit_account_id
  LEFT JOIN ledger_accounts hc ON hc.id = h.credit_account_id
  LEFT JOIN ledger_transfers r ON r.pending_id = {l}.pending_id
"""


@dataclass(frozen=True)
class _Refusal:
    """A line that must not be sent, and why (no personal data: it is logged and audited)."""

    line: _Line
    reason: str
    detail: str

    @property
    def flag(self) -> str:
        """What `payout_lines.flagged` says of it."""
        return f"tampering suspected, not sent ({self.reason}): {self.detail}"

    def audit(self) -> dict[str, Any]:
        """Its audit-log arguments: identifiers and the reason, no phone number."""
        return {
            "line": self.line.id,
            "batch": self.line.batch_id,
            "reference": self.line.reference,
            "reason": self.reason,
            "detail": self.detail,
        }

    def log(self, **extra: Any) -> None:
        """Log it as the error it is, with the line's identifiers."""
        log.error(
            "payout.tampering_detected",
            batch_id=self.line.batch_id,
            line_id=self.line.id,
            provider=self.line.operator,
            reference=self.line.reference,
            reason=self.reason,
            detail=self.detail,
            **extra,
        )


class Dispatcher:
    """One per worker process: an adapter and a bounded pool of requests per operator."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, keys: PiiKeys) -> None:
        self.factory = factory
        self.settings = settings
        self.keys = keys
        self._lock = threading.Lock()
        self._adapters: dict[str, ProviderAdapter] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._sms: SmsClient | None = None

    def close(self) -> None:
        """Release connections and threads."""
        with self._lock:
            for pool in self._pools.values():
                pool.shutdown(wait=True)
            for adapter in self._adapters.values():
                adapter.close()
            if self._sms is not None:
                self._sms.close()
            self._pools.clear()
            self._adapters.clear()
            self._sms = None

    def adapter(self, operator: str) -> ProviderAdapter:
        """The operator's adapter, built once per process."""
        with self._lock:
            if operator not in self._adapters:
                self._adapters[operator] = load_adapter(
                    operator, self.settings, read_timeout=self.settings.operator_timeout
                )
                self._pools[operator] = ThreadPoolExecutor(
                    self.settings.dispatch_concurrency, thread_name_prefix=f"sika-{operator}"
                )
            return self._adapters[operator]

    def _pool(self, operator: str) -> ThreadPoolExecutor:
        self.adapter(operator)
        return self._pools[operator]

    def sms(self) -> SmsClient:
        """The SMS gateway client, built once per process."""
        with self._lock:
            if self._sms is None:
                self._sms = SmsClient.from_settings(
                    self.settings, read_timeout=self.settings.operator_timeout
                )
                self._pools["sms"] = ThreadPoolExecutor(
                    self.settings.dispatch_concurrency, thread_name_prefix="sika-sms"
                )
            return self._sms

    def _sms_pool(self) -> ThreadPoolExecutor:
        self.sms()
        return self._pools["sms"]

    # -- loading ------------------------------------------------------------------------

    def _line(self, row: Any, *, checked: bool = False) -> _Line:
        """A loaded row as a line; `checked` rows carry what `_refusal` needs, and a phone
        number that does not decrypt becomes "" there instead of stopping the chunk."""
        try:
            msisdn = self.keys.keyring.decrypt(bytes(row.msisdn_enc), LINE_MSISDN)
        except DecryptionError:
            if not checked:
                raise
            msisdn = ""
        hold = None
        if checked:
            hold = _Hold(
                None if row.hold_amount is None else int(row.hold_amount),
                row.hold_debit,
                row.hold_credit,
                row.hold_resolution,
            )
        mac = getattr(row, "line_mac", None)
        return _Line(
            id=row.id,
            batch_id=row.batch_id,
            reference=row.reference,
            operator=row.operator,
            amount=int(row.amount),
            msisdn=msisdn,
            status=row.status,
            sends=row.sends,
            description=row.description,
            operator_reference=getattr(row, "operator_reference", None),
            seq=row.seq,
            payee=row.payee,
            pending_id=row.pending_id,
            line_mac=None if mac is None else bytes(mac),
            nonce=getattr(row, "nonce", ""),
            debit_account=getattr(row, "debit_account", ""),
            hold=hold,
        )

    def _refusal(self, line: _Line) -> _Refusal | None:
        """Why `line` must not be sent, or None: it no longer fits the MAC it was written
        with (its payee, operator, amount or phone changed since the maker signed), or the
        ledger no longer holds exactly its amount for it, open, budget to float."""
        problems: list[str] = []
        signed = line_mac_matches(
            self.keys,
            line.line_mac,
            batch_id=line.batch_id,
            nonce=line.nonce,
            line_id=line.id,
            seq=line.seq,
            payee=line.payee,
            operator=line.operator,
            amount=line.amount,
            msisdn=line.msisdn or None,
        )
        if not signed:
            problems.append(
                "its payee, operator, amount or phone number is not what the maker signed"
            )
        hold = line.hold
        if hold is None or hold.amount is None:
            problems.append(f"the ledger holds nothing for it ({line.pending_id})")
        elif hold.resolution is not None:
            done = _RESOLVED.get(hold.resolution, hold.resolution)
            problems.append(f"its ledger hold {line.pending_id} was already {done}")
        elif hold.amount != line.amount:
            problems.append(
                f"the line says {line.amount} FCFA, its ledger hold {line.pending_id}"
                f" {hold.amount} FCFA"
            )
        elif hold.debit != line.debit_account or hold.credit != float_account(line.operator):
            problems.append(
                f"its ledger hold {line.pending_id} moves {hold.debit} to {hold.credit}, not"
                f" {line.debit_account} to {float_account(line.operator)}"
            )
        if not problems:
            return None
        reason = HOLD_MISMATCH if signed else MANIFEST_MISMATCH
        return _Refusal(line, reason, "; ".join(problems))

    def _refuse(self, session: Session, refusals: Sequence[_Refusal]) -> None:
        """Fail claimed lines that must not be sent, in the claiming transaction: nothing
        of them left Sika, so they are not counted as sent; their open holds are voided
        and each is flagged, logged and audited."""
        if not refusals:
            return
        session.execute(
            text(
                """
                UPDATE payout_lines AS l
                   SET status = 'failed', reason = v.reason, retryable = false,
                       flagged = v.flag, sends = l.sends - 1, submitted_at = NULL,
                       resolved_at = now(), check_due_at = NULL
                  FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[]),
                              CAST(:flags AS text[])) AS v(id, reason, flag)
                 WHERE l.id = v.id AND l.status = 'submitted'
                """
            ),
            {
                "ids": [r.line.id for r in refusals],
                "reasons": [r.reason for r in refusals],
                "flags": [r.flag for r in refusals],
            },
        )
        # a hold already gone (voided, posted, never made) is left as the ledger has it
        _settle(
            session,
            sorted(
                r.line.pending_id
                for r in refusals
                if r.line.hold is not None
                and r.line.hold.amount is not None
                and r.line.hold.resolution is None
            ),
            void=True,
        )
        audit_record(session, None, REFUSED_ACTION, {"lines": [r.audit() for r in refusals]})
        for refusal in refusals:
            refusal.log()
        complete_batches(session, {r.line.batch_id for r in refusals})

    def _load(self, session: Session, line_ids: Sequence[int], query: str) -> list[_Line]:
        rows = session.execute(text(query), {"ids": list(line_ids)}).all()
        return [self._line(r, checked=True) for r in rows]

    # -- send ---------------------------------------------------------------------------

    def send(self, line_ids: Sequence[int]) -> None:
        """Send the queued lines among `line_ids`; lines another delivery already claimed
        are only queried, later."""

        def claim(session: Session) -> tuple[list[_Line], list[int]]:
            claimed = self._load(
                session,
                line_ids,
                f"""
                WITH c AS (
                    UPDATE payout_lines SET status = 'submitted', sends = sends + 1,
                           submitted_at = now()
                     WHERE id = ANY(:ids) AND status = 'queued'
                 RETURNING *)
                SELECT c.*, b.description, b.nonce, b.debit_account, {_HOLD_COLUMNS}
                  FROM c JOIN payout_batches b ON b.id = c.batch_id
                  {_HOLD_JOINS.format(l="c")}
                ORDER BY c.id
                """,  # noqa: S608
            )
            mine = {line.id for line in claimed}
            # the check before sending: the whole chunk at once, on the rows just claimed
            refusals = [r for r in map(self._refusal, claimed) if r is not None]
            self._refuse(session, refusals)
            refused = {r.line.id for r in refusals}
            claimed = [line for line in claimed if line.id not in refused]
            stranded = (
                session.execute(
                    text(
                        "SELECT id FROM payout_lines WHERE id = ANY(:ids) AND status = 'submitted'"
                    ),
                    {"ids": list(line_ids)},
                )
                .scalars()
                .all()
            )
            stranded = sorted(i for i in stranded if i not in mine)
            if stranded:
                outbox.enqueue(
                    session,
                    CHECK,
                    queue_name=payout_queue(),
                    delay_ms=self._grace_ms(),
                    line_ids=stranded,
                    round=0,
                )
            return claimed, stranded

        claimed, stranded = run_in_transaction(self.factory, claim)
        if stranded:
            log.warning("payout.stranded_lines_queried", lines=len(stranded))
        if claimed:
            crash_at(CLAIMED)
        results = self._fan_out(claimed, self._send_one)
        self._record(results, round_=0)
        if results:
            # the message is acked only once this returns
            crash_at(RECORDED)

    def _grace_ms(self) -> int:
        return int((self.settings.operator_timeout + STRANDED_GRACE_SECONDS) * 1000)

    def _send_one(self, line: _Line) -> TransactionResult:
        adapter = self.adapter(line.operator)
        bound = log.bind(
            batch_id=line.batch_id,
            line_id=line.id,
            provider=line.operator,
            reference=line.reference,
            msisdn=mask(line.msisdn),
        )
        bound.info("payout.send", amount=line.amount, send=line.sends)
        result = adapter.payout(
            PayoutRequest(
                reference=line.reference,
                msisdn=line.msisdn,
                amount=line.amount,
                description=line.description[:140],
            )
        )
        crash_at(ANSWERED)
        bound.info(
            "payout.answer",
            outcome=result.outcome.value,
            reason=result.reason.value if result.reason else None,
            operator_reference=result.operator_reference,
        )
        return result

    def _fan_out(self, lines: Sequence[_Line], call: Any) -> list[tuple[_Line, TransactionResult]]:
        futures: list[tuple[_Line, Future[TransactionResult]]] = [
            (line, self._pool(line.operator).submit(self._guarded, call, line)) for line in lines
        ]
        return [(line, future.result()) for line, future in futures]

    @staticmethod
    def _guarded(call: Any, line: _Line) -> TransactionResult:
        try:
            result: TransactionResult = call(line)
            return result
        except Exception as exc:  # an adapter bug must not lose track of a line
            log.exception("payout.adapter_error", line_id=line.id, reference=line.reference)
            return TransactionResult(
                provider=line.operator,
                reference=line.reference,
                outcome=Outcome.UNKNOWN,
                reason=Reason.OPERATOR_ERROR,
                detail=type(exc).__name__,
            )

    def _record(self, results: Sequence[tuple[_Line, TransactionResult]], *, round_: int) -> None:
        outcomes = [_outcome_of(line.id, result) for line, result in results]
        final = [o for o in outcomes if o.status.final]
        still_open = [o for o in outcomes if not o.status.final]
        # after the last scheduled query only news from the operator (a callback, the
        # statement) settles a line
        delays = self.settings.status_check_delays
        delay = delays[round_] if round_ < len(delays) else None

        def write(session: Session) -> None:
            record_outcomes(session, final)
            scheduled = _mark_open(session, still_open, check_in=delay)
            if scheduled and delay is not None:
                outbox.enqueue(
                    session,
                    CHECK,
                    queue_name=payout_queue(),
                    delay_ms=delay * 1000,
                    line_ids=scheduled,
                    round=round_ + 1,
                )

        if outcomes:
            run_in_transaction(self.factory, write)

    # -- status queries -----------------------------------------------------------------

    def check(self, line_ids: Sequence[int], round_: int) -> None:
        """Query the operator about open lines; re-send under the same reference only a
        line the operator says it never received."""

        def load(session: Session) -> list[_Line]:
            return self._load(
                session,
                line_ids,
                f"""
                SELECT l.*, b.description, b.nonce, b.debit_account, {_HOLD_COLUMNS}
                  FROM payout_lines l
                  JOIN payout_batches b ON b.id = l.batch_id
                  {_HOLD_JOINS.format(l="l")}
                 WHERE l.id = ANY(:ids) AND l.status IN ('submitted', 'pending', 'unknown')
                 ORDER BY l.id
                """,  # noqa: S608
            )

        lines = run_in_transaction(self.factory, load)
        results = self._fan_out(lines, self._check_one)
        self._record(results, round_=round_)

    def _check_one(self, line: _Line) -> TransactionResult:
        adapter = self.adapter(line.operator)
        result = adapter.payout_status(line.reference, line.operator_reference)
        log.info(
            "payout.status",
            batch_id=line.batch_id,
            line_id=line.id,
            provider=line.operator,
            reference=line.reference,
            outcome=result.outcome.value,
            found=result.found,
        )
        if result.found:
            return result
        if line.status == LineStatus.PENDING or line.sends >= MAX_SENDS:
            # the operator once said it had it, or we have tried enough: leave it to
            # callbacks and reconciliation
            return TransactionResult(
                provider=line.operator,
                reference=line.reference,
                outcome=Outcome.UNKNOWN,
                reason=Reason.NOT_FOUND,
            )
        refusal = self._refusal(line)
        if refusal is not None:
            # it may have reached the operator as it was first sent: only the operator's
            # word (a status query, a callback, the statement) settles it now
            run_in_transaction(self.factory, lambda s: self._flag_open(s, refusal))
            return TransactionResult(
                provider=line.operator,
                reference=line.reference,
                outcome=Outcome.UNKNOWN,
                reason=Reason.NOT_FOUND,
            )
        claimed = run_in_transaction(
            self.factory,
            lambda s: s.execute(
                text(
                    "UPDATE payout_lines SET sends = sends + 1 "
                    "WHERE id = :id AND sends = :sends AND status IN ('submitted', 'unknown') "
                    "RETURNING id"
                ),
                {"id": line.id, "sends": line.sends},
            ).scalar_one_or_none(),
        )
        if claimed is None:  # another worker re-sent it meanwhile
            return TransactionResult(
                provider=line.operator,
                reference=line.reference,
                outcome=Outcome.UNKNOWN,
                reason=Reason.NO_ANSWER,
            )
        return self._send_one(dataclasses.replace(line, sends=line.sends + 1))

    @staticmethod
    def _flag_open(session: Session, refusal: _Refusal) -> None:
        """Flag an in-flight line that must not be re-sent; audited the first time only."""
        first = session.execute(
            text(
                "UPDATE payout_lines SET flagged = :flag WHERE id = :id AND flagged IS NULL"
                " RETURNING id"
            ),
            {"id": refusal.line.id, "flag": refusal.flag},
        ).scalar_one_or_none()
        if first is not None:
            audit_record(session, None, REFUSED_ACTION, {"lines": [refusal.audit()]})
            refusal.log(resend="refused")

    # -- SMS ----------------------------------------------------------------------------

    def notify(self, line_ids: Sequence[int]) -> None:
        """Tell each paid payee by SMS, once: the gateway sees the same reference on a
        repeat, and a line is marked notified only after the gateway accepted."""

        def load(session: Session) -> list[tuple[_Line, str]]:
            rows = session.execute(
                text(
                    "SELECT l.*, b.description, b.notice FROM payout_lines l "
                    "JOIN payout_batches b ON b.id = l.batch_id "
                    "WHERE l.id = ANY(:ids) AND l.status = 'succeeded' "
                    "AND l.notified_at IS NULL AND b.notice IS NOT NULL ORDER BY l.id"
                ),
                {"ids": list(line_ids)},
            ).all()
            return [(self._line(r), r.notice) for r in rows]

        def send(item: tuple[_Line, str]) -> bool:
            line, notice = item
            message = notice.replace("{amount}", format_fcfa(line.amount)).replace(
                "{reference}", line.reference
            )
            result = self.sms().send(line.msisdn, message, f"{line.reference}-sms")
            return result.outcome is Outcome.SUCCEEDED

        todo = run_in_transaction(self.factory, load)
        answers = list(self._sms_pool().map(send, todo))
        sent = [line.id for (line, _), ok in zip(todo, answers, strict=True) if ok]
        if sent:
            run_in_transaction(
                self.factory,
                lambda s: s.execute(
                    text(
                        "UPDATE payout_lines SET notified_at = now() "
                        "WHERE id = ANY(:ids) AND notified_at IS NULL"
                    ),
                    {"ids": sent},
                ),
            )
        if len(sent) < len(line_ids):
            log.info("payout.sms_not_sent", asked=len(line_ids), sent=len(sent))


def schedule_check(session: Session, line_ids: Sequence[int]) -> None:
    """Queue one status query of these lines now (a callback's hint, an operator's request)."""
    if line_ids:
        outbox.enqueue(
            session,
            CHECK,
            queue_name=payout_queue(),
            line_ids=sorted(line_ids),
            round=len(load_settings().status_check_delays),
        )


def lines_by_reference(session: Session, references: Sequence[str]) -> list[int]:
    """Ids of the lines whose current attempt carries one of these operator references."""
    return list(
        session.execute(
            text("SELECT id FROM payout_lines WHERE reference = ANY(:refs) ORDER BY id"),
            {"refs": list(references)},
        ).scalars()
    )


_SWEEP_LOCK = 0x51CA_5EE9


@dataclass(frozen=True)
class SweepReport:
    """Messages re-issued for lines whose work message was lost (a broker that restarted
    without its queues, a message dropped by a crash)."""

    sends: int
    checks: int


def sweep(
    session: Session, *, older_than: float, chunk: int, in_flight: float = 0.0
) -> SweepReport:
    """Re-queue the work of lines that have not moved for `older_than` seconds.

    A `submitted` line also waits `in_flight` seconds (the operator timeout and a grace):
    its request may still be on its way from a live worker, and a status query that finds
    nothing re-sends it. Only one sweeper acts at a time (an advisory lock); a duplicate
    message is harmless, since sending claims a line conditionally and a status query
    re-sends only what the operator says it never received, under the same reference.
    """
    if not session.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _SWEEP_LOCK}
    ).scalar_one():
        return SweepReport(0, 0)
    age = {"age": older_than}
    stale_queued = session.execute(
        text(
            "SELECT id, operator FROM payout_lines WHERE status = 'queued'"
            " AND updated_at < now() - make_interval(secs => :age) ORDER BY id"
        ),
        age,
    ).all()
    stale_open = session.execute(
        text(
            "SELECT id, checks FROM payout_lines"
            " WHERE (status = 'submitted'"
            "        AND updated_at < now() - make_interval(secs => :sent_age))"
            "    OR (status IN ('pending', 'unknown')"
            "        AND check_due_at < now() - make_interval(secs => :age))"
            " ORDER BY id"
        ),
        {**age, "sent_age": max(older_than, in_flight)},
    ).all()
    for operator in sorted({r.operator for r in stale_queued}):
        enqueue_sends(session, [r.id for r in stale_queued if r.operator == operator], chunk=chunk)
    for start in range(0, len(stale_open), chunk):
        part = stale_open[start : start + chunk]
        outbox.enqueue(
            session,
            CHECK,
            queue_name=payout_queue(),
            line_ids=[r.id for r in part],
            round=min(r.checks for r in part),
        )
    if stale_queued or stale_open:
        # touch them so the next sweep waits a full period before re-issuing again
        session.execute(
            text(
                "UPDATE payout_lines SET check_due_at = CASE WHEN check_due_at IS NULL"
                " THEN NULL ELSE now() END WHERE id = ANY(:ids)"
            ),
            {"ids": [r.id for r in stale_queued] + [r.id for r in stale_open]},
        )
        log.warning("payout.sweep", sends=len(stale_queued), checks=len(stale_open))
    return SweepReport(len(stale_queued), len(stale_open))
