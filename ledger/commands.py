"""`sika ledger` and `sika audit`: the ledger from the command line.

Each command parses its arguments, calls one service function and prints the answer:
data on stdout (JSON with --json), a refusal as one sentence on stderr and exit 1.

Who may do what. A manual entry needs two people: `transfer`, `post` and `void` are a
maker's signed proposals, which `approve` (or `reject`) by a different agent, an approver,
decides (ledger.manual); `account create` is a maker's or the treasurer's. `expire` and
`audit seal` sign nothing and may run from any process of the server (a cron job): expiry
releases only holds whose timeout the database clock says has passed, and a seal moves
nothing; it is signed with the ledger key, which only the server holds, and sealing a day
twice changes nothing. Reading needs no agent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NoReturn

import typer

from core import console
from core.authority import signed_by
from core.db import get_sessionmaker, run_in_transaction, unit_of_work
from core.errors import ValidationError
from core.settings import load_settings
from ledger import api, manual, seals
from ledger.models import ProposalRow
from ledger.types import AccountKind, Limit, ProposalKind, ProposalStatus, Result

app = typer.Typer(help="Accounts, transfers, two-phase holds and balances.", no_args_is_help=True)
audit_app = typer.Typer(
    help="Tamper evidence: daily seals and their verification.", no_args_is_help=True
)
account_app = typer.Typer(help="Ledger accounts.", no_args_is_help=True)
app.add_typer(account_app, name="account")

JSON = typer.Option(False, "--json", help="Print JSON.")
AGENT = typer.Option(
    None,
    "--agent",
    envvar="SIKA_AGENT",
    help="Acting agent; the request is signed with their key (SIKA_KEYS_DIR or SIKA_AGENT_KEY).",
)


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
    agent: str | None = AGENT,
    as_json: bool = JSON,
) -> None:
    """Create an account (maker or treasurer); `exists` if it already exists as asked."""
    request = signed_by(
        agent,
        "ledger.account.create",
        {"code": code, "kind": str(kind), "limit": str(limit) if limit is not None else None},
    )
    with unit_of_work(get_sessionmaker()) as session:
        account, created = manual.create_account(
            session, request, code=code, kind=kind, limit=limit
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


def _proposed(row: ProposalRow, as_json: bool) -> None:
    data = {
        "proposal": row.id,
        "kind": row.kind,
        "id": row.transfer_id,
        "status": row.status,
        "maker": row.agent,
    }
    if as_json:
        console.print_json(data)
    else:
        console.out.print(
            f"proposed: {row.kind} {row.transfer_id} (proposal {row.id})", markup=False
        )
    console.err.print(
        f"nothing moves until a different agent approves: sika ledger approve {row.id}",
        markup=False,
    )


def _propose(kind: ProposalKind, agent: str | None, arguments: dict[str, Any]) -> ProposalRow:
    # validated before anything is signed: a mistake costs no request
    manual.transfer_of(kind, arguments)
    request = signed_by(agent, f"ledger.{kind}", arguments)
    with unit_of_work(get_sessionmaker()) as session:
        return manual.propose(session, request, kind, arguments)


@app.command("transfer")
def transfer_command(
    id: str = typer.Option(..., "--id", help="Your idempotency key, e.g. correction:2026-11:1."),
    debit: str = typer.Option(..., "--debit", help="Account debited."),
    credit: str = typer.Option(..., "--credit", help="Account credited."),
    amount: int = typer.Option(..., "--amount", help="Francs (XOF), a positive integer."),
    pending: bool = typer.Option(False, "--pending", help="Reserve only: post or void later."),
    timeout: int = typer.Option(
        0, "--timeout", help="With --pending: seconds after which the hold expires."
    ),
    code: int = typer.Option(0, "--code", help="Your reason code, 0-65535."),
    agent: str | None = AGENT,
    as_json: bool = JSON,
) -> None:
    """Propose moving or reserving AMOUNT from one account to another (maker).

    Nothing moves until a different agent, an approver, runs `sika ledger approve`."""
    arguments = manual.transfer_arguments(
        id=id,
        debit=debit,
        credit=credit,
        amount=amount,
        pending=pending,
        timeout=timeout,
        code=code,
    )
    _proposed(_propose(ProposalKind.TRANSFER, agent, arguments), as_json)


@app.command("post")
def post_command(
    pending_id: str = typer.Argument(..., help="The pending transfer to post."),
    id: str | None = typer.Option(None, "--id", help="Defaults to PENDING_ID:post."),
    amount: int | None = typer.Option(None, "--amount", help="Post part of it (default all)."),
    agent: str | None = AGENT,
    as_json: bool = JSON,
) -> None:
    """Propose posting a pending transfer, fully or partly (maker).

    Never a payout line's hold, which only the payout engine resolves."""
    arguments = manual.post_arguments(pending_id=pending_id, id=id, amount=amount)
    _proposed(_propose(ProposalKind.POST, agent, arguments), as_json)


