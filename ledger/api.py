"""The ledger's service API, used by every other package: accounts, transfers (one or a
million in one round-trip), two-phase holds, expiry, balances, statements and the
invariant check. Functions take a Session (the caller's transaction) or a sessionmaker.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg.errors
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core import clock
from core.bounds import MAX_AMOUNT, MAX_COUNTER, check_amount
from core.db import is_retryable
from core.errors import LedgerError, NotFoundError, ValidationError
from core.logging import get_logger
from ledger.types import (
    MAX_CALLER_ID,
    Account,
    AccountKind,
    AccountSpec,
    Balance,
    Limit,
    Result,
    StatementLine,
    Transfer,
    TransferKind,
    TransferOutcome,
    VerifyReport,
    check_account_code,
    check_transfer_id,
    derived_id,
)

log = get_logger(__name__)

_SUBMIT = text(
    "SELECT item, outcome FROM ledger_submit("
    "CAST(:ids AS text[]), CAST(:debits AS text[]), CAST(:credits AS text[]),"
    " CAST(:amounts AS bigint[]), CAST(:kinds AS text[]), CAST(:pending_ids AS text[]),"
    " CAST(:timeouts AS integer[]), CAST(:codes AS integer[]), CAST(:linked AS boolean[]))"
)

# Unique indexes a concurrent writer of the same id or the same resolution can hit; a
# fresh attempt then sees the other's row and answers `exists` or `already_posted`.
_RACE_CONSTRAINTS = ("pk_ledger_transfers", "ix_ledger_transfers_pending_id")


# --- accounts ---------------------------------------------------------------------------


def create_accounts(session: Session, specs: Iterable[AccountSpec]) -> list[tuple[Account, bool]]:
    """Create the accounts that do not exist yet, in one statement; (account, created?) each.

    An existing account with another kind or limit is refused: codes are permanent.
    """
    specs = list(specs)
    if not specs:
        return []
    codes = [s.code for s in specs]
    if len(set(codes)) != len(codes):
        raise ValidationError("an account code appears twice in one request")
    created = set(
        session.execute(
            text(
                "INSERT INTO ledger_accounts (code, kind, limit_on) "
                "SELECT * FROM unnest(CAST(:codes AS text[]), CAST(:kinds AS text[]),"
                " CAST(:limits AS text[])) ON CONFLICT (code) DO NOTHING RETURNING code"
            ),
            {
                "codes": codes,
                "kinds": [s.kind.value for s in specs],
                "limits": [s.limit.value if s.limit else None for s in specs],
            },
        ).scalars()
    )
    accounts = get_accounts(session, codes)
    out: list[tuple[Account, bool]] = []
    for spec in specs:
        account = accounts[spec.code]
        if account.kind is not spec.kind or account.limit != spec.limit:
            raise LedgerError(
                f"account {spec.code} already exists as {account.kind}"
                f" with limit {account.limit or 'none'}"
            )
        out.append((account, spec.code in created))
    return out


def create_account(
    session: Session, code: str, kind: AccountKind | str, limit: Limit | str | None = None
) -> tuple[Account, bool]:
    """Create one account idempotently; (account, created?)."""
    spec = AccountSpec(code, AccountKind(kind), Limit(limit) if limit else None)
    return create_accounts(session, [spec])[0]


def get_accounts(session: Session, codes: Sequence[str]) -> dict[str, Account]:
    """The named accounts that exist, by code."""
    rows = session.execute(
        text(
            "SELECT id, code, kind, limit_on, debits_pending, debits_posted, credits_pending,"
            " credits_posted FROM ledger_accounts WHERE code = ANY(CAST(:codes AS text[]))"
        ),
        {"codes": list(codes)},
    )
    return {
        r.code: Account(
            r.id, r.code, AccountKind(r.kind), Limit(r.limit_on) if r.limit_on else None,
            r.debits_pending, r.debits_posted, r.credits_pending, r.credits_posted,
        )
        for r in rows
    }


def get_account(session: Session, code: str) -> Account:
    """One account; NotFoundError if it does not exist."""
    account = get_accounts(session, [code]).get(code)
    if account is None:
        raise NotFoundError(f"no ledger account {code}")
    return account


def balance(session: Session, code: str) -> Balance:
    """The four counters of one account."""
    return _balance(get_account(session, code))


def balances(session: Session, codes: Sequence[str]) -> dict[str, Balance]:
    """The counters of several accounts at once (missing codes are left out)."""
    return {code: _balance(a) for code, a in get_accounts(session, codes).items()}


def _balance(a: Account) -> Balance:
    return Balance(a.code, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)


# --- transfers --------------------------------------------------------------------------


def create_transfers(
    session: Session | Connection, transfers: Sequence[Transfer]
) -> list[TransferOutcome]:
    """Submit a batch in the caller's transaction: one round-trip, whatever its size.

    Independent transfers are judged one by one in order (a refused one does not stop the
    rest); a `linked` chain applies entirely or not at all. Outcomes follow input order.
    Concurrent writers of the same id can raise IntegrityError here: use `submit`, which
    retries, unless the caller retries its own transaction.
    """
    if not transfers:
        return []
    ids = [t.id for t in transfers]
    if len(set(ids)) != len(ids):
        raise ValidationError("a transfer id appears twice in one batch")
    first = transfers[0]
    if first.kind in (TransferKind.SINGLE, TransferKind.PENDING) and all(
        t.kind is first.kind
        and t.debit == first.debit
        and t.credit == first.credit
        and t.pending_id is None
        and not t.linked
        and t.timeout == first.timeout
        and t.code == first.code
        for t in transfers
    ):
        # plain transfers between two accounts (a single transfer, above all): one INSERT
        return _moved(session, ids, {
            "ids": _column(ids, None),
            "debit": first.debit,
            "credit": first.credit,
            "amounts": _column([t.amount for t in transfers], None),
            "kind": first.kind.value,
            "timeout": first.timeout,
            "code": first.code,
        })
    resolved = [t.pending_id for t in transfers if t.pending_id is not None]
    if len(set(resolved)) != len(resolved):
        raise ValidationError("a pending transfer is posted or voided twice in one batch")
    return _outcomes(
        session,
        ids,
        {
            "ids": _column(ids, None),
            "debits": _column([t.debit for t in transfers], None),
            "credits": _column([t.credit for t in transfers], None),
            "amounts": _column([t.amount for t in transfers], None),
            "kinds": _column([t.kind.value for t in transfers], None),
            # columns left at their defaults travel as NULL, not as a million zeros
            "pending_ids": _column([t.pending_id for t in transfers], None),
            "timeouts": _column([t.timeout for t in transfers], 0),
            "codes": _column([t.code for t in transfers], 0),
            "linked": _column([t.linked for t in transfers], False),
        },
    )


def _column(values: list[Any], default: Any) -> str | None:
    """A column as one PostgreSQL array literal, or None when every value is the default.

    One string per column is parsed by the server in C; a list of a million Python
    objects costs the client seconds to adapt one by one.
    """
    if all(v == default for v in values):
        return None
    return "{" + ",".join(_element(v) for v in values) + "}"


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def reserve(
    session: Session,
    ids: Sequence[str],
    debit: str,
    credit: str,
    amounts: Sequence[int],
    *,
    timeout: int = 0,
    code: int = 0,
) -> list[TransferOutcome]:
    """Reserve many pending transfers between two accounts (a payout batch against a
    float) in one set-based step, without building a Transfer per line.

    The answers are `create_transfers`' for the same pending transfers. `ledger_reserve`
    inserts the whole batch in one statement and hands anything unusual (an existing id,
    a breached limit, a missing account) to `ledger_submit`, which judges item by item.
    """
    id_literal = _reserve_ids(ids)
    amount_literal = _reserve_amounts(amounts)
    check_account_code(debit)
    check_account_code(credit)
    if not ids:
        return []
    results = [Result.CREATED] * len(ids)
    rows = _run(
        session,
        _RESERVE,
        {
            "ids": id_literal,
            "debit": debit,
            "credit": credit,
            "amounts": amount_literal,
            "timeout": timeout,
            "code": code,
        },
        ids,
    )
    for item, outcome in rows:
        results[item - 1] = Result(outcome)
    return [TransferOutcome(i, r) for i, r in zip(ids, results, strict=True)]


_RESERVE = text(
    "SELECT item, outcome FROM ledger_reserve(CAST(:ids AS text[]), CAST(:debit AS text),"
    " CAST(:credit AS text), CAST(:amounts AS bigint[]), CAST(:timeout AS integer),"
    " CAST(:code AS integer))"
)
# Valid caller ids joined by commas, which no id may contain: one match checks them all.
_ID = rf"[A-Za-z0-9][A-Za-z0-9_.:/@-]{{0,{MAX_CALLER_ID - 1}}}"
_JOINED_IDS = re.compile(rf"{_ID}(?:,{_ID})*")


def _reserve_ids(ids: Sequence[str]) -> str:
    """`_check_columns`' checks of the ids, and their array literal, at a million ids a
    fraction of a second: one regular-expression match over the joined ids."""
    joined = ",".join(ids) if all(type(i) is str for i in ids) else None
    if joined is None or joined.count(",") != len(ids) - 1 or not _JOINED_IDS.fullmatch(joined):
        for transfer_id in ids:
            check_transfer_id(transfer_id)  # the first bad id, in a friendly sentence
    if len(set(ids)) != len(ids):
        raise ValidationError("a transfer id appears twice in one batch")
    # valid ids hold no quote or backslash, and quoted they cannot read as NULL
    return '{"' + '","'.join(ids) + '"}' if ids else "{}"


def _reserve_amounts(amounts: Sequence[int]) -> str:
    """`_check_columns`' check of the amounts, and their array literal."""
    if not all(type(a) is int for a in amounts):
        if any(isinstance(a, bool) or not isinstance(a, int) for a in amounts):
            raise ValidationError("every amount must be a positive integer")
        amounts = [int(a) for a in amounts]
    if amounts and (min(amounts) <= 0 or max(amounts) > MAX_AMOUNT):
        _check_amounts(amounts)
    return "{" + ",".join(map(str, amounts)) + "}"


