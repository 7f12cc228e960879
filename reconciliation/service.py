"""One reconciliation run: stream the statement into the database, classify it in SQL,
settle the safe cases with their evidence, compare the floats, keep every break and open
the exceptions.

`reconcile_statement` is the whole run on the statement's bytes, in the caller's
transaction; `reconcile_lines` the same on rows already read. What Python holds grows
with the breaks, never with the statement's lines.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.orm import Session

from core import clock
from core.bounds import MAX_COUNTER
from core.errors import LedgerError, ProviderError, ValidationError
from core.logging import get_logger
from core.models import Agent
from core.settings import Settings
from ledger import api as ledger
from ledger.types import AccountKind, AccountSpec, Result, Transfer
from payouts.dispatch import LineOutcome, record_outcomes
from payouts.models import LineStatus
from providers.base import Outcome, ProviderAdapter
from providers.statements import READERS, StatementRow
from reconciliation import matching
from reconciliation.matching import FeeGrid
from reconciliation.models import Category, ExceptionStatus, Resolution

log = get_logger(__name__)

RUN_LOCK = 0x5EC0  # one run at a time per operator and day (with the key's hash)
_OK = (Result.CREATED, Result.EXISTS)


def float_account(provider: str) -> str:
    """The ledger's view of the government's e-money at `provider`."""
    return f"float:{provider}"


def suspense_account(provider: str) -> str:
    """Money seen at `provider` that the ledger cannot yet place (a reversal, a correction)."""
    return f"suspense:{provider}"


def fees_account(provider: str) -> str:
    """What `provider` charged in fees."""
    return f"fees:{provider}"


@dataclass(frozen=True)
class RunSummary:
    """What one run found; `as_dict` is the `sika reconcile run --json` shape."""

    run_id: int
    provider: str
    day: dt.date
    counts: dict[str, int]
    amounts: dict[str, int]
    float_ledger: int
    float_provider: int | None
    auto_resolved: int
    open_exceptions: int
    report: dict[str, str] = field(default_factory=dict)

    @property
    def float_difference(self) -> int | None:
        """Provider minus ledger; None when the operator's balance was not available."""
        if self.float_provider is None:
            return None
        return self.float_provider - self.float_ledger

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "provider": self.provider,
            "date": self.day.isoformat(),
            "counts": dict(self.counts),
            "amounts": dict(self.amounts),
            "float": {
                "ledger": self.float_ledger,
                "provider": self.float_provider,
                "difference": self.float_difference,
            },
            "auto_resolved": self.auto_resolved,
            "open_exceptions": self.open_exceptions,
            "report": dict(self.report),
        }


# --- the statement ------------------------------------------------------------------------


def statement_rows(provider: str, data: bytes) -> Iterator[StatementRow]:
    """The operator's statement read strictly, a row at a time as it is consumed.

    An unknown provider is refused at once; a malformed line raises `StatementError`
    (naming line and field) only when reading reaches it.
    """
    reader = READERS.get(provider)
    if reader is None:
        raise ValidationError(
            f"no statement format known for provider {provider!r} (known: {', '.join(READERS)})"
        )
    return reader(data)


def fetch_statement(settings: Settings, provider: str, day: dt.date) -> bytes:
    """The day's statement from the operator's statement service (the sandbox's).

    Real operators deliver statements out of band (SFTP, e-mail): pass the file instead.
    """
    if not settings.sandbox_url:
        raise ValidationError(
            "no statement service is configured: pass --statement FILE or set SIKA_SANDBOX_URL"
        )
    url = f"{settings.sandbox_url.rstrip('/')}/_sandbox/statements/{provider}/{day.isoformat()}"
    try:
        response = httpx.get(url, timeout=60)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ProviderError(f"could not fetch the {provider} statement of {day}: {exc}") from exc
    return response.content


