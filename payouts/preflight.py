"""Pre-flight account checks: before a batch is signed, each line's wallet is looked up at
its operator (Flooz `getMobileAccountStatus`, T-Money `client/{numero}`) and given a
verdict (`Verdict`).

Lines whose verdict would fail at the operator (not registered, inactive, locked, at the
balance cap) are written with the batch but kept out of its manifest, final; their payees
stay free for a later batch. A wallet in someone else's name (`name_mismatch`) is held out
until the maker includes the line with a reason. A number the other operator holds is
`ported`: paid there, and the programme's registry told. A look-up that gets no answer
is retried, then shown as `unreachable`; it never keeps a line out by itself.

Look-ups are slow network calls, so they run outside any batch's transaction, a bounded
number at a time per operator. Each answer is committed to `preflight_lookups` as it
comes (its own short transaction): a number looked up within SIKA_PREFLIGHT_CACHE_HOURS is
not asked again, which is also what lets an interrupted pre-flight continue where it
stopped. Holder names are personal data: stored encrypted, only the score in clear.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from core import clock
from core.audit import record as audit_record
from core.authority import SignedRequest, authorize
from core.crypto import PiiKeys
from core.errors import AuthorizationError, NotFoundError, ValidationError
from core.logging import get_logger
from core.models import Agent, Role
from core.settings import Settings
from payouts.batches import (
    INCLUDED_BY_MAKER,
    SUMMARY_KEYS,
    LineVerdict,
    batch_arguments,
    batch_command,
    get_batch,
    keep_request,
    preflight_summary,
    refresh_manifest,
)
from payouts.models import (
    EXCLUDING,
    LINE_MSISDN,
    LOOKUP_HOLDER,
    LOOKUP_MSISDN,
    BatchStatus,
    BatchStep,
    LineStatus,
    PayoutBatch,
    PayoutLine,
    PreflightLookup,
    Verdict,
)
from payouts.names import name_score
from providers.base import AccountStatus, KycResult, Outcome, ProviderAdapter, Reason
from providers.msisdn import Operator, mask
from providers.registry import load_adapter

__all__ = [
    "EXCLUDING",
    "INCLUDED_BY_MAKER",
    "SUMMARY_KEYS",
    "Finding",
    "PayeeRegistry",
    "Preflight",
    "PreflightProgress",
    "Subject",
    "Verdict",
    "include_line",
    "preflight_summary",
    "rerun_preflight",
    "verdict_of",
    "verdicts_of",
]

log = get_logger(__name__)

# a look-up with no usable answer is asked again after each of these pauses (seconds)
RETRY_DELAYS = (0.5, 1.5)

_BY_STATUS = {
    AccountStatus.INACTIVE: Verdict.INACTIVE,
    AccountStatus.LOCKED: Verdict.LOCKED,
    AccountStatus.AT_BALANCE_CAP: Verdict.AT_BALANCE_CAP,
    AccountStatus.NOT_REGISTERED: Verdict.NOT_REGISTERED,
}
# a look-up the operator refused outright, by Sika's reason
_BY_REASON = {
    Reason.NOT_REGISTERED: Verdict.NOT_REGISTERED,
    Reason.INVALID_NUMBER: Verdict.NOT_REGISTERED,
    Reason.ACCOUNT_INACTIVE: Verdict.INACTIVE,
    Reason.ACCOUNT_LOCKED: Verdict.LOCKED,
    Reason.BALANCE_CAP: Verdict.AT_BALANCE_CAP,
}


def account_status(kyc: KycResult) -> AccountStatus:
    """The wallet's state as the look-up tells it; `unknown` when it told nothing usable."""
    if kyc.outcome is Outcome.SUCCEEDED:
        return kyc.status
    if kyc.outcome is Outcome.FAILED and kyc.reason in _BY_REASON:
        verdict = _BY_REASON[kyc.reason]
        return next(s for s, v in _BY_STATUS.items() if v is verdict)
    return AccountStatus.UNKNOWN