def _check_amounts(amounts: Iterable[int]) -> None:
    """The first amount out of bounds, in a sentence naming its place in the batch."""
    for item, amount in enumerate(amounts, start=1):
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValidationError("every amount must be a positive integer")
        check_amount(amount, f"amount {item} of the batch")


def settle(
    session: Session,
    pending_ids: Sequence[str],
    *,
    void: bool = False,
    amounts: Sequence[int | None] | None = None,
) -> list[TransferOutcome]:
    """Post (or void) many pending transfers at once, with their derived ids
    (`<pending>:post` / `<pending>:void`) so a repeated call is a replay. `amounts`
    posts part of each (None: in full)."""
    kind = TransferKind.VOID if void else TransferKind.POST
    ids = [derived_id(p, kind) for p in pending_ids]
    if void and amounts is not None:
        raise ValidationError("a void takes no amount")
    _check_columns(ids, [a for a in (amounts or []) if a is not None])
    if len(set(pending_ids)) != len(pending_ids):
        raise ValidationError("a pending transfer appears twice in one batch")
    n = len(ids)
    return _outcomes(session, ids, {
        "ids": _column(ids, None),
        "debits": None,
        "credits": None,
        "amounts": _column(list(amounts), None) if amounts is not None else None,
        "kinds": _column([kind.value] * n, None),
        "pending_ids": _column(list(pending_ids), None),
        "timeouts": None,
        "codes": None,
        "linked": None,
    })