def read_statement_file(path: Path) -> bytes:
    """The statement file's bytes; a missing file is the user's mistake."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read the statement file {path}: {exc.strerror}") from exc


def fee_grid(session: Session, provider: str, day: dt.date) -> FeeGrid:
    """The fee rule in force on `day` (no rule: the operator charges nothing)."""
    row = session.execute(
        text(
            "SELECT fee_fixed, fee_bps FROM recon_fee_rules WHERE provider = :p"
            " AND valid_from <= :day ORDER BY valid_from DESC LIMIT 1"
        ),
        {"p": provider, "day": day},
    ).first()
    return FeeGrid(int(row.fee_fixed), int(row.fee_bps)) if row else FeeGrid()


def ledger_float(session: Session, provider: str) -> int:
    """The float as the ledger has it: posted debits minus posted credits (0 if none yet)."""
    found = ledger.balances(session, [float_account(provider)]).get(float_account(provider))
    return found.debits_posted - found.credits_posted if found else 0


def provider_float(adapter: ProviderAdapter | None) -> int | None:
    """The operator's merchant float now, or None when it cannot be asked."""
    if adapter is None:
        return None
    answer = adapter.balance()
    if answer.outcome is not Outcome.SUCCEEDED or answer.balance is None:
        return None
    if not 0 <= answer.balance <= MAX_COUNTER:
        # an operator's answer is input like any other: a float Sika cannot hold is unknown
        log.warning("reconcile.float_out_of_bounds", provider=adapter.name)
        return None
    return answer.balance


# --- the run ------------------------------------------------------------------------------


def reconcile_statement(
    session: Session,
    provider: str,
    day: dt.date,
    data: bytes,
    *,
    source: str,
    adapter: ProviderAdapter | None = None,
    closing_float: int | None = None,
    agent: Agent | None = None,
    cutoff: dt.datetime | None = None,
) -> RunSummary:
    """Reconcile the statement file `data` in the caller's transaction and record the run.

    The statement is read while it is staged: a malformed line raises `StatementError`
    out of here, and the caller's transaction must roll back (a `session.begin()` block
    does) so that a refused statement records nothing.
    """
    return reconcile_lines(
        session,
        provider,
        day,
        statement_rows(provider, data),
        statement_sha256=statement_digest(data),
        source=source,
        adapter=adapter,
        closing_float=closing_float,
        agent=agent,
        cutoff=cutoff,
    )


