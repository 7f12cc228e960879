"""Batch commands shared by every programme (approve, dispatch, show, retry, export),
`sika funds add` and `sika worker`.
"""

from __future__ import annotations

import csv
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import text

from core import agents, console
from core.broker import get_broker, is_in_process
from core.crypto import load_keys
from core.db import get_sessionmaker, unit_of_work
from core.errors import ValidationError
from core.logging import configure_logging
from core.models import Role
from core.settings import load_settings
from ledger.api import get_transfer
from payouts import batches, worker
from payouts.dispatch import dispatch_batch
from payouts.funds import add_funds, top_up_sandbox
from payouts.models import LINE_MSISDN
from payouts.retry import retry_batch
from providers.msisdn import Operator, mask

AGENT = typer.Option(None, "--agent", envvar="SIKA_AGENT", help="Acting agent.")
JSON = typer.Option(False, "--json", help="Print JSON.")
_BATCH = typer.Argument(..., help="The batch number.")


def approve_command(
    batch_id: int = _BATCH, agent: str | None = AGENT, as_json: bool = JSON
) -> None:
    """Approve a batch: another agent than its maker, with the approver role, signs it."""
    with unit_of_work() as session:
        acting = agents.require_role(session, agent, Role.APPROVER)
        batch = batches.approve_batch(session, batch_id, acting)
        agents.record(
            session,
            acting,
            "payouts.batch.approve",
            {"batch": batch.id, "manifest": batch.manifest},
        )
        result = {
            "batch": batch.id,
            "status": batch.status,
            "manifest": batch.manifest,
            "approver": acting.name,
        }
    console.emit(result, as_json, "batch approved")


def _dispatch(batch_id: int, agent: str | None) -> dict[str, Any]:
    settings = load_settings()
    with unit_of_work() as session:
        acting = agents.require_role(session, agent, Role.MAKER, Role.APPROVER, Role.ADMIN)
        report = dispatch_batch(session, batch_id, chunk=settings.dispatch_chunk)
        if not report.already:
            agents.record(
                session,
                acting,
                "payouts.batch.dispatch",
                {"batch": batch_id, "lines": report.queued, "amount": report.amount},
            )
    if report.already:
        console.err.print(f"batch {batch_id} was already dispatched")
    else:
        console.err.print(
            f"batch {batch_id}: {report.queued} lines reserved ({report.amount} FCFA) and queued"
        )
    return {"queued": report.queued, "already": report.already}


def _wait(batch_id: int, timeout: float) -> bool:
    """Follow the batch with a progress bar on stderr; True when it finished in time."""
    factory = get_sessionmaker()
    columns = (
        TextColumn("[bold]batch {task.fields[batch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ok {task.fields[ok]}  failed {task.fields[failed]}  waiting {task.fields[w]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console.err, transient=False) as bar:
        task = bar.add_task("dispatch", total=None, batch=batch_id, ok=0, failed=0, w=0)

        def show(progress: worker.Progress) -> None:
            bar.update(
                task,
                total=progress.lines,
                completed=progress.settled,
                ok=progress.succeeded,
                failed=progress.failed,
                w=progress.waiting,
            )

        if is_in_process(get_broker()):
            settings = load_settings()
            log_path = settings.home / "logs" / "worker.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            console.err.print(f"workers run in this process; their log: {log_path}")
            # one log line per send and answer would drown the progress bar: to the file
            with log_path.open("a", encoding="utf-8") as log_file:
                configure_logging(settings.log_level, "json", stream=log_file)
                try:
                    with worker.running():
                        last = worker.wait_for_batch(
                            factory, batch_id, timeout=timeout, on_progress=show
                        )
                finally:
                    configure_logging(settings.log_level, settings.log_format)
        else:
            last = worker.wait_for_batch(factory, batch_id, timeout=timeout, on_progress=show)
    return last.done


def dispatch_command(
    batch_id: int = _BATCH,
    agent: str | None = AGENT,
    wait: bool = typer.Option(False, "--wait", help="Stay until every line is settled."),
    timeout: float = typer.Option(600, "--timeout", help="Longest --wait, in seconds."),
    as_json: bool = JSON,
) -> None:
    """Verify the signatures, reserve the batch in the ledger and queue its lines."""
    _dispatch(batch_id, agent)
    finished = True
    if wait:
        finished = _wait(batch_id, timeout)
    elif is_in_process(get_broker()):
        console.err.print("no broker is configured: `sika worker` (or --wait) sends the lines")
    with unit_of_work() as session:
        summary = batches.batch_summary(session, batch_id)
    console.emit(summary, as_json, "batch")
    if not finished:
        console.err.print(f"--timeout reached: batch {batch_id} still has lines in flight")
        raise typer.Exit(3)


def show_command(batch_id: int = _BATCH, as_json: bool = JSON) -> None:
    """A batch's lines by outcome: succeeded, failed (by reason), pending, unknown."""
    with unit_of_work() as session:
        summary = batches.batch_summary(session, batch_id)
    console.emit(summary, as_json, "batch")


def retry_command(batch_id: int = _BATCH, agent: str | None = AGENT, as_json: bool = JSON) -> None:
    """A new attempt, under a new reference, of the lines that failed for a reason a new
    attempt could fix; never of pending or unknown lines."""
    settings = load_settings()
    with unit_of_work() as session:
        acting = agents.require_role(session, agent, Role.MAKER, Role.ADMIN)
        report = retry_batch(session, batch_id, chunk=settings.dispatch_chunk)
        agents.record(
            session,
            acting,
            "payouts.batch.retry",
            {"batch": batch_id, "lines": report.retried, "amount": report.amount},
        )
    result = {
        "batch": report.batch,
        "retried": report.retried,
        "amount": report.amount,
        "skipped": report.skipped,
    }
    console.emit(result, as_json, "batch retry")
    if report.retried and is_in_process(get_broker()):
        console.err.print("no broker is configured: `sika worker` sends the new attempts")


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
)


def export_command(
    batch_id: int = _BATCH,
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
) -> None:
    """One CSV row per line with its outcome, reason and operator reference (phone masked)."""
    keys = load_keys(load_settings())
    count = 0
    with unit_of_work() as session:
        batches.get_batch(session, batch_id)
        rows = session.execute(
            text(
                "SELECT id, seq, payee, msisdn_enc, operator, amount, status, reason, attempt,"
                " reference, operator_reference, submitted_at, resolved_at"
                " FROM payout_lines WHERE batch_id = :b ORDER BY seq"
            ).execution_options(yield_per=5000),
            {"b": batch_id},
        )
        try:
            handle = out.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"--out: cannot write {out}: {exc.strerror}") from None
        with handle:
            writer = csv.writer(handle)
            writer.writerow(EXPORT_COLUMNS)
            for r in rows:
                phone = mask(keys.keyring.decrypt(bytes(r.msisdn_enc), LINE_MSISDN))
                writer.writerow(
                    [
                        r.id,
                        r.seq,
                        r.payee,
                        phone,
                        r.operator,
                        r.amount,
                        r.status,
                        r.reason or "",
                        r.attempt,
                        r.reference,
                        r.operator_reference or "",
                        r.submitted_at.isoformat() if r.submitted_at else "",
                        r.resolved_at.isoformat() if r.resolved_at else "",
                    ]
                )
                count += 1
    console.err.print(f"wrote {count} lines to {out}")


