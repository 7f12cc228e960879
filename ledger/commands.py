"""`sika ledger` and `sika audit`: the ledger from the command line.

Each command parses its arguments, calls one service function and prints the answer:
data on stdout (JSON with --json), a refusal as one sentence on stderr and exit 1.
"""

from __future__ import annotations

import datetime as dt
from typing import NoReturn

import typer

from core import console
from core.db import get_sessionmaker, run_in_transaction, unit_of_work
from core.errors import ValidationError
from core.settings import load_settings
from ledger import api, seals
from ledger.types import AccountKind, Limit, Transfer, TransferOutcome

app = typer.Typer(help="Accounts, transfers, two-phase holds and balances.", no_args_is_help=True)
audit_app = typer.Typer(
    help="Tamper evidence: daily seals and their verification.", no_args_is_help=True
)
account_app = typer.Typer(help="Ledger accounts.", no_args_is_help=True)
app.add_typer(account_app, name="account")

JSON = typer.Option(False, "--json", help="Print JSON.")


def _fail(message: str, code: int = 1) -> NoReturn:
    console.err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(f"{option} must be a date as YYYY-MM-DD, not {value!r}") from exc


@account_app.command("create")
def account_create(
    code: str = typer.Argument(..., help="Account code, e.g. float:flooz."),
    kind: AccountKind = typer.Option(..., "--kind", help="Where it sits in the chart."),
    limit: Limit | None = typer.Option(
        None, "--limit", help="debits: debits may not exceed credits; credits: the reverse."
    ),
    as_json: bool = JSON,
) -> None:
    """Create an account (answers `exists` if it already exists as asked)."""
    account, created = run_in_transaction(
        get_sessionmaker(), lambda s: api.create_account(s, code, kind, limit)
    )
    data = {
        "account": account.code,
        "kind": account.kind.value,
        "limit": account.limit.value if account.limit else None,
        "result": "created" if created else "exists",
    }
    if as_json:
        console.print_json(data)
    else:
        console.out.print(
            f"{data['result']}: account {account.code} ({account.kind}, limit on"
            f" {data['limit'] or 'nothing'})",
            markup=False,
        )


def _answer(outcome: TransferOutcome, as_json: bool, what: str) -> None:
    if as_json:
        console.print_json(outcome.as_dict())
    elif outcome.ok:
        console.out.print(f"{outcome.result}: {what} {outcome.id}", markup=False)
    if not outcome.ok:
        _fail(f"{what} {outcome.id} refused ({outcome.result}): {outcome.result.sentence}.")


@app.command("transfer")
def transfer_command(
    id: str = typer.Option(..., "--id", help="Your idempotency key, e.g. payout:123:reserve."),
    debit: str = typer.Option(..., "--debit", help="Account debited."),
    credit: str = typer.Option(..., "--credit", help="Account credited."),
    amount: int = typer.Option(..., "--amount", help="Francs (XOF), a positive integer."),
    pending: bool = typer.Option(False, "--pending", help="Reserve only: post or void later."),
    timeout: int = typer.Option(
        0, "--timeout", help="With --pending: seconds after which the hold expires."
    ),
    code: int = typer.Option(0, "--code", help="Your reason code, 0-65535."),
    as_json: bool = JSON,
) -> None:
    """Move AMOUNT from the debit account to the credit account (or reserve it)."""
    if timeout and not pending:
        raise ValidationError("--timeout needs --pending")
    request = (
        Transfer.pending(id, debit, credit, amount, timeout=timeout, code=code)
        if pending
        else Transfer.single(id, debit, credit, amount, code=code)
    )
    _answer(api.transfer(get_sessionmaker(), request), as_json, "transfer")


@app.command("post")
def post_command(
    pending_id: str = typer.Argument(..., help="The pending transfer to post."),
    id: str | None = typer.Option(None, "--id", help="Defaults to PENDING_ID:post."),
    amount: int | None = typer.Option(None, "--amount", help="Post part of it (default all)."),
    as_json: bool = JSON,
) -> None:
    """Post a pending transfer, fully or partly (the rest is released)."""
    request = Transfer.post(pending_id, amount=amount, id=id)
    _answer(api.transfer(get_sessionmaker(), request), as_json, "post")


