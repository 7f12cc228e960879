"""Building, submitting, approving, cancelling and reporting payout batches (the
programme-neutral part).

A programme hands over `LineSpec`s, each with its pre-flight verdict (`payouts.preflight`);
the batch's manifest is a SHA-256 computed by the database over every line in it as
stored: lines the pre-flight kept out (`held_out`) are written with the batch, so its
maker sees them, but are outside the manifest and never sent. Including a held line or
running the pre-flight again changes the manifest; the maker signs each new one (every
submit is kept) and the approval verifies the latest.

Its maker submits it and a different agent approves it, each with a signed request naming
the batch and its manifest (`<programme>.batch.submit` / `.approve`), kept whole with the
batch; dispatch verifies both again against the manifest as the database recomputes it,
so it can prove the lines it is about to pay are the ones the maker signed and the
approver approved.

Dispatch checks the whole batch once; a worker sends a chunk of lines minutes later and
cannot afford the whole manifest again. So each line also carries `line_mac`, a keyed
HMAC of the same fields written with the line: a worker recomputes it for the lines it
is about to send, at no query's cost. The key is Sika's server secret (the blind-index
key), never in the database, so someone who can edit rows, even as a superuser, cannot
write a MAC that fits a changed amount or phone number.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticError
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import clock
from core.audit import canonical_json
from core.authority import SignedRequest, authorize, canonical_arguments, signature_valid
from core.bounds import MAX_COUNTER, check_amount
from core.crypto import DecryptionError, PiiKeys, load_keys
from core.errors import AuthorizationError, NotFoundError, ValidationError
from core.models import Agent, AgentGrant, GrantStatus, Role
from core.settings import load_settings
from payouts.models import (
    CANCELLED_REASON,
    EXCLUDING,
    LINE_MSISDN,
    BatchRequest,
    BatchStatus,
    BatchStep,
    LineStatus,
    PayoutBatch,
    PayoutLine,
    Verdict,
)
from providers.msisdn import normalise

_MANIFEST_DOMAIN = b"sika/payout-batch-manifest/v1\n"

# every field dispatch relies on, in a fixed order; the phone number enters as the hash of
# its ciphertext so the manifest can be recomputed without decrypting anything
_LINES_DIGEST = text(
    """
    SELECT encode(sha256(convert_to(coalesce(string_agg(
               seq || '|' || payee || '|' || operator || '|' || amount || '|'
               || encode(sha256(msisdn_enc), 'hex'),
               E'\\n' ORDER BY seq), ''), 'UTF8')), 'hex') AS digest,
           count(*) AS lines, coalesce(sum(amount), 0) AS total
    FROM payout_lines WHERE batch_id = :batch AND held_out IS NULL
    """
)


# the summary's keys, in the order `batch show` lists them
SUMMARY_KEYS = (
    Verdict.OK,
    Verdict.NAME_MISMATCH,
    Verdict.NOT_REGISTERED,
    Verdict.INACTIVE,
    Verdict.LOCKED,
    Verdict.AT_BALANCE_CAP,
    Verdict.PORTED,
    Verdict.UNREACHABLE,
)
INCLUDED_BY_MAKER = "included_by_maker"


# the HMAC's domain: no blind index or other MAC made with the same key starts this way
LINE_MAC_CONTEXT = "sika/payout-line-mac/v1"


@dataclass(frozen=True)
class LineSpec:
    """One payee of a batch as the programme decided it."""

    payee: str
    msisdn: str
    operator: str
    amount: int
    # the payee's registered name, compared with the wallet holder's by the pre-flight;
    # None: the wallet's status alone is checked (a company's merchant wallet)
    name: str | None = None


@dataclass(frozen=True)
class LineVerdict:
    """A line's pre-flight verdict as `create_batch` writes it: the verdict, the name
    score, and the operator to pay at (the other one for a ported number)."""

    verdict: Verdict
    score: int | None
    operator: str


def line_reference(nonce: str, seq: int, attempt: int) -> str:
    """The operator reference of a line's attempt: unique, short, safe for both operators."""
    return f"SK{nonce}-{seq}-{attempt}"