def judge(
    status: AccountStatus, holder: str | None, registered_name: str | None, threshold: int
) -> tuple[Verdict, int | None]:
    """(verdict, score) of a wallet in `status` held by `holder`, for a payee registered as
    `registered_name` (None: the status alone is checked, as for a company's wallet)."""
    if status is AccountStatus.UNKNOWN:
        return Verdict.UNREACHABLE, None
    if status is not AccountStatus.ACTIVE:
        return _BY_STATUS[status], None
    if registered_name is None:
        return Verdict.OK, None
    # an active wallet whose holder the operator does not name cannot be said to be the
    # payee's: the maker decides, as for any other mismatch
    score = name_score(registered_name, holder) if holder else 0
    return (Verdict.OK if score >= threshold else Verdict.NAME_MISMATCH), score


def verdict_of(
    kyc: KycResult, registered_name: str | None, threshold: int
) -> tuple[Verdict, int | None]:
    """The verdict of one look-up answer at the line's own operator, and the name score
    (None when no name was compared). `ported` needs a second look-up: see `Preflight`."""
    return judge(account_status(kyc), kyc.name, registered_name, threshold)


@dataclass(frozen=True)
class Subject:
    """One wallet to check: the number, the operator the line would pay it at, and the
    payee's registered name (None: status only)."""

    msisdn: str
    operator: str
    name: str | None = None


@dataclass(frozen=True)
class Finding:
    """The verdict on one subject; `operator` is where to pay it (the other operator for
    `ported`); `looked_up` counts the operator answers asked for it (0: all from cache)."""

    verdict: Verdict
    score: int | None
    operator: str
    looked_up: int = 0


@dataclass
class PreflightProgress:
    """Where a pre-flight stands, for a progress bar."""

    total: int
    done: int = 0
    looked_up: int = 0
    cached: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Answer:
    """An operator's answer about one number, fresh or from the cache."""

    status: AccountStatus
    holder: str | None
    fresh: bool


def other_operator(operator: str) -> str | None:
    """The operator a number ported away from `operator` would be at, if any."""
    others = [op.value for op in Operator if op.value != operator]
    return others[0] if len(others) == 1 else None


