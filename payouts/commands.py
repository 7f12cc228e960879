"""Batch commands shared by every programme (approve, cancel, dispatch, show, retry,
export, preflight, include), `sika funds add` and `sika worker`.

Each command that acts signs a request with the acting agent's own key (`--agent` or
SIKA_AGENT) and hands it to the service function, which checks it and records it.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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
from payouts import batches, preflight, worker
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


def preflight_text(summary: Mapping[str, int]) -> str:
    """A batch's pre-flight counts on one line: `ok 27 · name_mismatch 1 · ...`; the
    verdicts no line has are left out, the maker's inclusions always shown."""
    parts = [f"{key} {n}" for key, n in summary.items() if n and key != preflight.INCLUDED_BY_MAKER]
    parts.append(f"{preflight.INCLUDED_BY_MAKER} {summary.get(preflight.INCLUDED_BY_MAKER, 0)}")
    return " · ".join(parts)


def _for_table(summary: Mapping[str, Any]) -> dict[str, Any]:
    shown = dict(summary)
    counts = shown.get("preflight") or {}
    shown["preflight"] = preflight_text(counts) if any(counts.values()) else "not run"
    return shown


@contextmanager
def preflight_bar(label: str) -> Iterator[Callable[[preflight.PreflightProgress], None]]:
    """A progress bar on stderr while wallets are looked up; yields the progress callback."""
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("asked {task.fields[asked]}  cached {task.fields[cached]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console.err, transient=False) as bar:
        task = bar.add_task("preflight", total=None, asked=0, cached=0)

        def show(progress: preflight.PreflightProgress) -> None:
            bar.update(
                task,
                total=progress.total,
                completed=progress.done,
                asked=progress.looked_up,
                cached=progress.cached,
            )

        yield show


def print_preflight(batch_id: int, summary: Mapping[str, int]) -> None:
    """The pre-flight summary of a batch on stderr, one line."""
    if any(summary.values()):
        console.err.print(f"batch {batch_id} pre-flight: {preflight_text(summary)}", markup=False)
    else:
        console.err.print(f"batch {batch_id}: no pre-flight was run on it", markup=False)


def print_held(batch_id: int, held: list[dict[str, Any]]) -> None:
    """The lines out of the batch's manifest, on stderr, and how to include one."""
    if not held:
        return
    console.print_rows(
        held,
        ("line", "payee", "verdict", "score", "operator", "msisdn", "amount", "includable"),
        title=f"batch {batch_id}: lines out of the manifest",
    )
    if any(row["includable"] for row in held):
        console.err.print(
            f"a held name_mismatch line goes back in with `batch include {batch_id}"
            " --line SEQ --reason TEXT`; the manifest then changes and is signed again",
            markup=False,
        )


def approve_command(programme: str, batch_id: int, agent: str | None, as_json: bool) -> None:
    """Sign the batch's manifest as its approver, after printing its pre-flight summary."""
    manifest = _manifest(programme, batch_id)
    with unit_of_work() as session:
        summary = batches.preflight_summary(session, batch_id)
    print_preflight(batch_id, summary)
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
            "preflight": summary,
        }
    console.emit(result if as_json else _for_table(result), as_json, "batch approved")


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
    console.emit(summary if as_json else _for_table(summary), as_json, "batch")
    if not finished:
        console.err.print(f"--timeout reached: batch {batch_id} still has lines in flight")
        raise typer.Exit(3)


def show_command(batch_id: int, as_json: bool) -> None:
    """A batch's lines by outcome: succeeded, failed (by reason), pending, unknown; and its
    lines by pre-flight verdict."""
    with unit_of_work() as session:
        summary = batches.batch_summary(session, batch_id)
    console.emit(summary if as_json else _for_table(summary), as_json, "batch")


def _resubmit(batch_id: int, maker: str) -> dict[str, Any]:
    """The maker signs the batch's manifest as it now is (a `<programme>.batch.submit`),
    unless they already have: a re-run that changed no verdict leaves it as it was."""
    with unit_of_work() as session:
        batch = batches.get_batch(session, batch_id, lock=True)
        if batches.signed_manifest(session, batch) != batch.manifest:
            submit(session, batch, maker)
        return {
            "batch": batch.id,
            "lines": batch.lines,
            "total": batch.total,
            "manifest": batch.manifest,
        }