def _check_columns(ids: Sequence[str], amounts: Sequence[int]) -> None:
    for transfer_id in ids:
        check_transfer_id(transfer_id)
    if len(set(ids)) != len(ids):
        raise ValidationError("a transfer id appears twice in one batch")
    _check_amounts(amounts)


_MOVE = text(
    "SELECT item, outcome FROM ledger_move(CAST(:ids AS text[]), CAST(:debit AS text),"
    " CAST(:credit AS text), CAST(:amounts AS bigint[]), CAST(:kind AS text),"
    " CAST(:timeout AS integer), CAST(:code AS integer))"
)


def _moved(
    session: Session | Connection, ids: Sequence[str], params: dict[str, Any]
) -> list[TransferOutcome]:
    results = [Result.CREATED] * len(ids)
    for item, outcome in _run(session, _MOVE, params, ids):
        results[item - 1] = Result(outcome)
    return [TransferOutcome(i, r) for i, r in zip(ids, results, strict=True)]


# The CHECK of migrations/sql/bounds_001_checks.sql that transfers Python let through can
# still meet: amounts are checked here first, but counters are known only to the database.
_COUNTERS_BOUND = "ck_ledger_accounts_counters_bounded"


def _run(
    session: Session | Connection, statement: Any, params: dict[str, Any], ids: Sequence[str]
) -> list[Any]:
    """Execute a ledger function; a counter bound it breaks becomes one LedgerError.

    The database refuses the whole statement then (nothing of it remains), as it does when
    a single statement's sums overflow BIGINT before the CHECKs even see them.
    """
    try:
        return list(session.execute(statement, params))
    except IntegrityError as exc:
        orig = exc.orig
        if not (
            isinstance(orig, psycopg.errors.CheckViolation)
            and orig.diag.constraint_name == _COUNTERS_BOUND
        ):
            raise
    except DBAPIError as exc:
        if not isinstance(exc.orig, psycopg.errors.NumericValueOutOfRange):
            raise
    what = f"transfer {ids[0]}" if len(ids) == 1 else f"the batch of {len(ids)} transfers"
    raise LedgerError(
        f"the ledger refused {what}: it would take an account's counters past"
        f" {MAX_COUNTER:,} francs, the most an account holds"
    ) from None


