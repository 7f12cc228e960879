"""Batch commands shared by every programme (approve, cancel, dispatch, show, retry,
export), `sika funds add` and `sika worker`.

Each command that acts signs a request with the acting agent's own key (`--agent` or
SIKA_AGENT) and hands it to the service function, which checks it and records it.
"""

from __future__ import annotations

import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session

from core import console
from core.authority import SignedRequest, signed_by
from core.broker import get_broker, is_in_process
from core.crypto import load_keys
from core.db import get_sessionmaker, unit_of_work
from core.errors import ValidationError
from core.logging import configure_logging
from core.settings import load_settings
from payouts import batches, worker
from payouts.dispatch import dispatch_batch
from payouts.export import export_arguments, export_batch
from payouts.funds import FUNDS_ADD, add_funds, check_funding, funding_arguments
from payouts.models import BatchStep, PayoutBatch
from payouts.retry import retry_batch
from providers.msisdn import Operator

AGENT = typer.Option(
    None, "--agent", envvar="SIKA_AGENT", help="Acting agent; signs with their own key."
)
JSON = typer.Option(False, "--json", help="Print JSON.")
_BATCH = typer.Argument(..., help="The batch number.")


def _manifest(programme: str, batch_id: int) -> str:
    """The manifest of one of `programme`'s batches, read before a request naming it is
    signed; a batch of another programme is refused (its commands are that programme's)."""
    with unit_of_work() as session:
        batch = batches.get_batch(session, batch_id)
        if batch.programme != programme:
            raise ValidationError(
                f"batch {batch_id} belongs to {batch.programme}: use"
                f" `sika {batch.programme} batch ...` for it"
            )
        return batch.manifest


def submit(session: Session, batch: PayoutBatch, maker: str) -> None:
    """The maker's signature on a batch they just built, in the same transaction: a
    `<programme>.batch.submit` request naming the batch and its manifest."""
    request = signed_by(
        maker,
        batches.batch_command(batch.programme, BatchStep.SUBMIT),
        batches.manifest_arguments(batch.id, batch.manifest),
    )
    batches.submit_batch(session, request, batch.id)


def approve_command(programme: str, batch_id: int, agent: str | None, as_json: bool) -> None:
    """Sign the batch's manifest as its approver."""
    manifest = _manifest(programme, batch_id)
    request = signed_by(
        agent,
        batches.batch_command(programme, BatchStep.APPROVE),
        batches.manifest_arguments(batch_id, manifest),
    )
    with unit_of_work() as session:
        batch = batches.approve_batch(session, request, batch_id)
        result = {
            "batch": batch.id,
            "status": batch.status,
            "manifest": batch.manifest,
            "approver": request.agent,
        }
    console.emit(result, as_json, "batch approved")


def _by_batch(programme: str, step: str, batch_id: int, agent: str | None) -> SignedRequest:
    """A signed request `<programme>.batch.<step> {"batch_id"}` of one of its batches."""
    _manifest(programme, batch_id)
    command = batches.batch_command(programme, step)
    return signed_by(agent, command, batches.batch_arguments(batch_id))


def cancel_command(programme: str, batch_id: int, agent: str | None, as_json: bool) -> None:
    """Cancel a batch not yet dispatched; its payees are free for a later batch."""
    request = _by_batch(programme, BatchStep.CANCEL, batch_id, agent)
    with unit_of_work() as session:
        batch = batches.cancel_batch(session, request, batch_id)
        result = {
            "batch": batch.id,
            "status": batch.status,
            "released": batch.lines,
            "amount": batch.total,
            "cancelled_by": request.agent,
        }
    console.emit(result, as_json, "batch cancelled")


def _dispatch(programme: str, batch_id: int, agent: str | None) -> dict[str, Any]:
    settings = load_settings()
    request = _by_batch(programme, "dispatch", batch_id, agent)
    with unit_of_work() as session:
        report = dispatch_batch(session, request, batch_id, chunk=settings.dispatch_chunk)
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
    programme: str,
    batch_id: int,
    agent: str | None,
    wait: bool = False,
    timeout: float = 600,
    as_json: bool = False,
) -> None:
    """Verify the signed requests, reserve the batch in the ledger and queue its lines."""
    _dispatch(programme, batch_id, agent)
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


def show_command(batch_id: int, as_json: bool) -> None:
    """A batch's lines by outcome: succeeded, failed (by reason), pending, unknown."""
    with unit_of_work() as session:
        summary = batches.batch_summary(session, batch_id)
    console.emit(summary, as_json, "batch")


