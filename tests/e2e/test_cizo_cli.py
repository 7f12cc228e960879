"""`sika cizo` as a user runs it: the real command against real PostgreSQL, the operator
sandbox over HTTP, and a real `sika serve` receiving the operators' callbacks.

Each test starts at 23:59:59 on 31 December on Sika's clock and the sandbox's, and its
payments fall on 1 January: they draw on the new year's chèque solaire.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpaygo import TokenType, decode_token
from sqlalchemy import create_engine, text

from core import clock
from tests.conftest import SIKA, enrol_agents, new_years_eve, run_sika
from tests.fixtures.sandbox import Sandbox, free_port

KEY = "0123456789abcdef0123456789abcdef"
START = "987654321"
COMPANY_MSISDN = "96000041"
# 000009: the sandbox calls back twice for every transaction of this number
HOUSEHOLD = "96000009"
KIT_KEYS = {
    "serial", "status", "paid", "subsidy", "remaining", "days_credited", "expires_at",
    "token_count", "tokens",
}  # fmt: skip


@pytest.fixture
def env(
    sika_env: dict[str, str], sandbox: Sandbox, clock_at: Callable[[datetime], datetime]
) -> dict[str, str]:
    """Sika's environment on this test's database, with the sandbox as both operators, at
    23:59:59 on 31 December."""
    clock_at(new_years_eve())
    sandbox.put_wallet(HOUSEHOLD, balance=500_000)
    return {**sika_env, "SIKA_SANDBOX_URL": sandbox.url, "SIKA_OPERATOR_TIMEOUT": "2"}


def sika(*args: str, env: dict[str, str], code: int = 0) -> Any:
    """Run `sika`, check its exit code, and return its JSON (or its stderr when refused)."""
    result = run_sika(*args, env=env)
    assert result.code == code, f"sika {' '.join(args)}: {result.stderr}"
    if code:
        assert "Traceback" not in result.stderr
        return result.stderr
    return json.loads(result.stdout) if "--json" in args else result.stdout


def set_up(env: dict[str, str]) -> None:
    """Agents awa (maker), kodjo (approver), root (admin), kofi (treasurer) and ama
    (auditor); a company on BBOXX's 2018 small-kit prices, and the new year's chèque
    solaire, which only the treasurer funds."""
    people = {"awa": "maker", "kodjo": "approver", "root": "admin", "kofi": "treasurer"}
    enrol_agents(env, {**people, "ama": "auditor"})
    company = sika(
        "cizo", "company", "add", "BBOXX", "--name", "BBOXX Togo", "--msisdn", COMPANY_MSISDN,
        "--agent", "awa", "--json", env=env,
    )  # fmt: skip
    assert (company["code"], company["operator"], company["owed"]) == ("BBOXX", "flooz", 0)
    # BBOXX 2018 (docs/architecture.md#cizo): 8,960 installation, then 160 a day; three years
    plan = sika(
        "cizo", "plan", "add", "BBOXX-S", "--company", "BBOXX", "--deposit", "8960",
        "--per-day", "160", "--term-days", "1095", "--agent", "awa", "--json", env=env,
    )  # fmt: skip
    assert plan["price"] == 8_960 + 160 * 1_095
    # past midnight (the commands above take longer than the year's last second), so the
    # year funded is the one every payment of the test falls in
    while clock.today() == new_years_eve().date():
        time.sleep(0.05)
    year = str(clock.today().year)
    assert year == str(new_years_eve().year + 1)
    fund = ["cizo", "subsidy", "fund", "--year", year, "--amount", "1000000", "--operator",
            "flooz", "--reference", "e2e"]  # fmt: skip
    for who in ("root", "awa"):
        assert "needs treasurer" in sika(*fund, "--agent", who, env=env, code=1)
    sika(*fund, "--agent", "kofi", env=env)
    assert "needs treasurer" in sika(
        "cizo", "programme", "set", "--months", "24", "--agent", "root", env=env, code=1
    )
    programme = sika("cizo", "programme", "set", "--months", "36", "--agent", "kofi", "--json",
                     env=env)  # fmt: skip
    assert programme == {"monthly_amount": 2_000, "months": 36}


def register(env: dict[str, str], serial: str, msisdn: str = HOUSEHOLD, **over: str) -> Any:
    options = {"--opaygo-key": KEY, "--starting-code": START, **over}
    args = [
        "cizo", "kit", "register", "--household", "Afi Mensah", "--msisdn", msisdn,
        "--company", "BBOXX", "--plan", "BBOXX-S", "--serial", serial, "--agent", "awa",
    ]  # fmt: skip
    for option, value in options.items():
        args += [option, value]
    return args


def decode_all(tokens: list[dict[str, Any]]) -> list[tuple[int | None, TokenType]]:
    """Every token decoded in order, as the kit's keypad would."""
    count, used, out = 1, None, []
    for token in tokens:
        value, kind, count, used = decode_token(
            token=token["token"],
            secret_key=KEY,
            count=count,
            used_counts=used,
            starting_code=int(START),
        )
        out.append((value, kind))
    return out