def reconcile_lines(
    session: Session,
    provider: str,
    day: dt.date,
    lines: Iterable[StatementRow],
    *,
    statement_sha256: str,
    source: str,
    adapter: ProviderAdapter | None = None,
    closing_float: int | None = None,
    agent: Agent | None = None,
    cutoff: dt.datetime | None = None,
) -> RunSummary:
    """Reconcile `provider`'s statement lines in the caller's transaction, record the run.

    `lines` is consumed once, as it is staged, so it may be a reader still validating
    the file.

    `adapter` answers status queries about lines absent from the statement and the
    operator's float (`closing_float`, when given, is used instead of asking). Payouts
    sent before `cutoff` must be on the statement; by default that is ten minutes ago,
    since a payout sent in the last minutes may not be listed yet.
    """
    cutoff = cutoff or clock.now() - matching.CUTOFF_MARGIN
    session.execute(
        text("SELECT pg_advisory_xact_lock(:a, hashtext(:k))"),
        {"a": RUN_LOCK, "k": f"{provider}|{day.isoformat()}"},
    )
    ledger.create_accounts(
        session,
        [
            AccountSpec(fees_account(provider), AccountKind.EXPENSE),
            AccountSpec(suspense_account(provider), AccountKind.ASSET),
        ],
    )
    grid = fee_grid(session, provider, day)
    staged = matching.stage_lines(session, lines)
    matching.classify(session, provider, grid, cutoff - matching.AGED_PENDING_AFTER)
    counts, amounts = matching.category_totals(session)

    evidence: dict[int, dict[str, Any]] = {}
    auto_resolved = _settle_from_statement(session, provider, evidence)
    auto_resolved += _move_reversals(session, provider, evidence)
    _book_fees(session, provider)
    missing = _missing_at_provider(session, provider, day, cutoff, adapter)
    for item in missing:
        counts[Category.MISSING_AT_PROVIDER] += 1
        amounts[Category.MISSING_AT_PROVIDER] += int(item["amount"])
        if item["resolution"] == Resolution.VOIDED:
            auto_resolved += 1

    book = ledger_float(session, provider)
    operator = closing_float if closing_float is not None else provider_float(adapter)

    session.execute(
        text(
            "UPDATE recon_runs SET superseded_at = :now"
            " WHERE provider = :p AND day = :d AND superseded_at IS NULL"
        ),
        {"p": provider, "d": day, "now": clock.now()},
    )
    run_id = session.execute(
        text(
            "INSERT INTO recon_runs (provider, day, source, statement_sha256, statement_lines,"
            " counts, amounts, float_ledger, float_provider, auto_resolved, open_exceptions,"
            " agent_id) VALUES (:p, :d, :source, :sha, :n, CAST(:counts AS jsonb),"
            " CAST(:amounts AS jsonb), :book, :operator, :auto, 0, :agent) RETURNING id"
        ),
        {
            "p": provider,
            "d": day,
            "source": source,
            "sha": statement_sha256,
            "n": staged,
            "counts": _json(counts),
            "amounts": _json(amounts),
            "book": book,
            "operator": operator,
            "auto": auto_resolved,
            "agent": agent.id if agent else None,
        },
    ).scalar_one()
    _record_breaks(session, run_id, provider, day, evidence, missing)
    if operator is not None and operator != book:
        _float_exception(session, run_id, provider, day, book, operator)
    session.execute(
        text(
            "UPDATE recon_exceptions SET status = 'cleared'"
            " WHERE provider = :p AND day = :d AND run_id <> :run"
            " AND status IN ('open', 'awaiting_approval')"
        ),
        {"p": provider, "d": day, "run": run_id},
    )
    open_count = int(
        session.execute(
            text(
                "SELECT count(*) FROM recon_exceptions WHERE provider = :p AND day = :d"
                " AND status IN ('open', 'awaiting_approval')"
            ),
            {"p": provider, "d": day},
        ).scalar_one()
    )
    session.execute(
        text("UPDATE recon_runs SET open_exceptions = :n WHERE id = :id"),
        {"n": open_count, "id": run_id},
    )
    log.info(
        "reconciliation.run",
        provider=provider,
        day=day.isoformat(),
        run_id=run_id,
        lines=staged,
        auto_resolved=auto_resolved,
        open_exceptions=open_count,
    )
    return RunSummary(
        run_id, provider, day, counts, amounts, book, operator, auto_resolved, open_count
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _settle_from_statement(
    session: Session, provider: str, evidence: dict[int, dict[str, Any]]
) -> int:
    """Post the in-flight lines the statement shows succeeded, void those it shows failed."""
    outcomes: list[LineOutcome] = []
    resolved = 0
    for action, status in (("post", LineStatus.SUCCEEDED), ("void", LineStatus.FAILED)):
        for row in matching.auto_candidates(session, action):
            outcomes.append(
                LineOutcome(
                    int(row["payout_line_id"]),
                    status,
                    reason="failed on the operator's statement" if action == "void" else None,
                    operator_reference=str(row["operator_reference"]),
                )
            )
            evidence[int(row["line"])] = {
                "rule": f"statement shows {row['status']}, Sika had it {row['sika_status']}",
                "action": "posted" if action == "post" else "voided",
            }
            # a fee mismatch is settled too, but stays open for its fee
            if row["category"] == Category.STATUS_MISMATCH:
                resolved += 1
    record_outcomes(session, outcomes)
    return resolved


def _move_reversals(session: Session, provider: str, evidence: dict[int, dict[str, Any]]) -> int:
    """A success the operator later reversed: the money is back in the float, unplaced."""
    rows = matching.auto_candidates(session, "suspense")
    transfers = [
        Transfer.single(
            f"recon:reversal:{provider}:{row['operator_reference']}",
            float_account(provider),
            suspense_account(provider),
            int(row["amount"]),
        )
        for row in rows
    ]
    for outcome in ledger.create_transfers(session, transfers):
        if outcome.result not in _OK:
            raise LedgerError(
                f"the ledger refused to move reversal {outcome.id} into suspense:"
                f" {outcome.result.sentence}"
            )
    for row in rows:
        session.execute(
            text("UPDATE payout_lines SET flagged = :why WHERE id = :id AND flagged IS NULL"),
            {
                "id": row["payout_line_id"],
                "why": f"reversed by {provider} ({row['operator_reference']}) after success;"
                f" {row['amount']} FCFA held in {suspense_account(provider)}",
            },
        )
        evidence[int(row["line"])] = {
            "rule": "the operator reversed a payout Sika had as succeeded",
            "action": "suspense",
            "transfer": f"recon:reversal:{provider}:{row['operator_reference']}",
        }
    return len(rows)


def _book_fees(session: Session, provider: str) -> None:
    """Book each successful payout's fee, when it is the expected one, against the float.

    A fee per line of a clean day: submitted a chunk at a time, not held all at once.
    """
    for rows in matching.fees_to_book(session):
        transfers = [
            Transfer.single(
                f"recon:fee:{provider}:{row['operator_reference']}",
                fees_account(provider),
                float_account(provider),
                int(row["fee"]),
            )
            for row in rows
        ]
        for outcome in ledger.create_transfers(session, transfers):
            if outcome.result not in _OK:
                raise LedgerError(
                    f"the ledger refused the fee {outcome.id}: {outcome.result.sentence}"
                )


def _missing_at_provider(
    session: Session,
    provider: str,
    day: dt.date,
    cutoff: dt.datetime,
    adapter: ProviderAdapter | None,
) -> list[dict[str, Any]]:
    """Sika's lines the statement does not list; an in-flight one the operator confirms it
    has never seen (a status query answering `found=False`) is voided."""
    out: list[dict[str, Any]] = []
    voids: list[LineOutcome] = []
    for row in matching.missing_at_provider(session, provider, day, cutoff):
        item: dict[str, Any] = dict(row)
        item["resolution"] = Resolution.OPEN
        item["detail"] = f"Sika has it {row['status']}; the statement does not list it"
        if row["status"] in matching.IN_FLIGHT and adapter is not None:
            answer = adapter.payout_status(str(row["reference"]), row["operator_reference"])
            item["evidence"] = {
                "status_query": {
                    "outcome": answer.outcome.value,
                    "found": answer.found,
                    "reason": answer.reason.value if answer.reason else None,
                    "operator_code": answer.operator_code,
                }
            }
            if answer.outcome is Outcome.FAILED and not answer.found:
                item["resolution"] = Resolution.VOIDED
                item["evidence"]["action"] = "voided"
                voids.append(
                    LineOutcome(int(row["id"]), LineStatus.FAILED, reason="not at the operator")
                )
            else:
                item["detail"] += f"; the operator's status query says {answer.outcome.value}"
        out.append(item)
    record_outcomes(session, voids)
    return out


def _record_breaks(
    session: Session,
    run_id: int,
    provider: str,
    day: dt.date,
    evidence: dict[int, dict[str, Any]],
    missing: list[dict[str, Any]],
) -> None:
    """Open (or refresh) an exception per unresolved break, then keep every break."""
    params = {"run": run_id, "p": provider, "d": day}
    # exceptions first: breaks are immutable, so they are written knowing their exception
    session.execute(
        text(
            """
            INSERT INTO recon_exceptions AS e (provider, day, category, key, run_id,
                payout_line_id, kind, sika_reference, operator_reference, amount, fee,
                detail, status)
            SELECT :p, :d, c.category, c.operator_reference || '#' || c.occurrence, :run,
                   c.payout_line_id, c.kind, c.sika_reference, c.operator_reference,
                   c.at_stake, c.fee,
                   'statement line ' || c.line || ': ' || c.kind || ' ' || c.status
                     || ' of ' || c.amount || ' FCFA (fee ' || c.fee || ')'
                     || coalesce('; Sika: ' || c.sika_status || ' of '
                                 || coalesce(c.ledger_amount || ' FCFA in the ledger',
                                             'nothing in the ledger'), '; not in Sika')
                     -- a line row that disagrees with its ledger entries was edited
                     || CASE WHEN c.line_amount <> c.ledger_amount
                             THEN '; its payout line says ' || c.line_amount || ' FCFA'
                             ELSE '' END
                     || CASE WHEN c.category = 'fee_mismatch'
                             THEN '; expected fee ' || c.expected_fee ELSE '' END,
                   'open'
              FROM recon_classified c
             WHERE c.category <> 'matched'
               AND (c.auto IS NULL OR c.category = 'fee_mismatch')
            ON CONFLICT (provider, day, category, key) DO UPDATE
               SET run_id = EXCLUDED.run_id, amount = EXCLUDED.amount,
                   detail = EXCLUDED.detail,
                   status = CASE WHEN e.status = 'cleared' THEN 'open' ELSE e.status END
            """
        ),
        params,
    )
    session.execute(
        text(
            """
            INSERT INTO recon_breaks (run_id, category, line, kind, payout_line_id,
                sika_reference, operator_reference, statement_status, sika_status,
                statement_amount, ledger_amount, statement_fee, expected_fee, amount,
                resolution, evidence, exception_id)
            SELECT :run, c.category, c.line, c.kind, c.payout_line_id, c.sika_reference,
                   c.operator_reference, c.status, c.sika_status, c.amount, c.ledger_amount,
                   c.fee, c.expected_fee, c.at_stake,
                   CASE WHEN e.status = 'resolved' THEN 'accepted'
                        WHEN c.category = 'fee_mismatch' OR c.auto IS NULL THEN 'open'
                        WHEN c.auto = 'post' THEN 'posted'
                        WHEN c.auto = 'void' THEN 'voided'
                        ELSE 'suspense' END,
                   CAST(ev.evidence AS jsonb), e.id
              FROM recon_classified c
              LEFT JOIN unnest(CAST(:lines AS integer[]), CAST(:evidence AS text[]))
                   AS ev(line, evidence) ON ev.line = c.line
              LEFT JOIN recon_exceptions e
                     ON e.provider = :p AND e.day = :d AND e.category = c.category
                    AND e.key = c.operator_reference || '#' || c.occurrence
             WHERE c.category <> 'matched'
             ORDER BY c.line
            """
        ),
        {
            **params,
            "lines": list(evidence),
            "evidence": [_json(v) for v in evidence.values()],
        },
    )
    for item in missing:
        exception_id = None
        if item["resolution"] == Resolution.OPEN:
            exception_id = session.execute(
                text(
                    "INSERT INTO recon_exceptions AS e (provider, day, category, key, run_id,"
                    " payout_line_id, kind, sika_reference, operator_reference, amount,"
                    " detail, status) VALUES (:p, :d, 'missing_at_provider', :key, :run,"
                    " :line, 'payout', :ref, :opref, :amount, :detail, 'open')"
                    " ON CONFLICT (provider, day, category, key) DO UPDATE"
                    " SET run_id = EXCLUDED.run_id, detail = EXCLUDED.detail,"
                    " status = CASE WHEN e.status = 'cleared' THEN 'open' ELSE e.status END"
                    " RETURNING id, status"
                ),
                {
                    **params,
                    "key": f"line:{item['id']}",
                    "line": item["id"],
                    "ref": item["reference"],
                    "opref": item["operator_reference"],
                    "amount": item["amount"],
                    "detail": item["detail"],
                },
            ).one()
            resolution = (
                Resolution.ACCEPTED
                if exception_id.status == ExceptionStatus.RESOLVED
                else Resolution.OPEN
            )
            exception_id = exception_id.id
        else:
            resolution = Resolution(item["resolution"])
        session.execute(
            text(
                "INSERT INTO recon_breaks (run_id, category, kind, payout_line_id,"
                " sika_reference, operator_reference, sika_status, ledger_amount, amount,"
                " resolution, evidence, exception_id) VALUES (:run, 'missing_at_provider',"
                " 'payout', :line, :ref, :opref, :status, :amount, :amount, :resolution,"
                " CAST(:evidence AS jsonb), :exception)"
            ),
            {
                "run": run_id,
                "line": item["id"],
                "ref": item["reference"],
                "opref": item["operator_reference"],
                "status": item["status"],
                "amount": item["amount"],
                "resolution": resolution.value,
                "evidence": _json(item.get("evidence")) if item.get("evidence") else None,
                "exception": exception_id,
            },
        )


def _float_exception(
    session: Session, run_id: int, provider: str, day: dt.date, book: int, operator: int
) -> None:
    session.execute(
        text(
            "INSERT INTO recon_exceptions AS e (provider, day, category, key, run_id, kind,"
            " amount, detail, status) VALUES (:p, :d, 'float_mismatch', 'float', :run, :kind,"
            " :amount,"
            " :detail, 'open') ON CONFLICT (provider, day, category, key) DO UPDATE"
            " SET run_id = EXCLUDED.run_id, amount = EXCLUDED.amount, kind = EXCLUDED.kind,"
            " detail = EXCLUDED.detail,"
            " status = CASE WHEN e.status = 'cleared' THEN 'open' ELSE e.status END"
        ),
        {
            "p": provider,
            "d": day,
            "run": run_id,
            "amount": abs(operator - book),
            # the direction an auditor's correction takes: out of the float, or into it
            "kind": "payout" if operator < book else "collection",
            "detail": f"the operator's float is {operator} FCFA, the ledger's {book} FCFA"
            f" (difference {operator - book:+d})",
        },
    )


def statement_digest(data: bytes) -> str:
    """SHA-256 of the statement file, kept with the run."""
    return hashlib.sha256(data).hexdigest()
