"""The `sika` command: parses arguments, calls service functions, prints.

Each package keeps its Typer sub-app in its own `commands.py`; this module mounts them
and turns every `SikaError` into one sentence on stderr and its exit code.
"""

from __future__ import annotations

import sys
import traceback

import typer
from sqlalchemy.exc import OperationalError

from agripme import commands as agripme_commands
from cizo import collections as cizo_collections
from cizo import commands as cizo_commands
from cizo import settlement as cizo_settlement
from core import agent_commands, console
from core import commands as db_commands
from core.errors import SikaError
from core.logging import configure_logging
from core.settings import load_settings
from ledger import commands as ledger_commands
from payouts import callbacks as payout_callbacks
from payouts import commands as payout_commands
from payouts import worker as payout_worker
from providers import commands as provider_commands
from providers.sandbox import commands as sandbox_commands
from reconciliation import commands as reconciliation_commands
from reconciliation import scheduler as reconciliation_scheduler

app = typer.Typer(
    name="sika",
    help="Sika: subsidy disbursement over mobile money (AgriPME, CIZO), on a double-entry ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_commands.app, name="db")
app.add_typer(ledger_commands.app, name="ledger")
app.add_typer(ledger_commands.audit_app, name="audit")
app.add_typer(agent_commands.app, name="agent")
app.add_typer(provider_commands.app, name="providers")
app.add_typer(sandbox_commands.app, name="sandbox")
app.add_typer(agripme_commands.app, name="agripme")
app.add_typer(cizo_commands.app, name="cizo")
cizo_batch_app = typer.Typer(
    help="Settlement batches to solar companies: approve, preflight, held, include, cancel,"
    " dispatch, show, retry, export.",
    no_args_is_help=True,
)
payout_commands.register_batch_commands(cizo_batch_app, "cizo", cizo_settlement.CompanyRegistry())
cizo_commands.app.add_typer(cizo_batch_app, name="batch")
app.add_typer(reconciliation_commands.app, name="reconcile")
app.add_typer(payout_commands.funds_app, name="funds")
app.command("worker")(payout_commands.worker_command)
app.command("scheduler")(reconciliation_commands.scheduler_command)
# every worker also runs the nightly reconciliation when the scheduler asks for it
payout_worker.register_declarer(reconciliation_scheduler.declare)
ledger_commands.audit_app.command("log")(agent_commands.audit_log)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8800, "--port", help="Port to listen on."),
) -> None:
    """Receive operator callbacks and SMS delivery reports over HTTP."""
    payout_callbacks.register_handlers()
    cizo_collections.register_handlers()
    provider_commands.serve(host=host, port=port)


_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
) -> None:
    """Configure logging once the settings are known."""
    _state["debug"] = debug
    settings = load_settings()
    configure_logging("DEBUG" if debug else settings.log_level, settings.log_format)


def main() -> None:
    """Entry point of the `sika` script."""
    try:
        result = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            console.err.print(f"error: {exc.format_message()}", markup=False)
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.err.print("aborted")
        sys.exit(1)
    except SikaError as exc:
        _report(exc, str(exc))
        sys.exit(exc.exit_code)
    except OperationalError as exc:
        _report(exc, f"the database could not be reached: {str(exc.orig).strip().splitlines()[0]}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


def _report(exc: BaseException, sentence: str) -> None:
    if _state["debug"] or "--debug" in sys.argv:
        traceback.print_exception(exc, file=sys.stderr)
    console.err.print(f"error: {sentence}", markup=False)


if __name__ == "__main__":
    main()