def pending_transfer_id(line_id: int, attempt: int) -> str:
    """The ledger's pending transfer holding a line's attempt."""
    return f"payout:{line_id}:{attempt}"


def line_mac(
    keys: PiiKeys,
    *,
    batch_id: int,
    nonce: str,
    line_id: int,
    seq: int,
    payee: str,
    operator: str,
    amount: int,
    msisdn: str,
) -> bytes:
    """The keyed HMAC binding a line's payee, operator, amount and phone number to its
    place (batch, nonce, id, seq), as written when the maker signs the batch.

    The phone enters in clear, as the worker sends it, so the MAC vouches for what leaves
    Sika. Fields are joined by NUL, which no PostgreSQL text value can hold, so no two
    different lines share an encoding. The attempt's reference and hold are left out on
    purpose: a retry changes them, and the ledger is checked for the hold.
    """
    fields = "\x00".join(
        (str(batch_id), nonce, str(line_id), str(seq), payee, operator, str(amount), msisdn)
    )
    return keys.blind_index.digest(fields, LINE_MAC_CONTEXT)


def line_mac_matches(
    keys: PiiKeys,
    stored: bytes | None,
    *,
    batch_id: int,
    nonce: str,
    line_id: int,
    seq: int,
    payee: str,
    operator: str,
    amount: int,
    msisdn: str | None,
) -> bool:
    """Whether a line as loaded still has the MAC it was written with (None for a phone
    number that did not decrypt: never a match)."""
    if stored is None or msisdn is None:
        return False
    expected = line_mac(
        keys,
        batch_id=batch_id,
        nonce=nonce,
        line_id=line_id,
        seq=seq,
        payee=payee,
        operator=operator,
        amount=amount,
        msisdn=msisdn,
    )
    return hmac.compare_digest(expected, bytes(stored))


def seal_unsealed_lines(session: Session, batch: PayoutBatch, keys: PiiKeys | None) -> int:
    """Give a MAC to the batch's lines written before lines had one (revision 0015), and
    lock them; how many. Call it before `verify_manifest` in the same transaction: the
    lines stay locked until commit, so the manifest then vouches for the fields MACed.

    A partial index holds only such lines, so a batch that has none costs one probe;
    `keys` are loaded from the settings only when there is something to seal.
    """
    rows = session.execute(
        text(
            "SELECT id, seq, payee, operator, amount, msisdn_enc FROM payout_lines"
            " WHERE batch_id = :b AND line_mac IS NULL ORDER BY id FOR UPDATE"
        ),
        {"b": batch.id},
    ).all()
    if not rows:
        return 0
    keys = keys or load_keys(load_settings())
    macs: list[bytes] = []
    for row in rows:
        try:
            msisdn = keys.keyring.decrypt(bytes(row.msisdn_enc), LINE_MSISDN)
        except DecryptionError:
            raise AuthorizationError(
                f"batch {batch.id}: line {row.id}'s phone number does not decrypt "
                "(altered?); refusing to pay it"
            ) from None
        macs.append(
            line_mac(
                keys,
                batch_id=batch.id,
                nonce=batch.nonce,
                line_id=row.id,
                seq=row.seq,
                payee=row.payee,
                operator=row.operator,
                amount=int(row.amount),
                msisdn=msisdn,
            )
        )
    session.execute(
        text(
            "UPDATE payout_lines l SET line_mac = v.mac"
            " FROM unnest(CAST(:ids AS bigint[]), CAST(:macs AS bytea[])) AS v(id, mac)"
            " WHERE l.id = v.id AND l.line_mac IS NULL"
        ),
        {"ids": [row.id for row in rows], "macs": macs},
    )
    return len(rows)


