"""Benchmark 6, `peer`: django-hordak, the best-known Python double-entry ledger on
PostgreSQL, beside Sika on the same server in the same run: the same transfers one at a
time through each, and through each one's fastest way (hordak has no batch API).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy.engine import make_url

from bench._common import Benchmark, Outcome, Target, register, scratch_database

AMOUNT = 4_000
SOURCE = "bench:budget"
DESTINATION = "bench:expense"


def _amount(i: int) -> int:
    return AMOUNT + i % 3


def _sika(url: str, size: int, conn: Connection) -> None:
    """Sika: `size` transfers one at a time, then `size` more in one create_transfers
    call, then `size` pending ones in one reserve call."""
    from sqlalchemy.orm import sessionmaker

    from core import db
    from core.db import unit_of_work
    from ledger import api
    from ledger.types import AccountKind, AccountSpec, Result, Transfer

    engine = db.build_engine(url, pool_size=1)
    factory = sessionmaker(engine, expire_on_commit=False)
    with unit_of_work(factory) as session:
        api.create_accounts(
            session,
            [AccountSpec(SOURCE, AccountKind.LIABILITY), AccountSpec(DESTINATION, "expense")],
        )
    for i in range(20):
        api.transfer(factory, Transfer.single(f"warm:{i}", SOURCE, DESTINATION, _amount(i)))

    started = time.perf_counter()
    for i in range(size):
        outcome = api.transfer(
            factory, Transfer.single(f"one:{i}", SOURCE, DESTINATION, _amount(i))
        )
        if outcome.result is not Result.CREATED:
            raise RuntimeError(f"transfer one:{i} answered {outcome.result}")
    one_at_a_time = time.perf_counter() - started

    started = time.perf_counter()
    transfers = [Transfer.single(f"many:{i}", SOURCE, DESTINATION, _amount(i)) for i in range(size)]
    with unit_of_work(factory) as session:
        outcomes = api.create_transfers(session, transfers)
    batch = time.perf_counter() - started
    if any(o.result is not Result.CREATED for o in outcomes):
        raise RuntimeError("a batched transfer was refused")

    started = time.perf_counter()
    with unit_of_work(factory) as session:
        outcomes = api.reserve(
            session,
            [f"held:{i}" for i in range(size)],
            SOURCE,
            DESTINATION,
            [_amount(i) for i in range(size)],
        )
    reserve = time.perf_counter() - started
    if any(o.result is not Result.CREATED for o in outcomes):
        raise RuntimeError("a reserved transfer was refused")
    engine.dispose()
    conn.send({"one_at_a_time": one_at_a_time, "create_transfers": batch, "reserve": reserve})


def _hordak(url: str, size: int, conn: Connection) -> None:
    """hordak: `size` transfers one at a time through Account.transfer_to, each in its
    own transaction as hordak wraps it."""
    import django
    from django.conf import settings

    parsed = make_url(url)
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parsed.database,
                "USER": parsed.username or "postgres",
                "PASSWORD": parsed.password or "",
                "HOST": parsed.host or "127.0.0.1",
                "PORT": str(parsed.port or 5432),
            }
        },
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "mptt",
            "hordak",
        ],
        USE_TZ=True,
        DEFAULT_CURRENCY="XOF",
        CURRENCIES=["XOF"],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command
    from djmoney.money import Money
    from hordak.models import Account

    call_command("migrate", verbosity=0, interactive=False)
    source = Account.objects.create(name="budget", type=Account.TYPES.liability, currencies=["XOF"])
    destination = Account.objects.create(
        name="expense", type=Account.TYPES.expense, currencies=["XOF"]
    )
    for i in range(20):
        source.transfer_to(destination, Money(_amount(i), "XOF"))

    started = time.perf_counter()
    for i in range(size):
        source.transfer_to(destination, Money(_amount(i), "XOF"), description=f"one:{i}")
    one_at_a_time = time.perf_counter() - started
    conn.send({"one_at_a_time": one_at_a_time, "hordak": _version("django-hordak")})


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def _in_child(target: Any, url: str, size: int) -> dict[str, Any]:
    # each library in a fresh process: Django's settings are per process, and neither
    # side inherits the other's caches
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(url, size, send))
    process.start()
    send.close()
    try:
        report: dict[str, Any] = receive.recv()
    except EOFError:
        raise RuntimeError(f"{target.__name__} failed (exit code {process.exitcode})") from None
    process.join()
    return report


def run(size: int) -> Outcome:
    with scratch_database("peer_sika") as sika_url:
        sika = _in_child(_sika, sika_url, size)
    with scratch_database("peer_hordak", migrate=False) as hordak_url:
        hordak = _in_child(_hordak, hordak_url, size)
    sika_one = size / sika["one_at_a_time"]
    sika_fast = size / min(sika["create_transfers"], sika["reserve"])
    hordak_one = size / hordak["one_at_a_time"]
    return Outcome(
        figures={
            "one_at_a_time_per_second": sika_one,
            "create_transfers_per_second": size / sika["create_transfers"],
            "reserve_per_second": size / sika["reserve"],
            "fastest_per_second": sika_fast,
            "seconds": sika,
        },
        reference={
            "library": f"django-hordak {hordak['hordak']}",
            "one_at_a_time_per_second": hordak_one,
            "fastest_per_second": hordak_one,
            "seconds": {"one_at_a_time": hordak["one_at_a_time"]},
        },
        scores={
            "ratio_one_at_a_time": sika_one / hordak_one,
            "ratio_fastest_way": sika_fast / hordak_one,
        },
        method={
            "sika": "one at a time: ledger.api.transfer(factory, Transfer.single(…)), each its "
            "own transaction; fastest way: the better of one create_transfers call with "
            "every transfer (posted at once, as hordak's) and one reserve call (pending)",
            "hordak": "Account.transfer_to(other, Money(amount, 'XOF')): one Transaction "
            "and two Legs in hordak's own atomic block, its database triggers checking "
            "the legs balance; hordak has no batch API, so its fastest way is the same",
            "setup": "each library in a fresh spawned process, one client, its own database "
            "on the same PostgreSQL, Django configured in code, 20 warm-up transfers each",
        },
    )


BENCHMARK = register(
    Benchmark(
        name="peer",
        default_size=100_000,
        targets=(
            Target("ratio_one_at_a_time", ">=", 2),
            Target("ratio_fastest_way", ">=", 20),
        ),
        run=run,
        summary="Sika vs django-hordak: the same transfers one at a time and the fastest way",
    )
)