class Preflight:
    """Looks up a list of wallets, a bounded number at a time per operator, each answer
    committed to `preflight_lookups` as it comes and reused within the cache period."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        keys: PiiKeys,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.keys = keys
        self.retry_delays = tuple(retry_delays)
        self.threshold = settings.preflight_name_threshold
        self._lock = threading.Lock()
        self._adapters: dict[str, ProviderAdapter] = {}
        self._bounds: dict[str, threading.BoundedSemaphore] = {}
        self._cache: dict[tuple[str, bytes], _Answer] = {}

    # -- adapters -----------------------------------------------------------------------

    def _adapter(self, operator: str) -> ProviderAdapter:
        with self._lock:
            if operator not in self._adapters:
                self._adapters[operator] = load_adapter(
                    operator, self.settings, read_timeout=self.settings.operator_timeout
                )
                self._bounds[operator] = threading.BoundedSemaphore(
                    self.settings.preflight_concurrency
                )
            return self._adapters[operator]

    def close(self) -> None:
        """Release the adapters' connections."""
        with self._lock:
            for adapter in self._adapters.values():
                adapter.close()
            self._adapters.clear()

    def __enter__(self) -> Preflight:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the cache ----------------------------------------------------------------------

    def _bidx(self, msisdn: str) -> bytes:
        return self.keys.blind_index.digest(msisdn, LOOKUP_MSISDN)

    def _load_cache(self, subjects: Sequence[Subject]) -> None:
        """Every answer younger than the cache period about these numbers, at any operator,
        in a few queries (the newest per operator and number)."""
        hours = self.settings.preflight_cache_hours
        if hours <= 0:
            return
        since = clock.now() - timedelta(hours=hours)
        digests = sorted({self._bidx(s.msisdn) for s in subjects})
        with self.factory() as session:
            for start in range(0, len(digests), 5000):
                rows = session.execute(
                    text(
                        "SELECT DISTINCT ON (operator, msisdn_bidx) operator, msisdn_bidx,"
                        " status, holder_enc FROM preflight_lookups"
                        " WHERE msisdn_bidx = ANY(:digests) AND looked_up_at > :since"
                        " AND status <> 'unknown'"
                        " ORDER BY operator, msisdn_bidx, looked_up_at DESC, id DESC"
                    ),
                    {"digests": digests[start : start + 5000], "since": since},
                ).all()
                for row in rows:
                    holder = None
                    if row.holder_enc is not None:
                        holder = self.keys.keyring.decrypt(bytes(row.holder_enc), LOOKUP_HOLDER)
                    self._cache[(row.operator, bytes(row.msisdn_bidx))] = _Answer(
                        AccountStatus(row.status), holder, fresh=False
                    )

    # -- one look-up --------------------------------------------------------------------

    def _ask(self, operator: str, subject: Subject) -> _Answer:
        """The operator's answer about the subject's number: from the cache, else asked
        (retried while no usable answer comes) and committed before it is used."""
        digest = self._bidx(subject.msisdn)
        with self._lock:
            cached = self._cache.get((operator, digest))
        if cached is not None:
            return cached
        adapter = self._adapter(operator)
        kyc: KycResult | None = None
        for pause in (0.0, *self.retry_delays):
            if pause:
                time.sleep(pause)
            with self._bounds[operator]:
                kyc = adapter.lookup(subject.msisdn)
            if account_status(kyc) is not AccountStatus.UNKNOWN:
                break
        assert kyc is not None
        status = account_status(kyc)
        holder = kyc.name if status is not AccountStatus.UNKNOWN else None
        verdict, score = judge(status, holder, subject.name, self.threshold)
        self._store(operator, digest, status, verdict, score, holder, kyc.reason)
        answer = _Answer(status, holder, fresh=True)
        if status is not AccountStatus.UNKNOWN:
            with self._lock:
                self._cache[(operator, digest)] = answer
        return answer

    def _store(
        self,
        operator: str,
        digest: bytes,
        status: AccountStatus,
        verdict: Verdict,
        score: int | None,
        holder: str | None,
        reason: Reason | None,
    ) -> None:
        holder_enc = self.keys.keyring.encrypt(holder, LOOKUP_HOLDER) if holder else None
        with self.factory() as session, session.begin():
            session.add(
                PreflightLookup(
                    operator=operator,
                    msisdn_bidx=digest,
                    status=status.value,
                    verdict=verdict.value,
                    score=score,
                    holder_enc=holder_enc,
                    reason=reason.value if reason is not None else None,
                    looked_up_at=clock.now(),
                )
            )

    def check(self, subject: Subject) -> Finding:
        """The verdict on one subject: its operator's answer, and for a number that
        operator does not know, the other operator's."""
        answer = self._ask(subject.operator, subject)
        asked = int(answer.fresh)
        verdict, score = judge(answer.status, answer.holder, subject.name, self.threshold)
        if verdict is Verdict.NOT_REGISTERED:
            other = other_operator(subject.operator)
            if other is not None and other not in self.settings.lookup_unavailable:
                there = self._ask(other, subject)
                asked += int(there.fresh)
                if there.status is AccountStatus.ACTIVE:
                    # paid where the number lives; the name is compared there all the same
                    moved, score = judge(there.status, there.holder, subject.name, self.threshold)
                    if moved is Verdict.OK:
                        return Finding(Verdict.PORTED, score, other, asked)
                    return Finding(moved, score, other, asked)
        return Finding(verdict, score, subject.operator, asked)

    # -- a list -------------------------------------------------------------------------

    def run(
        self,
        subjects: Sequence[Subject],
        on_progress: Callable[[PreflightProgress], Any] | None = None,
    ) -> list[Finding]:
        """The verdict on each subject, in order. `on_progress` is called from this thread
        after each one; if it raises, look-ups not yet started are dropped (those already
        answered are kept, so a re-run continues from there) and the error propagates."""
        self._load_cache(subjects)
        progress = PreflightProgress(total=len(subjects))
        findings: list[Finding | None] = [None] * len(subjects)
        if on_progress is not None:
            on_progress(progress)
        operators = {s.operator for s in subjects}
        others = {o for o in map(other_operator, operators) if o}
        for operator in sorted(operators | (others - set(self.settings.lookup_unavailable))):
            self._adapter(operator)
        # each operator's semaphore bounds its requests; the pool only has to keep them busy
        threads = self.settings.preflight_concurrency * max(len(self._adapters), 1)
        pool = ThreadPoolExecutor(threads, thread_name_prefix="sika-preflight")
        try:
            submitted: dict[Future[Finding], int] = {
                pool.submit(self.check, subject): index for index, subject in enumerate(subjects)
            }
            # as_completed waits on each future once; wait(FIRST_COMPLETED) in a loop walks
            # every pending future per answer, quadratic in a batch of 100,000 lines
            for future in as_completed(submitted):
                finding = future.result()
                findings[submitted[future]] = finding
                progress.done += 1
                progress.looked_up += finding.looked_up
                progress.cached += finding.looked_up == 0
                progress.verdicts[finding.verdict.value] += 1
                if on_progress is not None:
                    on_progress(progress)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        log.info(
            "preflight.done",
            lines=len(subjects),
            looked_up=progress.looked_up,
            cached=progress.cached,
            **{k: v for k, v in sorted(progress.verdicts.items())},
        )
        return [f for f in findings if f is not None]