@app.command("void")
def void_command(
    pending_id: str = typer.Argument(..., help="The pending transfer to void."),
    id: str | None = typer.Option(None, "--id", help="Defaults to PENDING_ID:void."),
    as_json: bool = JSON,
) -> None:
    """Void a pending transfer, releasing its reservation."""
    request = Transfer.void(pending_id, id=id)
    _answer(api.transfer(get_sessionmaker(), request), as_json, "void")


@app.command("expire")
def expire_command(as_json: bool = JSON) -> None:
    """Release every pending transfer whose timeout has passed."""
    count = run_in_transaction(get_sessionmaker(), api.expire_pending)
    console.emit({"expired": count}, as_json, "expiry")


@app.command("balance")
def balance_command(
    code: str = typer.Argument(..., help="Account code."), as_json: bool = JSON
) -> None:
    """The four counters of an account."""
    with unit_of_work(get_sessionmaker()) as session:
        result = api.balance(session, code)
    console.emit(result.as_dict(), as_json, f"balance of {code}")


@app.command("statement")
def statement_command(
    code: str = typer.Argument(..., help="Account code."),
    start: str | None = typer.Option(None, "--from", help="First day, YYYY-MM-DD (UTC)."),
    end: str | None = typer.Option(None, "--to", help="Last day, YYYY-MM-DD (UTC)."),
    as_json: bool = JSON,
) -> None:
    """Every transfer touching an account, oldest first."""
    first, last = _date(start, "--from"), _date(end, "--to")
    with unit_of_work(get_sessionmaker()) as session:
        lines = api.statement(session, code, first, last)
    rows = [
        {
            "at": line.at.isoformat(),
            "id": line.id,
            "kind": line.kind.value,
            "side": line.side,
            "counterpart": line.counterpart,
            "amount": line.amount,
            "pending_id": line.pending_id,
        }
        for line in lines
    ]
    if as_json:
        console.print_json({"account": code, "lines": rows})
    else:
        for row, line in zip(rows, lines, strict=True):
            row["at"] = line.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        console.print_rows(
            rows, ["at", "id", "kind", "side", "counterpart", "amount", "pending_id"],
            f"statement of {code}",
        )


@app.command("verify")
def verify_command(as_json: bool = JSON) -> None:
    """Recompute every account from the transfers; exit 3 if anything disagrees."""
    with unit_of_work(get_sessionmaker()) as session:
        report = api.verify_ledger(session)
    if as_json:
        console.print_json(report.as_dict())
    else:
        console.out.print(
            f"{'ok' if report.ok else 'NOT OK'}: {report.accounts} accounts,"
            f" {report.transfers} transfers",
            markup=False,
        )
    if not report.ok:
        for problem in report.problems:
            console.err.print(problem, markup=False)
        _fail(f"the ledger does not verify: {len(report.problems)} problem(s)", 3)


@audit_app.command("seal")
def seal_command(
    date: str | None = typer.Option(None, "--date", help="Day to seal (default: yesterday)."),
    as_json: bool = JSON,
) -> None:
    """Seal one day's transfers into the signed hash chain."""
    day = _date(date, "--date")
    key = seals.load_ledger_key(load_settings())
    seal = run_in_transaction(get_sessionmaker(), lambda s: seals.seal_day(s, key, day))
    if as_json:
        console.print_json(seal.as_dict())
    else:
        state = "sealed" if seal.created else "already sealed"
        console.out.print(
            f"{seal.day} {state}: {seal.transfers} transfers, hash {seal.hash}", markup=False
        )


@audit_app.command("verify")
def audit_verify_command(as_json: bool = JSON) -> None:
    """Recompute every seal; exit 3 naming the days that no longer match."""
    public = seals.load_ledger_key(load_settings()).public_key()
    with unit_of_work(get_sessionmaker()) as session:
        report = seals.verify_seals(session, public)
    if as_json:
        console.print_json(report.as_dict())
    else:
        console.out.print(
            f"{'ok' if report.ok else 'NOT OK'}: {report.seals} seals, last day"
            f" {report.last_day or '—'}",
            markup=False,
        )
    if not report.ok:
        for problem in report.problems:
            console.err.print(problem, markup=False)
        _fail(f"seals do not verify for {', '.join(report.bad_days)}", 3)