def kit_show(env: dict[str, str], serial: str) -> dict[str, Any]:
    return sika("cizo", "kit", "show", serial, "--json", env=env)


@pytest.fixture
def serve_log(tmp_path: Path) -> Path:
    """Where `sika serve` writes its JSON log: what it did with each callback."""
    return tmp_path / "sika-serve.log"


@pytest.fixture
def serve(env: dict[str, str], sandbox: Sandbox, serve_log: Path) -> Iterator[str]:
    """`sika serve` on a free port, the sandbox calling it back."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")}
    full.update(env)
    log = serve_log.open("wb")
    proc = subprocess.Popen(
        [SIKA, "serve", "--port", str(port)],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log.close()
            err = serve_log.read_text(errors="replace")
            raise RuntimeError(f"sika serve did not start: {err}")
        time.sleep(0.2)
    sandbox.set_callback_url(f"{url}/callbacks")
    try:
        yield url
    finally:
        sandbox.set_callback_url(None)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def cizo_callbacks_done(serve_log: Path) -> set[int]:
    """The callbacks `sika serve` has finished with on CIZO's side (counted, or coalesced
    into a query already made), by id, from its log."""
    done = set()
    for line in serve_log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") in ("cizo.callback.handled", "cizo.callback.coalesced"):
            done.add(int(entry["callback_id"]))
    return done


def wait_until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_a_kit_from_registration_to_a_self_paid_instalment(
    env: dict[str, str], sandbox: Sandbox, serve: str, serve_log: Path
) -> None:
    set_up(env)
    # Given a bad key and a bad starting code, registration is refused in one sentence
    bad_key = sika(*register(env, "BX-0001", **{"--opaygo-key": "abc"}), env=env, code=1)
    assert "error: --opaygo-key must be exactly 32 hexadecimal characters" in bad_key
    bad_code = sika(*register(env, "BX-0001", **{"--starting-code": "12345"}), env=env, code=1)
    assert "error: --starting-code must be 9 digits" in bad_code
    kit = sika(*register(env, "BX-0001"), "--json", env=env)
    assert (kit["status"], kit["remaining"], kit["msisdn"]) == (
        "awaiting_deposit",
        184_160,
        "22896****09",
    )

    # When the household pays the deposit and 10 days by USSD push
    pushed = sika("cizo", "collect", "BX-0001", "--amount", "10560", "--agent", "awa",
                  "--wait", "15", "--json", env=env)  # fmt: skip
    assert pushed["result"] == "confirmed"
    # Then the kit shows exactly the keys: 1,600 beyond the deposit + 1,600 subsidy
    shown = kit_show(env, "BX-0001")
    assert set(shown) == KIT_KEYS
    assert (shown["status"], shown["paid"], shown["subsidy"], shown["days_credited"]) == (
        "active",
        10_560,
        1_600,
        20,
    )
    assert shown["remaining"] == 184_160 - 10_560 - 1_600
    assert shown["token_count"] == shown["tokens"][-1]["count"]
    assert decode_all(shown["tokens"]) == [(20, TokenType.ADD_TIME)]
    token = shown["tokens"][-1]["token"]
    spoken = f"{token[:3]} {token[3:6]} {token[6:]}"
    assert any(spoken in sms["message"] for sms in sandbox.sms())

    # When the token is resent: the same token, by SMS, and no new count
    before = len(sandbox.sms())
    resent = sika("cizo", "token", "resend", "BX-0001", "--agent", "awa", "--json", env=env)
    assert (resent["token"], resent["count"]) == (token, shown["token_count"])
    assert len(sandbox.sms()) == before + 1
    assert spoken in sandbox.sms()[-1]["message"]
    assert kit_show(env, "BX-0001")["token_count"] == shown["token_count"]

    # When an agent corrects the device's credit to 5 days (SET_TIME, no money)
    corrected = sika("cizo", "kit", "correct", "BX-0001", "--days", "5", "--agent", "awa",
                     "--json", env=env)  # fmt: skip
    assert corrected["type"] == "set_time"
    shown = kit_show(env, "BX-0001")
    assert decode_all(shown["tokens"]) == [(20, TokenType.ADD_TIME), (5, TokenType.SET_TIME)]
    assert shown["paid"] == 10_560
    refused = sika("cizo", "kit", "correct", "BX-0001", "--days", "996", "--agent", "awa",
                   env=env, code=1)  # fmt: skip
    assert "error: --days must be a whole number from 0 to 995" in refused

    # When the household pays the kit's serial on its own, and the operator calls back twice
    paid = sandbox.pay(HOUSEHOLD, 480, "BX-0001", "flooz")
    assert paid["status"] == "succeeded"

    # Then `sika serve` confirms it by a status query and counts it once: 480 + 400 subsidy
    def counted() -> dict[str, Any] | None:
        now = kit_show(env, "BX-0001")
        return now if now["paid"] > 10_560 else None

    shown = wait_until(counted)
    assert shown, "the self-paid instalment was never counted"
    # and once the sandbox has delivered both callbacks and `sika serve` has finished
    # with both, no late duplicate counts it again
    sandbox.wait_quiet()
    engine = create_engine(env["SIKA_DATABASE_URL"])
    with engine.connect() as conn:
        received = set(conn.execute(
            text("SELECT id FROM provider_callbacks WHERE sika_reference = 'BX-0001'"
                 " AND operator_reference = :ref"),
            {"ref": paid["operator_reference"]},
        ).scalars())  # fmt: skip
    engine.dispose()
    assert len(received) == 2
    assert wait_until(lambda: received <= cizo_callbacks_done(serve_log), timeout=10), (
        f"sika serve did not finish with callbacks {received}"
    )
    shown = kit_show(env, "BX-0001")
    assert (shown["paid"], shown["subsidy"], shown["days_credited"]) == (11_040, 2_000, 25)
    assert [kind for _, kind in decode_all(shown["tokens"])] == [
        TokenType.ADD_TIME,
        TokenType.SET_TIME,
        TokenType.ADD_TIME,
    ]
    with create_engine(env["SIKA_DATABASE_URL"]).connect() as conn:
        callbacks = conn.execute(
            text("SELECT count(*) FROM provider_callbacks WHERE sika_reference = 'BX-0001'")
        ).scalar_one()
        counted_payments = conn.execute(
            text(
                "SELECT count(*) FROM cizo_payments WHERE operator_reference = :ref"
                " AND status = 'confirmed'"
            ),
            {"ref": paid["operator_reference"]},
        ).scalar_one()
    assert (callbacks, counted_payments) == (2, 1)

    # And a second kit, never paid, is in arrears; the first is not
    sika(*register(env, "BX-0002", msisdn="96000052"), env=env)
    report = sika("cizo", "report", "--json", env=env)
    assert [row["serial"] for row in report["arrears"]] == ["BX-0002"]
    assert report["about_to_lock"] == []
    assert "BX-0002" in sika("cizo", "report", env=env)
    assert run_sika("ledger", "verify", env=env).code == 0
    # And the day's Flooz statement reconciles clean: the push and the self-paid instalment
    # are both placed in the ledger, and the ledger's float equals the operator's
    recon = sika("reconcile", "run", "--provider", "flooz", "--date", sandbox.today(),
                 "--agent", "ama", "--json", env=env)  # fmt: skip
    assert recon["counts"]["matched"] >= 2
    assert recon["counts"]["missing_in_ledger"] == 0
    assert (recon["open_exceptions"], recon["float"]["difference"]) == (0, 0)


def test_settling_a_company_through_maker_checker(env: dict[str, str], sandbox: Sandbox) -> None:
    set_up(env)
    sika(*register(env, "BX-0101"), env=env)
    sika("funds", "add", "--operator", "flooz", "--amount", "500000", "--agent", "kofi", env=env)
    sika("cizo", "collect", "BX-0101", "--amount", "10560", "--agent", "awa", env=env)
    company_wallet = sandbox.wallet(COMPANY_MSISDN)["balance"]
    owed = sika("cizo", "company", "show", "BBOXX", "--json", env=env)["owed"]
    assert owed == 10_560 + 1_600

    # Given that Flooz offers a look-up, skipping the pre-flight is refused
    skipped = sika("cizo", "settle", "--company", "BBOXX", "--no-preflight", "--agent", "awa",
                   env=env, code=1)  # fmt: skip
    assert "--no-preflight: flooz offers a look-up" in skipped
    # Given a settlement made by a maker, the company's wallet looked up first
    settled = sika("cizo", "settle", "--company", "BBOXX", "--agent", "awa", "--json", env=env)
    assert settled["total"] == owed
    assert settled["preflight"]["ok"] == 1
    assert sum(settled["preflight"].values()) == 1
    batch = str(settled["batch_id"])
    # And its approver sees the pre-flight's summary before signing
    shown = sika("cizo", "batch", "show", batch, "--json", env=env)
    assert (shown["preflight"]["ok"], shown["lines"], shown["submitted"]) == (1, 1, True)
    # Then its maker cannot approve it, nor can it be dispatched unapproved
    sika("cizo", "batch", "approve", batch, "--agent", "awa", env=env, code=1)
    # When a different approver approves it and it is dispatched
    approved = run_sika("cizo", "batch", "approve", batch, "--agent", "kodjo", env=env)
    assert approved.code == 0, approved.stderr
    assert f"batch {batch} pre-flight: ok 1 · included_by_maker 0" in approved.stderr
    sika("cizo", "batch", "dispatch", batch, "--agent", "kodjo", "--wait", "--timeout", "60",
         env=env)  # fmt: skip
    # Then the company's wallet is credited once, and Sika owes it nothing more
    assert sandbox.wallet(COMPANY_MSISDN)["balance"] == company_wallet + owed
    company = sika("cizo", "company", "show", "BBOXX", "--json", env=env)
    assert company["owed"] == 0
    balance = sika("ledger", "balance", "cizo:company:bboxx", "--json", env=env)
    assert balance["debits_posted"] == owed
    # And with nothing new owed, a second settlement is refused
    nothing = sika("cizo", "settle", "--company", "BBOXX", "--agent", "awa", env=env, code=1)
    assert "nothing is owed to BBOXX" in nothing

    # When the household pays again, a second settlement pays only what became owed since
    sika("cizo", "collect", "BX-0101", "--amount", "320", "--agent", "awa", env=env)
    second = sika("cizo", "settle", "--company", "BBOXX", "--agent", "awa", "--json", env=env)
    assert second["total"] == 320 + 320
    sika("cizo", "batch", "approve", str(second["batch_id"]), "--agent", "kodjo", env=env)
    sika("cizo", "batch", "dispatch", str(second["batch_id"]), "--agent", "kodjo", "--wait",
         "--timeout", "60", env=env)  # fmt: skip
    assert sandbox.wallet(COMPANY_MSISDN)["balance"] == company_wallet + owed + 640
    assert run_sika("ledger", "verify", env=env).code == 0