def verdicts_of(
    factory: sessionmaker[Session],
    subjects: Sequence[Subject],
    keys: PiiKeys,
    settings: Settings,
    *,
    no_preflight: bool = False,
    on_progress: Callable[[PreflightProgress], Any] | None = None,
) -> list[LineVerdict]:
    """Each subject's pre-flight verdict, in order. Subjects at an operator this merchant
    account has no look-up at (SIKA_LOOKUP_UNAVAILABLE) are `skipped`; `no_preflight` is
    accepted only when that is every operator of the batch."""
    if no_preflight:
        check_no_preflight({s.operator for s in subjects}, settings)
    unavailable = set(settings.lookup_unavailable)
    verdicts: list[LineVerdict | None] = [
        LineVerdict(Verdict.SKIPPED, None, s.operator) if s.operator in unavailable else None
        for s in subjects
    ]
    asked = [i for i, v in enumerate(verdicts) if v is None]
    if asked:
        with Preflight(factory, settings, keys) as preflight:
            findings = preflight.run([subjects[i] for i in asked], on_progress)
        for index, finding in zip(asked, findings, strict=True):
            verdicts[index] = LineVerdict(finding.verdict, finding.score, finding.operator)
    return [v for v in verdicts if v is not None]


def check_no_preflight(operators: Iterable[str], settings: Settings) -> None:
    """`--no-preflight` is for operators that offer this merchant account no look-up
    (SIKA_LOOKUP_UNAVAILABLE); refused, naming one, if any operator of the batch offers one."""
    offering = sorted(set(operators) - set(settings.lookup_unavailable))
    if offering:
        raise ValidationError(
            f"--no-preflight: {offering[0]} offers a look-up (SIKA_LOOKUP_UNAVAILABLE does not"
            " name it), so the batch's lines at it are checked before it is signed"
        )


# --- what a programme tells the pre-flight about its payees ------------------------------


class PayeeRegistry(Protocol):
    """A programme's registry as a re-run of the pre-flight needs it."""

    def names(self, session: Session, payees: Sequence[str]) -> Mapping[str, str | None]:
        """Each payee's registered name (None, or absent: status only)."""
        ...

    def reroute(self, session: Session, agent: Agent, payee: str, operator: str) -> None:
        """Record that the payee's number is now paid at `operator` (audited)."""
        ...


# --- re-running on a batch, including a held line, the summary ----------------------------


def _line_state(verdict: Verdict, included: bool) -> str | None:
    """`held_out` for a line with this verdict (None: in the manifest)."""
    if verdict in EXCLUDING:
        return verdict.value
    if verdict is Verdict.NAME_MISMATCH and not included:
        return verdict.value
    return None


@dataclass(frozen=True)
class RerunReport:
    """What a re-run of the pre-flight changed: the batch's new manifest and counts."""

    batch: int
    manifest: str
    lines: int
    total: int
    checked: int
    excluded: int
    summary: dict[str, int]