def get_batch(session: Session, batch_id: int, *, lock: bool = False) -> PayoutBatch:
    """The batch, or `NotFoundError`; `lock` holds its row until the transaction ends (and
    reads it afresh: another transaction may have approved or cancelled it meanwhile)."""
    query = select(PayoutBatch).where(PayoutBatch.id == batch_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    batch = session.scalar(query)
    if batch is None:
        raise NotFoundError(f"no payout batch {batch_id}")
    return batch


def compute_manifest(session: Session, batch: PayoutBatch) -> tuple[str, int, int]:
    """(manifest, lines, total) of the batch's lines as they are stored right now."""
    row = session.execute(_LINES_DIGEST, {"batch": batch.id}).one()
    header = canonical_json(
        {
            "batch": batch.id,
            "programme": batch.programme,
            "scope": batch.scope,
            "debit_account": batch.debit_account,
            "nonce": batch.nonce,
            "lines": int(row.lines),
            "total": int(row.total),
            "lines_sha256": row.digest,
        }
    )
    return hashlib.sha256(_MANIFEST_DOMAIN + header).hexdigest(), int(row.lines), int(row.total)


def create_batch(
    session: Session,
    *,
    programme: str,
    scope: str,
    debit_account: str,
    description: str,
    notice: str | None,
    lines: Sequence[LineSpec],
    maker: Agent,
    keys: PiiKeys,
    verdicts: Sequence[LineVerdict | None] | None = None,
) -> PayoutBatch:
    """Write a batch and its lines for `maker`, whom the programme's service authorised;
    the maker then submits it (`submit_batch`), signing the manifest computed here.

    `verdicts` (one per line, from the pre-flight) decide each line's place: a line whose
    verdict would fail at the operator is written failed with the verdict as its reason
    and kept out of the manifest (its payee stays free for a later batch); a name_mismatch
    line is held out, its payee still in this batch, until the maker includes it; a ported
    line is paid at the operator its verdict names. Without verdicts (None for a line),
    the line has none and is in the manifest.

    A payee with a live line in the same scope makes the whole batch refused (the unique
    index is the last word, so two makers racing cannot both include a payee).
    """
    if not lines:
        raise ValidationError("a payout batch needs at least one line")
    judged = list(verdicts) if verdicts is not None else [None] * len(lines)
    if len(judged) != len(lines):
        raise ValueError("one verdict per line, or none")
    if all(v is not None and v.verdict in EXCLUDING for v in judged):
        raise ValidationError(
            "the pre-flight excluded every line (not registered, inactive, locked or at the"
            " balance cap): there is nothing to pay"
        )
    for number, spec in enumerate(lines, start=1):
        check_amount(spec.amount, f"line {number}: the amount")
    total = sum(spec.amount for spec in lines)
    if total > MAX_COUNTER:
        raise ValidationError(
            f"the batch totals {total:,} francs, more than the {MAX_COUNTER:,} an account holds"
        )
    batch = PayoutBatch(
        programme=programme,
        scope=scope,
        debit_account=debit_account,
        description=description,
        notice=notice,
        status=BatchStatus.CREATED.value,
        nonce=secrets.token_hex(4),
        lines=0,
        total=0,
        manifest="",
        maker_id=maker.id,
    )
    session.add(batch)
    session.flush()
    # line ids come from the table's identity sequence up front, because each line's
    # pending transfer id carries it and a line's ids never change once written
    line_ids = (
        session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('payout_lines', 'id'))"
                " FROM generate_series(1, :n)"
            ),
            {"n": len(lines)},
        )
        .scalars()
        .all()
    )
    rows = []
    now = clock.now()
    for seq, (line_id, spec, judged_line) in enumerate(
        zip(line_ids, lines, judged, strict=True), start=1
    ):
        msisdn = normalise(spec.msisdn)
        operator = str(judged_line.operator if judged_line is not None else spec.operator)
        verdict = judged_line.verdict if judged_line is not None else None
        held = verdict.value if verdict in EXCLUDING or verdict is Verdict.NAME_MISMATCH else None
        excluded = verdict in EXCLUDING
        rows.append(
            {
                "id": line_id,
                "batch_id": batch.id,
                "seq": seq,
                "scope": scope,
                "payee": spec.payee,
                "msisdn_enc": keys.keyring.encrypt(msisdn, LINE_MSISDN),
                "line_mac": line_mac(
                    keys,
                    batch_id=batch.id,
                    nonce=batch.nonce,
                    line_id=line_id,
                    seq=seq,
                    payee=spec.payee,
                    operator=operator,
                    amount=spec.amount,
                    msisdn=msisdn,
                ),
                "operator": operator,
                "amount": spec.amount,
                # an excluded line is final from the start: never sent, payee not live
                "status": (LineStatus.FAILED if excluded else LineStatus.CREATED).value,
                "reason": held if excluded else None,
                "retryable": False,
                "resolved_at": now if excluded else None,
                "attempt": 1,
                "reference": line_reference(batch.nonce, seq, 1),
                "pending_id": pending_transfer_id(line_id, 1),
                "preflight": verdict.value if verdict is not None else None,
                "preflight_score": judged_line.score if judged_line is not None else None,
                "held_out": held,
            }
        )
    try:
        with session.begin_nested():
            session.execute(PayoutLine.__table__.insert(), rows)
    except IntegrityError as exc:
        if "ux_payout_lines_once_per_scope" in str(exc.orig):
            raise ValidationError(
                f"a payee of this batch already has a live payout in {scope} "
                "(another batch was built at the same time); build the batch again"
            ) from None
        raise
    refresh_manifest(session, batch)
    return batch