def _outcomes(
    session: Session | Connection, ids: Sequence[str], params: dict[str, str | None]
) -> list[TransferOutcome]:
    if not ids:
        return []
    results = [Result.CREATED] * len(ids)
    for item, outcome in _run(session, _SUBMIT, params, ids):
        results[item - 1] = Result(outcome)
    return [TransferOutcome(i, r) for i, r in zip(ids, results, strict=True)]


def create_transfer(session: Session, transfer: Transfer) -> TransferOutcome:
    """Submit one transfer in the caller's transaction."""
    return create_transfers(session, [transfer])[0]


def submit(
    factory: sessionmaker[Session], transfers: Sequence[Transfer], *, attempts: int = 8
) -> list[TransferOutcome]:
    """Submit a batch on its own, retrying deadlocks, serialisation failures and races on
    the same id, so none of them reaches the caller.

    `ledger_submit` is one statement, atomic by itself, so it runs in autocommit: the
    accounts' row locks are released the moment the function returns, instead of being
    held across a round trip to the client and back for COMMIT. On a hot account that
    round trip, not the work, is what limits throughput.
    """
    engine = factory.kw["bind"]
    for attempt in range(1, attempts + 1):
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                return create_transfers(conn, transfers)
        except IntegrityError as exc:
            if attempt == attempts or not _is_id_race(exc):
                raise
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            time.sleep(min(0.002 * 2**attempt, 0.2))
    raise AssertionError("unreachable")


def _is_id_race(exc: IntegrityError) -> bool:
    orig = exc.orig
    return isinstance(orig, psycopg.errors.UniqueViolation) and (
        orig.diag.constraint_name in _RACE_CONSTRAINTS
    )


def transfer(factory: sessionmaker[Session], transfer: Transfer) -> TransferOutcome:
    """Submit one transfer in its own transaction (retried as `submit` does)."""
    return submit(factory, [transfer])[0]


def post_pending(
    factory: sessionmaker[Session],
    pending_id: str,
    *,
    amount: int | None = None,
    id: str | None = None,
) -> TransferOutcome:
    """Post a pending transfer (fully, or `amount` of it); its own transaction."""
    return transfer(factory, Transfer.post(pending_id, amount=amount, id=id))


def void_pending(
    factory: sessionmaker[Session], pending_id: str, *, id: str | None = None
) -> TransferOutcome:
    """Void a pending transfer; its own transaction."""
    return transfer(factory, Transfer.void(pending_id, id=id))


def expire_pending(session: Session, pending_ids: Sequence[str] | None = None) -> int:
    """Release every timed-out pending transfer (or only those named) with an `expire`
    row; returns how many. The database clock decides: a caller cannot expire early."""
    return int(
        session.execute(
            text("SELECT ledger_expire(CAST(:ids AS text[]))"),
            {"ids": list(pending_ids) if pending_ids is not None else None},
        ).scalar_one()
    )


def get_transfer(session: Session, transfer_id: str) -> dict[str, object] | None:
    """One transfer row as a mapping (account codes resolved), or None."""
    row = session.execute(
        text(
            "SELECT t.id, t.kind, d.code AS debit, c.code AS credit, t.amount, t.pending_id,"
            " t.timeout, t.expires_at, t.code, t.created_at FROM ledger_transfers t"
            " JOIN ledger_accounts d ON d.id = t.debit_account_id"
            " JOIN ledger_accounts c ON c.id = t.credit_account_id WHERE t.id = :id"
        ),
        {"id": transfer_id},
    ).mappings().first()
    return dict(row) if row else None


# --- reading ----------------------------------------------------------------------------


