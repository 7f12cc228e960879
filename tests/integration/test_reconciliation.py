"""Reconciliation against real PostgreSQL: each category from one statement, the safe cases
settled with the right amounts, a second run changing nothing, malformed files refused,
and a resolution's second pair of eyes that no auditor can supply herself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from core import agents, signing
from core.agents import add_agent
from core.authority import SignedRequest, load_agent_key, sign_request, signed_by
from core.errors import AuthorizationError, ValidationError
from core.models import AuditEntry
from core.settings import Settings
from ledger import api as ledger
from ledger.seals import load_ledger_key
from ledger.types import AccountKind, AccountSpec, Transfer
from reconciliation import reports, resolutions
from reconciliation.models import Action, ReconException
from reconciliation.runs import RunSummary, run_arguments, run_day

DAY = dt.date(2026, 11, 23)
HEADER = "refTmoney,idRequete,dateHeureTmoney,typeRequete,numeroClient,montant,frais,statutRequete"


def _setup(
    factory: sessionmaker[Session], home: Path, lines: list[tuple[str, str, int]]
) -> list[int]:
    """A dispatched batch whose lines are (reference, status, amount), each reserved; an
    auditor, ama, to reconcile it."""
    with factory() as s, s.begin():
        maker = add_agent(s, "maker1", "maker", keys_dir=home / "agent-keys")
        add_agent(s, "ama", "auditor", keys_dir=home / "agent-keys")
        ledger.create_accounts(
            s,
            [
                AccountSpec("float:tmoney", AccountKind.ASSET, "credits"),
                AccountSpec("budget", AccountKind.LIABILITY),
                AccountSpec("treasury", AccountKind.EQUITY),
            ],
        )
        ledger.create_transfer(s, Transfer.single("fund", "float:tmoney", "treasury", 1_000_000))
        batch = s.execute(
            text(
                "INSERT INTO payout_batches (programme, scope, debit_account, description,"
                " status, nonce, lines, total, manifest, maker_id)"
                " VALUES ('agripme', 's', 'budget', 'd', 'dispatched', 'n', 0, 0, 'm', :m)"
                " RETURNING id"
            ),
            {"m": maker.id},
        ).scalar_one()
        ids = []
        for seq, (ref, status, amount) in enumerate(lines, 1):
            ledger.create_transfer(s, Transfer.pending(f"p{seq}", "budget", "float:tmoney", amount))
            ids.append(
                s.execute(
                    text(
                        "INSERT INTO payout_lines (batch_id, seq, scope, payee, msisdn_enc,"
                        " operator, amount, status, attempt, reference, pending_id, retryable,"
                        " sends, checks, submitted_at) VALUES (:b, :seq, 's', :payee, '\\x00',"
                        " 'tmoney', :amount, :status, 1, :ref, :pid, false, 1, 0, :at)"
                        " RETURNING id"
                    ),
                    {
                        "b": batch,
                        "seq": seq,
                        "payee": f"farmer:{seq}",
                        "amount": amount,
                        "status": status,
                        "ref": ref,
                        "pid": f"p{seq}",
                        "at": dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC),
                    },
                ).scalar_one()
            )
    return ids


def _reconcile(
    factory: sessionmaker[Session],
    settings: Settings,
    statement: Path,
    *,
    agent: str = "ama",
    closing_float: int | None = 0,
) -> RunSummary:
    """`sika reconcile run` as the auditor `agent` signs it, on a statement file."""
    data = statement.read_bytes()
    request = signed_by(
        agent,
        "reconcile.run",
        run_arguments("tmoney", DAY, statement=data, closing_float=closing_float),
    )
    return run_day(
        factory,
        settings,
        request,
        "tmoney",
        DAY,
        statement=data,
        source=str(statement),
        closing_float=closing_float,
    )


def _statement(rows: list[str]) -> bytes:
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode()


def _row(
    opref: str,
    ref: str,
    kind: str,
    amount: int,
    status: str,
    fee: int = 0,
    at: str = "2026-11-23 10:00:00",
) -> str:
    return f"{opref},{ref},{at},{kind},22890000001,{amount},{fee},{status}"


def test_every_category_and_a_second_run_changes_nothing(
    session_factory: sessionmaker[Session], sika_env: dict[str, str], tmp_path: Path
) -> None:
    # Given payout lines in every state and a statement with one line of each kind of break
    ids = _setup(
        session_factory,
        tmp_path,
        [
            ("R1", "succeeded", 9000),  # matched
            ("R2", "unknown", 9000),  # statement succeeded: posted
            ("R3", "pending", 9000),  # statement failed: voided
            ("R4", "succeeded", 9000),  # listed twice
            ("R5", "succeeded", 9000),  # amount changed
            ("R6", "succeeded", 9000),  # reversed after success
            ("R7", "succeeded", 9000),  # fee changed
            ("R8", "succeeded", 9000),  # missing at the provider
            ("R9", "pending", 9000),  # still pending at the operator
        ],
    )
    with session_factory() as s, s.begin():
        ledger.create_transfers(s, [Transfer.post(f"p{i}") for i in (1, 4, 5, 6, 7, 8)])
    statement = tmp_path / "tmoney.csv"
    statement.write_bytes(
        _statement(
            [
                _row("T1", "R1", "CREDIT", 9000, "SUCCES"),
                _row("T2", "R2", "CREDIT", 9000, "SUCCES"),
                _row("T3", "R3", "CREDIT", 9000, "ECHEC"),
                _row("T4", "R4", "CREDIT", 9000, "SUCCES"),
                _row("T4", "R4", "CREDIT", 9000, "SUCCES"),
                _row("T5", "R5", "CREDIT", 9500, "SUCCES"),
                _row("T6", "R6", "CREDIT", 9000, "SUCCES"),
                _row("T6R", "R6", "REVERSAL", 9000, "SUCCES"),
                _row("T7", "R7", "CREDIT", 9000, "SUCCES", fee=50),
                # still pending two days after it was sent: aged
                _row("T9", "R9", "CREDIT", 9000, "EN_COURS", at="2026-11-21 10:00:00"),
                _row("TX", "RX", "CREDIT", 1234, "SUCCES"),
            ]
        )
    )
    settings = Settings()
    # When it is reconciled with the operator's closing float given
    summary = _reconcile(session_factory, settings, statement)
    # Then each line is where it belongs
    assert summary.counts == {
        "matched": 3,  # T1, T4 (first listing), T6
        "missing_at_provider": 1,
        "missing_in_ledger": 1,
        "amount_mismatch": 1,
        "status_mismatch": 2,
        "duplicate_at_provider": 1,
        "reversed_after_success": 1,
        "aged_pending": 1,
        "fee_mismatch": 1,
    }
    assert summary.auto_resolved == 3
    with session_factory() as s:
        statuses = dict(s.execute(text("SELECT reference, status FROM payout_lines")).all())
        assert statuses["R2"] == "succeeded"
        assert statuses["R3"] == "failed"
        assert ledger.balance(s, "suspense:tmoney").credits_posted == 9000
        flagged = s.execute(text("SELECT flagged FROM payout_lines WHERE reference = 'R6'"))
        assert "suspense:tmoney" in flagged.scalar_one()
        assert ledger.verify_ledger(s).ok
        transfers = s.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one()
        open_before = reports.open_exceptions(s, "tmoney")
    # And the report files are signed and verify
    public = load_ledger_key(settings)
    for path in summary.report.values():
        ok, _ = reports.verify_file(Path(path), public.public_key())
        assert ok
    html = Path(summary.report["html"]).read_text()
    Path(summary.report["csv"]).write_text("tampered")
    assert not reports.verify_file(Path(summary.report["csv"]), public.public_key())[0]
    assert "<svg" in html
    # When the day is run again
    again = _reconcile(session_factory, settings, statement)
    # Then no money moves and the same exceptions stay open; the first run is history
    with session_factory() as s:
        assert s.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one() == transfers
        assert [x["id"] for x in reports.open_exceptions(s, "tmoney")] == [
            x["id"] for x in open_before
        ]
        runs = s.execute(text("SELECT count(*), count(superseded_at) FROM recon_runs")).one()
        assert tuple(runs) == (2, 1)
    assert again.open_exceptions == summary.open_exceptions
    assert ids


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"refTmoney,idRequete,montant\r\n", "line 1"),
        (_statement(["T1,R1,23/11/2026,CREDIT,22890000001,9000,0,SUCCES"]), "line 2"),
        (
            _statement(
                [
                    _row("T1", "R1", "CREDIT", 9000, "SUCCES"),
                    "T2,R2,2026-11-23 10:00:00,CREDIT,22890000001,9k,0,SUCCES",
                ]
            ),
            "line 3",
        ),
        (_statement([_row("T1", "R1", "CREDIT", 9000, "SUCCES"), "T2,R2,2026-11-23"]), "line 3"),
    ],
)
def test_malformed_statement_is_refused_and_nothing_recorded(
    session_factory: sessionmaker[Session],
    sika_env: dict[str, str],
    tmp_path: Path,
    body: bytes,
    where: str,
) -> None:
    statement = tmp_path / "bad.csv"
    statement.write_bytes(body)
    with session_factory() as s, s.begin():
        add_agent(s, "ama", "auditor", keys_dir=tmp_path / "agent-keys")
    with pytest.raises(ValidationError, match=where):
        _reconcile(session_factory, Settings(), statement)
    # nothing recorded: no run, and not even the request, which rolled back with it
    with session_factory() as s:
        assert s.execute(text("SELECT count(*) FROM recon_runs")).scalar_one() == 0
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 1  # ama's enrolment


def test_statement_malformed_deep_in_the_file_rolls_the_whole_run_back(
    session_factory: sessionmaker[Session], sika_env: dict[str, str], tmp_path: Path
) -> None:
    # Given a day already reconciled once: an unknown payout posted from the statement
    _setup(session_factory, tmp_path, [("R1", "unknown", 9000)])
    settings = Settings()
    good = tmp_path / "good.csv"
    good.write_bytes(_statement([_row("T1", "R1", "CREDIT", 9000, "SUCCES")]))
    first = _reconcile(session_factory, settings, good)
    with session_factory() as s:
        transfers = s.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one()
        breaks = s.execute(text("SELECT count(*) FROM recon_breaks")).scalar_one()
    # And a statement whose lines are read and staged for long before a bad one
    rows = [_row(f"T{n}", f"RX{n}", "CREDIT", 9000, "SUCCES") for n in range(2, 50_002)]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_statement([*rows, "T0,R0,2026-11-23 10:00:00,CREDIT,,9000,0,MAYBE"]))
    # When it is reconciled
    with pytest.raises(ValidationError, match="line 50002, field 'statutRequete'"):
        _reconcile(session_factory, settings, bad)
    # Then nothing of the second run is left: the first run is still the day's run
    with session_factory() as s:
        runs = s.execute(text("SELECT id, superseded_at FROM recon_runs")).all()
        assert [tuple(r) for r in runs] == [(first.run_id, None)]
        assert s.execute(text("SELECT count(*) FROM recon_breaks")).scalar_one() == breaks
        assert s.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one() == transfers


def test_an_auditor_cannot_approve_her_own_resolution_even_through_a_puppet(
    session_factory: sessionmaker[Session], sika_env: dict[str, str], tmp_path: Path
) -> None:
    # Given two admins, an approver and an auditor, and a day with 1,234 FCFA at the
    # operator that the ledger cannot place
    _setup(session_factory, tmp_path, [("R1", "succeeded", 9000)])
    with session_factory() as s, s.begin():
        # kodjo before the second admin: his grant needs no confirmation yet
        for name, role in (("root", "admin"), ("kodjo", "approver"), ("root2", "admin")):
            add_agent(s, name, role, keys_dir=tmp_path / "agent-keys")
        ledger.create_transfer(s, Transfer.post("p1"))
    statement = tmp_path / "tmoney.csv"
    statement.write_bytes(
        _statement(
            [_row("T1", "R1", "CREDIT", 9000, "SUCCES"), _row("TX", "RX", "CREDIT", 1234, "SUCCES")]
        )
    )
    _reconcile(session_factory, Settings(), statement, closing_float=None)
    with session_factory() as s:
        exception_id = s.scalars(
            select(ReconException.id).where(ReconException.category == "missing_in_ledger")
        ).one()

    def run(work: Callable[[Session], Any]) -> Any:
        with session_factory() as s, s.begin():
            return work(s)

    def approve(request: SignedRequest) -> Any:
        return run(lambda s: resolutions.approve(s, request, exception_id))

    def suspense() -> int:
        with session_factory() as s:
            found = ledger.balances(s, ["suspense:tmoney"]).get("suspense:tmoney")
            return found.debits_posted if found else 0

    # When ama proposes to hold it in suspense
    note = "unknown payer"
    proposal = {"exception_id": exception_id, "action": "to_suspense", "note": note}
    request = signed_by("ama", "reconcile.resolve", proposal)
    run(lambda s: resolutions.resolve(s, request, exception_id, Action.TO_SUSPENSE, note))
    approval = {"exception_id": exception_id, "action": "to_suspense"}
    # Then she cannot approve it herself
    with pytest.raises(AuthorizationError, match="proposed this resolution"):
        approve(signed_by("ama", "reconcile.approve", approval))
    # Nor mint a puppet approver whose key she holds: enrolling is an admin's act
    puppet = signing.generate_private_key()
    enrolment = {
        "name": "puppet",
        "role": "approver",
        "public_key": signing.public_pem(puppet).decode("ascii"),
    }

    def enrol(admin: str) -> Any:
        request = signed_by(admin, "agent.add", enrolment)
        return run(
            lambda s: agents.enrol(
                s,
                request,
                name="puppet",
                role="approver",
                public_key_pem=enrolment["public_key"],
            )
        )

    with pytest.raises(AuthorizationError, match="needs admin"):
        enrol("ama")
    # And when an admin enrols the puppet for her, its grant waits for the other admin,
    # which the granting admin cannot be
    enrol("root")
    with pytest.raises(AuthorizationError, match="awaits a second admin"):
        approve(sign_request("reconcile.approve", approval, "puppet", puppet))
    confirmation = signed_by("root", "agent.confirm", {"name": "puppet", "role": None})
    with pytest.raises(AuthorizationError, match="another admin must confirm"):
        run(lambda s: agents.confirm(s, confirmation, name="puppet"))
    # Nor can she sign as kodjo, the approver, with her own key
    forged = sign_request("reconcile.approve", approval, "kodjo", load_agent_key("ama"))
    with pytest.raises(AuthorizationError, match="does not verify with the key of agent 'kodjo'"):
        approve(forged)
    # Then nothing moved
    assert suspense() == 0
    with session_factory() as s:
        assert resolutions.get_exception(s, exception_id).status == "awaiting_approval"
    # And when kodjo, a second person, approves it, the money is held in suspense once
    approve(signed_by("kodjo", "reconcile.approve", approval))
    assert suspense() == 1234
    with session_factory() as s:
        assert resolutions.get_exception(s, exception_id).status == "resolved"