def refresh_manifest(session: Session, batch: PayoutBatch) -> tuple[str, int, int]:
    """Write the batch's manifest, lines and total as its lines in the manifest now are
    (a batch not yet approved: the database refuses it later); (manifest, lines, total)."""
    manifest, count, total = compute_manifest(session, batch)
    batch.manifest, batch.lines, batch.total = manifest, count, total
    session.flush()
    return manifest, count, total


def batch_command(programme: str, step: str) -> str:
    """The command of a signed request acting on one of `programme`'s batches:
    `agripme.batch.approve`, `cizo.batch.dispatch`."""
    return f"{programme}.batch.{step}"


def manifest_arguments(batch_id: int, manifest: str) -> dict[str, Any]:
    """What the maker's submit and the approver's approve sign: the batch and its manifest."""
    return {"batch_id": batch_id, "manifest_sha256": manifest}


def batch_arguments(batch_id: int) -> dict[str, Any]:
    """What a request acting on a batch as a whole signs (cancel, dispatch, retry)."""
    return {"batch_id": batch_id}


def keep_request(
    session: Session,
    batch: PayoutBatch,
    step: BatchStep,
    agent: Agent,
    request: SignedRequest,
    accepted_at: datetime,
) -> None:
    session.add(
        BatchRequest(
            batch_id=batch.id,
            step=step.value,
            agent_id=agent.id,
            command=request.command,
            arguments=canonical_arguments(request.arguments),
            agent=request.agent,
            request_id=request.request_id,
            issued_at=request.issued_at,
            signature=request.signature,
            accepted_at=accepted_at,
        )
    )
    session.flush()


def _stored(session: Session, batch: PayoutBatch, step: BatchStep) -> BatchRequest | None:
    """The batch's `step` request; the latest for a step that repeats (submit)."""
    return session.scalar(
        select(BatchRequest)
        .where(BatchRequest.batch_id == batch.id, BatchRequest.step == step)
        .order_by(BatchRequest.id.desc())
        .limit(1)
    )


def signed_manifest(session: Session, batch: PayoutBatch) -> str | None:
    """The manifest the batch's maker last signed (None before any submit)."""
    latest = _stored(session, batch, BatchStep.SUBMIT)
    return str(latest.arguments.get("manifest_sha256")) if latest is not None else None


def _check_lines(session: Session, batch: PayoutBatch) -> str:
    """The manifest the database computes now, refused unless it is the batch's."""
    manifest, lines, total = compute_manifest(session, batch)
    if manifest != batch.manifest or lines != batch.lines or total != batch.total:
        raise AuthorizationError(
            f"batch {batch.id}'s lines changed after they were signed; refusing to pay it"
            f" (`sika {batch.programme} batch cancel {batch.id}` releases its payees)"
        )
    return manifest