def statement(
    session: Session, code: str, start: dt.date | None = None, end: dt.date | None = None
) -> list[StatementLine]:
    """Every transfer touching `code` between `start` and `end` inclusive (UTC = Lomé).

    Days and times are on Sika's clock (core.clock); `created_at` is the database's."""
    account = get_account(session, code)
    rows = session.execute(
        text(
            "SELECT t.created_at, t.id, t.kind,"
            " CASE WHEN t.debit_account_id = :aid THEN 'debit' ELSE 'credit' END AS side,"
            " o.code AS counterpart, t.amount, t.pending_id"
            " FROM ledger_transfers t JOIN ledger_accounts o ON o.id ="
            "  CASE WHEN t.debit_account_id = :aid THEN t.credit_account_id"
            "  ELSE t.debit_account_id END"
            " WHERE (t.debit_account_id = :aid OR t.credit_account_id = :aid)"
            " AND (CAST(:start AS date) IS NULL OR t.created_at >="
            "  (CAST(:start AS date) AT TIME ZONE 'UTC') - :shift)"
            " AND (CAST(:end AS date) IS NULL OR t.created_at <"
            "  ((CAST(:end AS date) + 1) AT TIME ZONE 'UTC') - :shift)"
            " ORDER BY t.created_at, t.id"
        ),
        {"aid": account.id, "start": start, "end": end, "shift": clock.offset()},
    )
    return [
        StatementLine(clock.sika_time(r.created_at), r.id, TransferKind(r.kind), r.side,
                      r.counterpart, r.amount, r.pending_id)
        for r in rows
    ]


def verify_ledger(session: Session) -> VerifyReport:
    """Recompute every account's counters from the transfers and compare; check that
    total debits equal total credits. Problems are returned, not raised."""
    problems: list[str] = []
    mismatches = session.execute(
        text(
            """
            WITH e AS (
                SELECT t.debit_account_id AS account_id,
                       CASE t.kind WHEN 'pending' THEN t.amount WHEN 'single' THEN 0
                                   ELSE -p.amount END AS dp,
                       CASE WHEN t.kind IN ('single', 'post') THEN t.amount ELSE 0 END AS dpo,
                       0::bigint AS cp, 0::bigint AS cpo
                FROM ledger_transfers t LEFT JOIN ledger_transfers p ON p.id = t.pending_id
                UNION ALL
                SELECT t.credit_account_id, 0, 0,
                       CASE t.kind WHEN 'pending' THEN t.amount WHEN 'single' THEN 0
                                   ELSE -p.amount END,
                       CASE WHEN t.kind IN ('single', 'post') THEN t.amount ELSE 0 END
                FROM ledger_transfers t LEFT JOIN ledger_transfers p ON p.id = t.pending_id
            ), s AS (
                SELECT account_id, sum(dp) AS dp, sum(dpo) AS dpo, sum(cp) AS cp,
                       sum(cpo) AS cpo
                FROM e GROUP BY account_id
            )
            SELECT a.code, a.debits_pending, a.debits_posted, a.credits_pending,
                   a.credits_posted, coalesce(s.dp, 0) AS dp, coalesce(s.dpo, 0) AS dpo,
                   coalesce(s.cp, 0) AS cp, coalesce(s.cpo, 0) AS cpo
            FROM ledger_accounts a LEFT JOIN s ON s.account_id = a.id
            WHERE (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
                  IS DISTINCT FROM (coalesce(s.dp, 0), coalesce(s.dpo, 0), coalesce(s.cp, 0),
                                    coalesce(s.cpo, 0))
            ORDER BY a.code
            """
        )
    ).all()
    for m in mismatches:
        problems.append(
            f"account {m.code}: counters (debits {m.debits_pending} pending,"
            f" {m.debits_posted} posted; credits {m.credits_pending} pending,"
            f" {m.credits_posted} posted) but transfers give (debits {m.dp} pending,"
            f" {m.dpo} posted; credits {m.cp} pending, {m.cpo} posted)"
        )
    totals = session.execute(
        text(
            "SELECT count(*) AS accounts, coalesce(sum(debits_posted), 0) AS dpo,"
            " coalesce(sum(credits_posted), 0) AS cpo, coalesce(sum(debits_pending), 0) AS dp,"
            " coalesce(sum(credits_pending), 0) AS cp FROM ledger_accounts"
        )
    ).one()
    if totals.dpo != totals.cpo:
        problems.append(f"total debits posted {totals.dpo} ≠ total credits posted {totals.cpo}")
    if totals.dp != totals.cp:
        problems.append(f"total debits pending {totals.dp} ≠ total credits pending {totals.cp}")
    orphans = session.execute(
        text(
            "SELECT count(*) FROM ledger_transfers t WHERE t.pending_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM ledger_transfers p WHERE p.id = t.pending_id"
            " AND p.kind = 'pending')"
        )
    ).scalar_one()
    if orphans:
        problems.append(f"{orphans} post/void/expire rows name no pending transfer")
    count = session.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one()
    report = VerifyReport(int(totals.accounts), int(count), tuple(problems))
    if not report.ok:
        log.warning("ledger.verify_failed", problems=len(problems))
    return report