def _maker_of(
    session: Session,
    request: SignedRequest,
    batch: PayoutBatch,
    step: BatchStep,
    arguments: Mapping[str, Any],
) -> Agent:
    """The batch's maker, once `request` is proven theirs for `step` on `arguments`."""
    maker = authorize(
        session,
        request,
        command=batch_command(batch.programme, step),
        arguments=arguments,
        roles=[Role.MAKER],
    )
    if maker.id != batch.maker_id:
        raise AuthorizationError(
            f"agent {maker.name!r} did not build batch {batch.id}: only its maker changes it"
        )
    return maker


def _unapproved(batch: PayoutBatch, what: str) -> None:
    if batch.status != BatchStatus.CREATED:
        raise ValidationError(
            f"batch {batch.id} is {batch.status}: {what} only a batch not yet approved"
        )


def rerun_preflight(
    factory: sessionmaker[Session],
    request: SignedRequest,
    batch_id: int,
    *,
    settings: Settings,
    keys: PiiKeys,
    payees: PayeeRegistry | None = None,
    programme: str | None = None,
    on_progress: Callable[[PreflightProgress], Any] | None = None,
) -> RerunReport:
    """Run the pre-flight again on the lines of a batch not yet approved, at its maker's
    signed request (`<programme>.batch.preflight`); the manifest changes with the verdicts,
    and the maker signs it again (`submit_batch`).

    The request is checked and recorded first, in its own transaction; the look-ups run
    outside any; the verdicts are written in a last transaction, which refuses if the
    batch was approved or cancelled meanwhile. A line newly found not registered, inactive,
    locked or at its cap is excluded (final); one found ported is excluded too (its operator
    is part of what was signed) and the registry is told, so the payee's next batch goes to
    the right operator; a held name_mismatch line that now matches comes back in.
    """
    with factory() as session, session.begin():
        batch = get_batch(session, batch_id, lock=True)
        if programme is not None and batch.programme != programme:
            raise ValidationError(
                f"batch {batch_id} belongs to {batch.programme}: use"
                f" `sika {batch.programme} batch ...` for it"
            )
        maker = _maker_of(session, request, batch, BatchStep.PREFLIGHT, batch_arguments(batch.id))
        _unapproved(batch, "the pre-flight runs again on")
        rows = session.execute(
            select(PayoutLine.id, PayoutLine.payee, PayoutLine.operator, PayoutLine.msisdn_enc)
            .where(PayoutLine.batch_id == batch.id, PayoutLine.status == LineStatus.CREATED)
            .order_by(PayoutLine.seq)
        ).all()
        names = dict(payees.names(session, [r.payee for r in rows])) if payees else {}
        keep_request(session, batch, BatchStep.PREFLIGHT, maker, request, clock.now())
    subjects = [
        Subject(
            keys.keyring.decrypt(bytes(r.msisdn_enc), LINE_MSISDN), r.operator, names.get(r.payee)
        )
        for r in rows
    ]
    unavailable = set(settings.lookup_unavailable)
    asked = [(r, s) for r, s in zip(rows, subjects, strict=True) if s.operator not in unavailable]
    with Preflight(factory, settings, keys) as preflight:
        findings = preflight.run([s for _, s in asked], on_progress)
    excluded = 0
    with factory() as session, session.begin():
        batch = get_batch(session, batch_id, lock=True)
        _unapproved(batch, "the pre-flight's verdicts are written to")
        maker_row = session.get(Agent, batch.maker_id)
        assert maker_row is not None
        now = clock.now()
        for (row, _), finding in zip(asked, findings, strict=True):
            line = session.get(PayoutLine, row.id, with_for_update=True)
            if line is None or line.status != LineStatus.CREATED:
                continue
            verdict = finding.verdict
            if finding.operator != line.operator:
                # the number lives at the other operator now; the line's operator is part
                # of what was signed, so the line goes out and the registry learns it
                verdict = Verdict.PORTED
                held: str | None = Verdict.PORTED.value
                if payees is not None:
                    payees.reroute(session, maker_row, line.payee, finding.operator)
            else:
                if verdict is Verdict.OK and line.preflight == Verdict.PORTED:
                    verdict = Verdict.PORTED  # ported at creation, paid where it lives
                held = _line_state(verdict, line.included_by is not None)
            line.preflight = verdict.value
            line.preflight_score = finding.score
            if held is None or held == Verdict.NAME_MISMATCH:
                line.held_out = held
                if held is not None:
                    line.included_by = None
                    line.include_reason = None
            else:
                line.held_out = held
                line.included_by = None
                line.include_reason = None
                line.status = LineStatus.FAILED.value
                line.reason = held
                line.retryable = False
                line.resolved_at = now
                excluded += 1
        session.flush()
        manifest, lines, total = refresh_manifest(session, batch)
        summary = preflight_summary(session, batch.id)
    return RerunReport(batch.id, manifest, lines, total, len(asked), excluded, summary)