def submit_batch(session: Session, request: SignedRequest, batch_id: int) -> PayoutBatch:
    """The maker signs the manifest of the batch they built (`<programme>.batch.submit`);
    the request is kept with the batch, for the approver and for dispatch to verify. A
    batch whose manifest changed since (an inclusion, a pre-flight re-run) is signed
    again the same way; every signed manifest is kept."""
    batch = get_batch(session, batch_id, lock=True)
    now = clock.now()
    maker = authorize(
        session,
        request,
        command=batch_command(batch.programme, BatchStep.SUBMIT),
        arguments=manifest_arguments(batch.id, batch.manifest),
        roles=[Role.MAKER],
        now=now,
    )
    if maker.id != batch.maker_id:
        raise AuthorizationError(
            f"agent {maker.name!r} did not build batch {batch_id}: only its maker submits it"
        )
    if batch.status != BatchStatus.CREATED:
        raise ValidationError(
            f"batch {batch_id} is {batch.status}; only a created batch can be submitted"
        )
    if signed_manifest(session, batch) == batch.manifest:
        raise ValidationError(f"batch {batch_id} was already submitted with this manifest")
    _check_lines(session, batch)
    keep_request(session, batch, BatchStep.SUBMIT, maker, request, now)
    return batch


def approve_batch(session: Session, request: SignedRequest, batch_id: int) -> PayoutBatch:
    """The approver signs the manifest (`<programme>.batch.approve`): an agent holding
    approver, other than the batch's maker, once the maker's submit still verifies."""
    batch = get_batch(session, batch_id, lock=True)
    now = clock.now()
    approver = authorize(
        session,
        request,
        command=batch_command(batch.programme, BatchStep.APPROVE),
        arguments=manifest_arguments(batch.id, batch.manifest),
        roles=[Role.APPROVER],
        now=now,
    )
    if approver.id == batch.maker_id:
        raise AuthorizationError(
            f"agent {approver.name!r} made batch {batch_id} and cannot also approve it"
        )
    if batch.status != BatchStatus.CREATED:
        raise ValidationError(
            f"batch {batch_id} is {batch.status}; only a created batch can be approved"
        )
    signed = signed_manifest(session, batch)
    if signed is not None and signed != batch.manifest:
        raise AuthorizationError(
            f"batch {batch_id}'s manifest changed after its maker last signed it (a line"
            " included, or the pre-flight run again): its maker submits it again first"
        )
    verify_manifest(session, batch, approved=False)
    # lines still held out for a name mismatch are out for good: failed, payees free
    session.execute(
        text(
            "UPDATE payout_lines SET status = 'failed', reason = held_out, retryable = false,"
            " resolved_at = :now WHERE batch_id = :b AND status = 'created'"
            " AND held_out IS NOT NULL"
        ),
        {"now": now, "b": batch.id},
    )
    batch.approver_id = approver.id
    batch.approved_at = now
    batch.status = BatchStatus.APPROVED.value
    session.flush()
    keep_request(session, batch, BatchStep.APPROVE, approver, request, now)
    return batch