@app.command("void")
def void_command(
    pending_id: str = typer.Argument(..., help="The pending transfer to void."),
    id: str | None = typer.Option(None, "--id", help="Defaults to PENDING_ID:void."),
    agent: str | None = AGENT,
    as_json: bool = JSON,
) -> None:
    """Propose voiding a pending transfer, releasing its reservation (maker).

    Never a payout line's hold, which only the payout engine resolves."""
    arguments = manual.void_arguments(pending_id=pending_id, id=id)
    _proposed(_propose(ProposalKind.VOID, agent, arguments), as_json)


@app.command("approve")
def approve_command(
    proposal: int = typer.Argument(..., help="The proposal to execute."),
    agent: str | None = AGENT,
    as_json: bool = JSON,
) -> None:
    """Execute a manual entry another agent proposed (approver).

    The request names the entry approved; exit 1 when the ledger refuses it."""
    with unit_of_work(get_sessionmaker()) as session:
        arguments = manual.approval_arguments(session, proposal)
    request = signed_by(agent, "ledger.approve", arguments)
    with unit_of_work(get_sessionmaker()) as session:
        row = manual.approve(session, request, proposal)
        data = {
            "proposal": row.id,
            "id": row.transfer_id,
            "result": row.result,
            "status": row.status,
        }
    result = Result(str(row.result))
    if as_json:
        console.print_json(data)
    elif result.ok:
        console.out.print(f"{result}: {row.kind} {row.transfer_id}", markup=False)
    if not result.ok:
        _fail(f"{row.kind} {row.transfer_id} refused ({result}): {result.sentence}.")


@app.command("reject")
def reject_command(
    proposal: int = typer.Argument(..., help="The proposal to turn down."),
    agent: str | None = AGENT,
    as_json: bool = JSON,
) -> None:
    """Turn down a manual entry another agent proposed (approver); nothing moves."""
    request = signed_by(agent, "ledger.reject", {"proposal_id": proposal})
    with unit_of_work(get_sessionmaker()) as session:
        row = manual.reject(session, request, proposal)
        data = {"proposal": row.id, "id": row.transfer_id, "status": row.status}
    console.emit(data, as_json, "proposal")


@app.command("proposals")
def proposals_command(
    status: ProposalStatus | None = typer.Option(
        ProposalStatus.PROPOSED, "--status", help="Only these (default: awaiting approval)."
    ),
    every: bool = typer.Option(False, "--all", help="Every proposal, whatever its status."),
    as_json: bool = JSON,
) -> None:
    """Manual entries proposed, and what became of them."""
    with unit_of_work(get_sessionmaker()) as session:
        rows = [
            manual.proposal_view(session, row)
            for row in manual.proposals(session, None if every else status)
        ]
    if as_json:
        console.print_json(rows)
        return
    console.print_rows(
        rows,
        ["proposal", "kind", "id", "transfer", "status", "result", "maker", "decided_by"],
        "ledger proposals",
    )


@app.command("expire")
def expire_command(as_json: bool = JSON) -> None:
    """Release every pending transfer whose timeout has passed.

    No agent: the database clock decides, so nobody can expire a hold early."""
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
    """Seal one day's transfers into the signed hash chain.

    No agent: a seal moves nothing, and it is signed with the ledger key."""
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