def preflight_command(
    programme: str,
    batch_id: int,
    agent: str | None,
    as_json: bool,
    payees: preflight.PayeeRegistry | None = None,
) -> None:
    """Run the pre-flight again on a batch not yet approved and sign its new manifest."""
    settings = load_settings()
    keys = load_keys(settings)
    _manifest(programme, batch_id)
    request = _by_batch(programme, BatchStep.PREFLIGHT, batch_id, agent)
    with preflight_bar(f"batch {batch_id} pre-flight") as show:
        report = preflight.rerun_preflight(
            get_sessionmaker(),
            request,
            batch_id,
            settings=settings,
            keys=keys,
            payees=payees,
            programme=programme,
            on_progress=show,
        )
    print_preflight(batch_id, report.summary)
    signed = _resubmit(batch_id, request.agent)
    result = {
        **signed,
        "maker": request.agent,
        "excluded": report.excluded,
        "preflight": report.summary,
    }
    console.emit(result if as_json else _for_table(result), as_json, "batch pre-flight")


def include_command(
    programme: str, batch_id: int, seq: int, reason: str, agent: str | None, as_json: bool
) -> None:
    """Include a line held out for a name mismatch, with a reason, and sign the new
    manifest."""
    cleaned = preflight.check_reason(reason)
    _manifest(programme, batch_id)
    request = signed_by(
        agent,
        batches.batch_command(programme, BatchStep.INCLUDE),
        preflight.include_arguments(batch_id, seq, cleaned),
    )
    with unit_of_work() as session:
        line = preflight.include_line(session, request, batch_id, seq, cleaned)
        score = line.preflight_score
    signed = _resubmit(batch_id, request.agent)
    with unit_of_work() as session:
        summary = batches.preflight_summary(session, batch_id)
    result = {
        **signed,
        "line": seq,
        "score": score,
        "included_by": request.agent,
        "reason": cleaned,
        "preflight": summary,
    }
    console.emit(result if as_json else _for_table(result), as_json, "line included")


def held_command(programme: str, batch_id: int, as_json: bool) -> None:
    """The batch's lines out of its manifest, with their verdicts."""
    keys = load_keys(load_settings())
    _manifest(programme, batch_id)
    with unit_of_work() as session:
        held = preflight.held_lines(session, batch_id, keys)
    if as_json:
        console.print_json({"batch": batch_id, "held": held})
    elif held:
        print_held(batch_id, held)
    else:
        console.err.print(f"batch {batch_id}: every line is in the manifest", markup=False)


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


def register_batch_commands(
    app: typer.Typer, programme: str, payees: preflight.PayeeRegistry | None = None
) -> None:
    """Add the programme-neutral batch commands to `programme`'s `batch` sub-app; each
    signs requests `<programme>.batch.<step>`. `payees` is the programme's registry as a
    re-run of the pre-flight needs it (names to compare, the operator a ported number
    moves to); without it, wallets are checked by status alone."""

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

    def preflight_(batch_id: int = _BATCH, agent: str | None = AGENT, as_json: bool = JSON) -> None:
        """Run the pre-flight again on a batch not yet approved (its maker), then sign its
        new manifest: lines newly failing are excluded, matching ones come back in."""
        preflight_command(programme, batch_id, agent, as_json, payees)

    def include(
        batch_id: int = _BATCH,
        line: int = typer.Option(..., "--line", help="The line's seq in the batch."),
        reason: str = typer.Option(..., "--reason", help="Why it is paid all the same."),
        agent: str | None = AGENT,
        as_json: bool = JSON,
    ) -> None:
        """Include a line held out for a name mismatch (its maker, before approval), with a
        reason kept on the line and in the audit log; then sign the new manifest."""
        include_command(programme, batch_id, line, reason, agent, as_json)

    def held(batch_id: int = _BATCH, as_json: bool = JSON) -> None:
        """The batch's lines out of its manifest: excluded, or held for a name mismatch."""
        held_command(programme, batch_id, as_json)

    app.command("approve")(approve)
    app.command("preflight")(preflight_)
    app.command("include")(include)
    app.command("held")(held)
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