def cancel_batch(session: Session, request: SignedRequest, batch_id: int) -> PayoutBatch:
    """Cancel a batch not yet dispatched (`<programme>.batch.cancel`), by its maker or an
    approver: its lines fail as `cancelled`, never sent, and their payees are free for a
    later batch. Nothing was reserved in the ledger before dispatch, so nothing is undone
    there. The lines are not checked first: a tampered batch is cancelled this way."""
    batch = get_batch(session, batch_id, lock=True)
    now = clock.now()
    agent = authorize(
        session,
        request,
        command=batch_command(batch.programme, BatchStep.CANCEL),
        arguments=batch_arguments(batch.id),
        roles=[Role.MAKER, Role.APPROVER],
        now=now,
    )
    if agent.id != batch.maker_id and Role.APPROVER not in agent.roles:
        raise AuthorizationError(
            f"agent {agent.name!r} did not make batch {batch_id}: only its maker or an"
            " approver cancels it"
        )
    if batch.status not in (BatchStatus.CREATED, BatchStatus.APPROVED):
        raise ValidationError(
            f"batch {batch_id} is {batch.status}; only a batch not yet dispatched can be cancelled"
        )
    # the batch first: the line rule lets a line fail as cancelled only in a cancelled batch
    batch.status = BatchStatus.CANCELLED.value
    batch.cancelled_at = now
    session.flush()
    session.execute(
        text(
            "UPDATE payout_lines SET status = 'failed', reason = :reason, retryable = false,"
            " resolved_at = :now WHERE batch_id = :b AND status = 'created'"
        ),
        {"reason": CANCELLED_REASON, "now": now, "b": batch.id},
    )
    keep_request(session, batch, BatchStep.CANCEL, agent, request, now)
    return batch


def _held(session: Session, agent_id: int, role: Role, at: datetime) -> bool:
    """Whether the agent holds `role` now, in force since `at` or earlier."""
    since = func.coalesce(AgentGrant.confirmed_at, AgentGrant.granted_at)
    found = session.scalar(
        select(AgentGrant.id)
        .join(Agent, Agent.id == AgentGrant.agent_id)
        .where(
            AgentGrant.agent_id == agent_id,
            AgentGrant.role == role,
            AgentGrant.status == GrantStatus.ACTIVE,
            since <= at,
            Agent.revoked_at.is_(None),
        )
        .limit(1)
    )
    return found is not None


_STEP_ROLE = {BatchStep.SUBMIT: Role.MAKER, BatchStep.APPROVE: Role.APPROVER}
_STEP_DONE = {BatchStep.SUBMIT: "submitted", BatchStep.APPROVE: "approved"}


def _verify_step(
    session: Session, batch: PayoutBatch, step: BatchStep, manifest: str, agent_id: int | None
) -> BatchRequest:
    """The batch's stored `step` request, refused unless it is a request of `agent_id`
    for this batch and `manifest`, signed with the key that agent held when it was
    accepted, by an agent who held the step's role then and still does."""
    stored = _stored(session, batch, step)
    if stored is None:
        if step is BatchStep.APPROVE:
            raise AuthorizationError(f"batch {batch.id} has not been approved")
        raise AuthorizationError(
            f"batch {batch.id} has no signed submit request from its maker (built before"
            f" batches kept them?): cancel it with `sika {batch.programme} batch cancel"
            f" {batch.id}` and build it again"
        )
    done, role = _STEP_DONE[step], _STEP_ROLE[step]
    named = session.scalar(select(Agent.name).where(Agent.id == stored.agent_id))
    try:
        request = SignedRequest(
            command=stored.command,
            arguments=stored.arguments,
            agent=stored.agent,
            request_id=stored.request_id,
            issued_at=stored.issued_at,
            signature=stored.signature,
        )
    except PydanticError:
        request = None
    if (
        request is None
        or stored.agent_id != agent_id
        or named != request.agent
        or request.command != batch_command(batch.programme, step)
        or canonical_arguments(request.arguments) != manifest_arguments(batch.id, manifest)
    ):
        raise AuthorizationError(
            f"batch {batch.id}'s {step.value} request does not name this batch, its manifest"
            f" and its {role.value}; refusing to pay it"
        )
    if not signature_valid(session, request, at=stored.accepted_at):
        raise AuthorizationError(
            f"batch {batch.id}'s {step.value} signature by {request.agent!r} does not verify;"
            " refusing to pay it"
        )
    if not _held(session, stored.agent_id, role, stored.accepted_at):
        raise AuthorizationError(
            f"batch {batch.id} was {done} by {request.agent!r}, who no longer holds"
            f" {role.value}; refusing to pay it (cancel it and build it again)"
        )
    return stored