def retry_command(programme: str, batch_id: int, agent: str | None, as_json: bool) -> None:
    """A new attempt of the lines that failed for a reason a new attempt could fix."""
    settings = load_settings()
    request = _by_batch(programme, "retry", batch_id, agent)
    with unit_of_work() as session:
        report = retry_batch(session, request, batch_id, chunk=settings.dispatch_chunk)
    result = {
        "batch": report.batch,
        "retried": report.retried,
        "amount": report.amount,
        "skipped": report.skipped,
    }
    console.emit(result, as_json, "batch retry")
    if report.retried and is_in_process(get_broker()):
        console.err.print("no broker is configured: `sika worker` sends the new attempts")


def export_command(
    programme: str, batch_id: int, out: Path, reveal: bool, agent: str | None
) -> None:
    """One CSV row per line with its outcome, reason and operator reference."""
    keys = load_keys(load_settings())
    request = None
    if reveal:
        _manifest(programme, batch_id)
        request = signed_by(
            agent, batches.batch_command(programme, "export"), export_arguments(batch_id)
        )
    with unit_of_work() as session:
        count = export_batch(session, batch_id, out, keys, reveal=reveal, request=request)
    console.err.print(f"wrote {count} lines to {out}")


def register_batch_commands(app: typer.Typer, programme: str) -> None:
    """Add the programme-neutral batch commands to `programme`'s `batch` sub-app; each
    signs requests `<programme>.batch.<step>`."""

    def approve(batch_id: int = _BATCH, agent: str | None = AGENT, as_json: bool = JSON) -> None:
        """Approve a batch (approver; never its maker): sign its manifest."""
        approve_command(programme, batch_id, agent, as_json)

    def cancel(batch_id: int = _BATCH, agent: str | None = AGENT, as_json: bool = JSON) -> None:
        """Cancel a batch not yet dispatched (its maker, or an approver): its lines are
        never sent and its payees are free for a later batch."""
        cancel_command(programme, batch_id, agent, as_json)

    def dispatch(
        batch_id: int = _BATCH,
        agent: str | None = AGENT,
        wait: bool = typer.Option(False, "--wait", help="Stay until every line is settled."),
        timeout: float = typer.Option(600, "--timeout", help="Longest --wait, in seconds."),
        as_json: bool = JSON,
    ) -> None:
        """Verify the maker's and approver's signed requests against the lines, reserve the
        batch in the ledger and queue its lines (maker or approver)."""
        dispatch_command(programme, batch_id, agent, wait, timeout, as_json)

    def show(batch_id: int = _BATCH, as_json: bool = JSON) -> None:
        """A batch's lines by outcome: succeeded, failed (by reason), pending, unknown."""
        show_command(batch_id, as_json)

    def retry(batch_id: int = _BATCH, agent: str | None = AGENT, as_json: bool = JSON) -> None:
        """A new attempt, under a new reference, of the lines that failed for a reason a new
        attempt could fix; never of pending or unknown lines (maker or approver)."""
        retry_command(programme, batch_id, agent, as_json)

    def export(
        batch_id: int = _BATCH,
        out: Path = typer.Option(..., "--out", help="CSV file to write."),
        reveal: bool = typer.Option(
            False, "--reveal", help="Phone numbers in clear (auditor; a signed, logged act)."
        ),
        agent: str | None = AGENT,
    ) -> None:
        """One CSV row per line with its outcome, reason and operator reference (phone
        masked unless --reveal)."""
        export_command(programme, batch_id, out, reveal, agent)

    app.command("approve")(approve)
    app.command("cancel")(cancel)
    app.command("dispatch")(dispatch)
    app.command("show")(show)
    app.command("retry")(retry)
    app.command("export")(export)


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
    """Record money placed in an operator float (treasurer; in the sandbox, top it up there)."""
    settings = load_settings()
    funding_id = transfer_id or f"funds:{operator.value}:{uuid.uuid4().hex}"
    check_funding(amount, funding_id)  # before anything, the operator's float above all
    request = signed_by(agent, FUNDS_ADD, funding_arguments(operator.value, amount, funding_id))
    with unit_of_work() as session:
        funding = add_funds(
            session,
            request,
            operator=operator.value,
            amount=amount,
            transfer_id=funding_id,
            sandbox_url=settings.sandbox_url,
        )
    answer: dict[str, Any] = {
        "operator": operator.value,
        "amount": amount,
        "transfer": funding_id,
        "result": funding.result.value,
    }
    if funding.sandbox_float is not None:
        answer["sandbox_float"] = funding.sandbox_float
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