def register_batch_commands(app: typer.Typer) -> None:
    """Add the programme-neutral batch commands to a programme's `batch` sub-app."""
    app.command("approve")(approve_command)
    app.command("dispatch")(dispatch_command)
    app.command("show")(show_command)
    app.command("retry")(retry_command)
    app.command("export")(export_command)


funds_app = typer.Typer(
    help="Operator floats: money placed at Flooz and T-Money.", no_args_is_help=True
)


@funds_app.command("add")
def funds_add_command(
    operator: Operator = typer.Option(..., "--operator", help="flooz or tmoney."),
    amount: int = typer.Option(..., "--amount", help="Francs placed in the float."),
    transfer_id: str | None = typer.Option(
        None, "--id", help="Idempotency key (a repeat is a replay); generated when absent."
    ),
    agent: str | None = AGENT,
    as_json: bool = JSON,
) -> None:
    """Record money placed in an operator float (and, in the sandbox, top it up there)."""
    settings = load_settings()
    funding_id = transfer_id or f"funds:{operator.value}:{uuid.uuid4().hex}"
    with unit_of_work() as session:
        acting = agents.require_role(session, agent, Role.ADMIN, Role.MAKER)
        replay = get_transfer(session, funding_id) is not None
        sandbox_float = None
        if settings.sandbox_url and not replay:
            # the money reaches the operator first; the ledger records what happened
            sandbox_float = top_up_sandbox(settings.sandbox_url, operator.value, amount)
        result = add_funds(session, operator.value, amount, funding_id)
        if not replay:
            agents.record(
                session,
                acting,
                "funds.add",
                {"operator": operator.value, "amount": amount, "transfer": funding_id},
            )
    answer = {
        "operator": operator.value,
        "amount": amount,
        "transfer": funding_id,
        "result": result.value,
    }
    if sandbox_float is not None:
        answer["sandbox_float"] = sandbox_float
    console.emit(answer, as_json, "funds")


def worker_command(
    threads: int = typer.Option(8, "--threads", help="Worker threads in this process."),
) -> None:
    """Run dramatiq workers and the outbox relay on SIKA_BROKER_URL until interrupted."""
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    broker = get_broker()
    where = "in-process (no SIKA_BROKER_URL)" if is_in_process(broker) else type(broker).__name__
    with worker.running(threads=threads):
        console.err.print(f"worker running on {where} with {threads} threads; Ctrl-C stops it")
        while not stop.wait(1.0):
            pass
    console.err.print("worker stopped")