def verify_manifest(session: Session, batch: PayoutBatch, *, approved: bool = True) -> None:
    """Refuse unless the lines still hash to the batch's manifest, its maker's submit
    request (and, when `approved`, its approver's approve request) verifies against that
    manifest, and the two are different agents holding maker and approver."""
    manifest = _check_lines(session, batch)
    submitted = _verify_step(session, batch, BatchStep.SUBMIT, manifest, batch.maker_id)
    if not approved:
        return
    approval = _verify_step(session, batch, BatchStep.APPROVE, manifest, batch.approver_id)
    if approval.agent_id == submitted.agent_id:
        raise AuthorizationError(f"batch {batch.id} was approved by its own maker")


def committed_total(session: Session, scope: str) -> int:
    """Francs in lines of `scope` not yet reserved in the ledger (created batches)."""
    query = select(func.coalesce(func.sum(PayoutLine.amount), 0)).where(
        PayoutLine.scope == scope, PayoutLine.status == LineStatus.CREATED.value
    )
    return int(session.scalar(query) or 0)


def batch_summary(session: Session, batch_id: int) -> dict[str, Any]:
    """The batch's counts and amounts by outcome, for `batch show`."""
    batch = get_batch(session, batch_id)
    rows = session.execute(
        text(
            "SELECT status, coalesce(reason, '') AS reason, count(*) AS n, sum(amount) AS amount "
            "FROM payout_lines WHERE batch_id = :batch GROUP BY 1, 2"
        ),
        {"batch": batch_id},
    ).all()
    buckets: dict[str, dict[str, int]] = {
        name: {"count": 0, "amount": 0} for name in ("succeeded", "failed", "pending", "unknown")
    }
    in_flight = {"count": 0, "amount": 0}
    by_reason: dict[str, int] = {}
    for row in rows:
        status = LineStatus(row.status)
        target = buckets.get(status.value, in_flight)
        target["count"] += int(row.n)
        target["amount"] += int(row.amount)
        if status is LineStatus.FAILED:
            reason = row.reason or "unspecified"
            by_reason[reason] = by_reason.get(reason, 0) + int(row.n)
    failed: dict[str, Any] = dict(buckets["failed"])
    failed["by_reason"] = dict(sorted(by_reason.items()))
    maker = get_agent_name(session, batch.maker_id)
    approver = get_agent_name(session, batch.approver_id)
    cancel = _stored(session, batch, BatchStep.CANCEL)
    signed = signed_manifest(session, batch)
    return {
        "batch": batch.id,
        "programme": batch.programme,
        "scope": batch.scope,
        "status": batch.status,
        "lines": batch.lines,
        "total": batch.total,
        "manifest": batch.manifest,
        "maker": maker,
        # the maker signed the manifest as it is now (not an earlier one)
        "submitted": signed == batch.manifest,
        "approver": approver,
        "cancelled_by": cancel.agent if cancel is not None else None,
        "succeeded": buckets["succeeded"],
        "failed": failed,
        "pending": buckets["pending"],
        "unknown": buckets["unknown"],
        "in_flight": in_flight,
        "preflight": preflight_summary(session, batch.id),
    }


def preflight_summary(session: Session, batch_id: int) -> dict[str, int]:
    """The batch's lines by pre-flight verdict, and how many its maker included."""
    rows = session.execute(
        text(
            "SELECT preflight, count(*) AS n, count(included_by) AS included"
            " FROM payout_lines WHERE batch_id = :b AND preflight IS NOT NULL GROUP BY 1"
        ),
        {"b": batch_id},
    ).all()
    summary = {key.value: 0 for key in SUMMARY_KEYS}
    included = 0
    for row in rows:
        summary[row.preflight] = summary.get(row.preflight, 0) + int(row.n)
        included += int(row.included)
    summary[INCLUDED_BY_MAKER] = included
    return summary



def get_agent_name(session: Session, agent_id: int | None) -> str | None:
    """An agent's name from its id (None for None)."""
    if agent_id is None:
        return None
    agent = session.get(Agent, agent_id)
    return agent.name if agent is not None else None