INCLUDE_REASON_MAX = 500


def include_arguments(batch_id: int, seq: int, reason: str) -> dict[str, Any]:
    """What a `<programme>.batch.include` request signs: the batch, the line's seq and the
    maker's reason."""
    return {"batch_id": batch_id, "line": seq, "reason": reason}


def check_reason(reason: str) -> str:
    """A maker's reason for including a line: words, not blank, not a book."""
    cleaned = " ".join((reason or "").split())
    if not cleaned:
        raise ValidationError("--reason: say why the line is included (it is kept and audited)")
    if len(cleaned) > INCLUDE_REASON_MAX:
        raise ValidationError(f"--reason: at most {INCLUDE_REASON_MAX} characters")
    return cleaned


def include_line(
    session: Session, request: SignedRequest, batch_id: int, seq: int, reason: str
) -> PayoutLine:
    """Put a line held out for a name mismatch back in the manifest, at the batch maker's
    signed request (`<programme>.batch.include` with the line's seq and a reason), before
    approval; who and why are kept on the line and in the audit log. The manifest changes:
    the maker signs it again (`submit_batch`)."""
    cleaned = check_reason(reason)
    batch = get_batch(session, batch_id, lock=True)
    maker = _maker_of(
        session, request, batch, BatchStep.INCLUDE, include_arguments(batch.id, seq, cleaned)
    )
    _unapproved(batch, "lines are included in")
    line = session.scalar(
        select(PayoutLine)
        .where(PayoutLine.batch_id == batch.id, PayoutLine.seq == seq)
        .with_for_update()
    )
    if line is None:
        raise NotFoundError(f"--line: batch {batch.id} has no line {seq}")
    if line.held_out != Verdict.NAME_MISMATCH or line.status != LineStatus.CREATED:
        state = (
            "is in the manifest"
            if line.held_out is None
            else f"was excluded as {line.held_out}, which no one can include"
        )
        raise ValidationError(
            f"--line: line {seq} of batch {batch.id} {state}; only a line held out for a name"
            " mismatch is included"
        )
    line.held_out = None
    line.included_by = maker.id
    line.include_reason = cleaned
    session.flush()
    refresh_manifest(session, batch)
    keep_request(session, batch, BatchStep.INCLUDE, maker, request, clock.now())
    audit_record(
        session,
        maker,
        "payout.line_included",
        {"batch_id": batch.id, "line": seq, "score": line.preflight_score, "reason": cleaned},
    )
    return line


def held_lines(session: Session, batch_id: int, keys: PiiKeys) -> list[dict[str, Any]]:
    """The batch's lines out of its manifest, for the maker: seq, payee, verdict, score,
    operator and phone masked (a held name_mismatch line may still be included)."""
    rows = session.execute(
        select(
            PayoutLine.seq,
            PayoutLine.payee,
            PayoutLine.held_out,
            PayoutLine.preflight_score,
            PayoutLine.operator,
            PayoutLine.amount,
            PayoutLine.status,
            PayoutLine.msisdn_enc,
        )
        .where(PayoutLine.batch_id == batch_id, PayoutLine.held_out.is_not(None))
        .order_by(PayoutLine.seq)
    ).all()
    return [
        {
            "line": r.seq,
            "payee": r.payee,
            "verdict": r.held_out,
            "score": r.preflight_score,
            "operator": r.operator,
            "msisdn": mask(keys.keyring.decrypt(bytes(r.msisdn_enc), LINE_MSISDN)),
            "amount": int(r.amount),
            "includable": r.held_out == Verdict.NAME_MISMATCH and r.status == LineStatus.CREATED,
        }
        for r in rows
    ]
