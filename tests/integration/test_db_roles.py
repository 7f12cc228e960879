"""The database as the last wall: raw SQL as sika_app, going around Python, cannot change
ledger rows, counters, seals, the audit log or payout lines, not even from a trigger of
its own on a TEMP table; the ledger's SECURITY DEFINER functions cannot be hijacked by
the caller's temporary objects; and the schema's owner still migrates."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy.engine import make_url

from core import db, migrate
from core.errors import ConfigError
from core.settings import load_settings
from ledger import api
from ledger.types import AccountKind, AccountSpec, Limit, Transfer
from tests.conftest import ADMIN_URL, OWNER_ROLE, _app_url_for, _libpq, _url_for, run_sika

COUNTERS = (
    "SELECT code, limit_on, debits_pending, debits_posted, credits_pending, credits_posted"
    " FROM ledger_accounts ORDER BY code"
)

# A trigger function of sika_app's own, in its pg_temp schema: the probe's weapon.
HACK = (
    "CREATE FUNCTION pg_temp.hack() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " UPDATE public.ledger_accounts SET credits_posted = credits_posted + 1000000;"
    " RETURN NULL; END $$"
)
BATCH_COLUMNS = (
    "pos integer, id text, kind text, debit_code text, credit_code text, amount bigint,"
    " pending_id text, timeout integer, code integer, linked boolean, chain integer,"
    " chain_end integer, debit_id bigint, credit_id bigint, given_debit bigint,"
    " given_credit bigint, pending_amount bigint, result text"
)
SUBMIT = (
    "SELECT * FROM ledger_submit(ARRAY['s1', 's2'], ARRAY['float', 'float'],"
    " ARRAY['expense', 'expense'], ARRAY[1, 2]::bigint[], ARRAY['pending', 'single'],"
    " NULL, NULL, NULL, NULL)"
)


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(_libpq(url), autocommit=True)


@pytest.fixture
def ledger(session_factory, database_url: str) -> Iterator[psycopg.Connection]:
    """A funded, limited float with a pending hold and one seal; and a raw connection as
    sika_app, the role every Sika process connects as."""
    with db.unit_of_work(session_factory) as s:
        api.create_accounts(
            s,
            [
                AccountSpec("float", AccountKind.ASSET, Limit.DEBITS),
                AccountSpec("treasury", AccountKind.EQUITY),
                AccountSpec("expense", AccountKind.EXPENSE),
            ],
        )
    api.transfer(session_factory, Transfer.single("fund", "treasury", "float", 100))
    api.transfer(session_factory, Transfer.pending("hold", "float", "expense", 10))
    with _connect(database_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("sika_app",)
        conn.execute(
            "INSERT INTO ledger_seals (day, transfers, rows_hash, hash, signature,"
            " key_fingerprint) VALUES ('2020-01-01', 0, 'r', 'h', 's', 'k')"
        )
        yield conn


@pytest.mark.parametrize(
    "statement",
    [
        # counters and limits
        "UPDATE ledger_accounts SET limit_on = NULL",
        "UPDATE ledger_accounts SET credits_posted = credits_posted + 1000000",
        "INSERT INTO ledger_accounts (code, kind, credits_posted) VALUES ('rich', 'asset', 9)",
        "DELETE FROM ledger_accounts WHERE code = 'expense'",
        "TRUNCATE ledger_accounts CASCADE",
        # transfers: written only by the ledger's functions
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, kind)"
        " SELECT 'forged', c.id, f.id, 5, 'single' FROM ledger_accounts c, ledger_accounts f"
        " WHERE c.code = 'treasury' AND f.code = 'float'",
        "UPDATE ledger_transfers SET amount = 1",
        "DELETE FROM ledger_transfers",
        "TRUNCATE ledger_transfers CASCADE",
        # seals and the audit log: appended, never changed
        "UPDATE ledger_seals SET hash = 'x'",
        "DELETE FROM ledger_seals",
        "TRUNCATE ledger_seals",
        "UPDATE audit_log SET action = 'nothing'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        # payout lines and their history are never removed
        "DELETE FROM payout_lines",
        "TRUNCATE payout_lines CASCADE",
        "UPDATE payout_attempts SET status = 'x'",
        "DELETE FROM recon_breaks",
        # the schema is the owner's
        "UPDATE alembic_version SET version_num = 'x'",
        "CREATE TABLE public.mine (x int)",
        "CREATE FUNCTION public.ledger_mine() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE TRIGGER mine BEFORE INSERT ON ledger_transfers"
        " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
        "ALTER TABLE ledger_transfers DISABLE TRIGGER ALL",
        # the ledger's helpers run only inside its entry points
        "SELECT ledger_fail_broken_chains()",
        "SELECT * FROM ledger_limit_effects()",
    ],
)
def test_the_app_role_cannot_change_the_ledger_around_its_functions(
    ledger: psycopg.Connection, statement: str
) -> None:
    before = ledger.execute(COUNTERS).fetchall()
    transfers = ledger.execute("SELECT count(*) FROM ledger_transfers").fetchone()
    with pytest.raises(errors.InsufficientPrivilege):
        ledger.execute(statement)
    assert ledger.execute(COUNTERS).fetchall() == before
    assert ledger.execute("SELECT count(*) FROM ledger_transfers").fetchone() == transfers


def test_the_probes_temp_table_trigger_is_refused(ledger: psycopg.Connection) -> None:
    # Given a TEMP table whose trigger runs a pg_temp function that moves the counters
    # (trigger depth 2, which ledger_002's guard alone took for the ledger's own trigger)
    before = ledger.execute(COUNTERS).fetchall()
    ledger.execute("CREATE TEMP TABLE probe (x int)")
    ledger.execute(HACK)
    ledger.execute(
        "CREATE TRIGGER probe AFTER INSERT ON probe FOR EACH ROW EXECUTE FUNCTION pg_temp.hack()"
    )
    # When sika_app fires it, Then it is refused and nothing moved
    with pytest.raises(errors.InsufficientPrivilege, match="ledger_accounts"):
        ledger.execute("INSERT INTO probe VALUES (1)")
    assert ledger.execute(COUNTERS).fetchall() == before


def test_the_guard_holds_even_if_the_app_role_were_granted_update(
    ledger: psycopg.Connection, admin_database_url: str
) -> None:
    # Given a mistaken GRANT of UPDATE on the accounts to sika_app
    with _connect(admin_database_url) as admin:
        admin.execute("GRANT UPDATE ON ledger_accounts TO sika_app")
    before = ledger.execute(COUNTERS).fetchall()
    ledger.execute("CREATE TEMP TABLE probe (x int)")
    ledger.execute(HACK)
    ledger.execute(
        "CREATE TRIGGER probe AFTER INSERT ON probe FOR EACH ROW EXECUTE FUNCTION pg_temp.hack()"
    )
    # Then the guard still refuses counters moved by a role that is not the owner
    with pytest.raises(errors.InsufficientPrivilege, match="only by applying transfers"):
        ledger.execute("INSERT INTO probe VALUES (1)")
    # and nobody, the owner included, lifts a limit by an UPDATE
    with pytest.raises(errors.InsufficientPrivilege, match="limit"):
        ledger.execute("UPDATE ledger_accounts SET limit_on = NULL WHERE code = 'float'")
    assert ledger.execute(COUNTERS).fetchall() == before


def test_a_temp_table_cannot_stand_in_for_ledger_submits_work_table(
    ledger: psycopg.Connection, database_url: str
) -> None:
    before = ledger.execute(COUNTERS).fetchall()
    # Given, in a session that never called the ledger, a TEMP table named like
    # ledger_submit's work table, open to all, with a trigger that moves the counters:
    # run inside the SECURITY DEFINER function, it would act as the owner
    with _connect(database_url) as fresh:
        fresh.execute(HACK)
        fresh.execute("GRANT EXECUTE ON FUNCTION pg_temp.hack() TO PUBLIC")
        fresh.execute(f"CREATE TEMP TABLE ledger_batch ({BATCH_COLUMNS})")
        fresh.execute("GRANT ALL ON pg_temp.ledger_batch TO PUBLIC")
        fresh.execute(
            "CREATE TRIGGER hijack AFTER INSERT ON pg_temp.ledger_batch"
            " FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.hack()"
        )
        # When it submits a batch that takes ledger_submit's general path
        with pytest.raises(errors.InsufficientPrivilege, match="belongs to another role"):
            fresh.execute(SUBMIT)
    # Then nothing moved
    assert ledger.execute(COUNTERS).fetchall() == before


def test_temp_tables_named_like_the_ledgers_are_not_used(
    ledger: psycopg.Connection,
) -> None:
    # Given TEMP look-alikes of the ledger's tables, an account with a fortune and no
    # limit, which a function resolving names through pg_temp first would read
    ledger.execute("CREATE TEMP TABLE ledger_accounts AS SELECT * FROM public.ledger_accounts")
    ledger.execute("UPDATE pg_temp.ledger_accounts SET limit_on = NULL, credits_posted = 10^12")
    ledger.execute("CREATE TEMP TABLE ledger_transfers AS SELECT * FROM public.ledger_transfers")
    # When sika_app moves more than the float holds, through every entry point
    moves = [
        "SELECT * FROM ledger_move(ARRAY['m1'], 'float', 'expense', ARRAY[500]::bigint[],"
        " 'single')",
        "SELECT * FROM ledger_reserve(ARRAY['r1'], 'float', 'expense', ARRAY[500]::bigint[])",
        SUBMIT.replace("ARRAY[1, 2]", "ARRAY[500, 600]"),
    ]
    # Then the real accounts judge it (the float holds 90) and the real table keeps it
    for move in moves:
        outcomes = {r[1] for r in ledger.execute(move).fetchall()}
        assert outcomes == {"exceeds_credits"}, move
    ledger.execute(
        "SELECT * FROM ledger_move(ARRAY['m2'], 'float', 'expense', ARRAY[5]::bigint[],"
        " 'single')"
    )
    assert ledger.execute(
        "SELECT count(*) FROM public.ledger_transfers WHERE id = 'm2'"
    ).fetchone() == (1,)
    assert ledger.execute(
        "SELECT debits_posted FROM public.ledger_accounts WHERE code = 'float'"
    ).fetchone() == (5,)


def test_entry_points_are_security_definer_functions_of_the_owner(
    ledger: psycopg.Connection,
) -> None:
    rows = ledger.execute(
        "SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner), r.rolsuper,"
        " p.proconfig, has_function_privilege('sika_app', p.oid, 'EXECUTE'),"
        " has_function_privilege('public', p.oid, 'EXECUTE')"
        " FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY(%s)"
        " ORDER BY p.proname",
        (["ledger_expire", "ledger_move", "ledger_reserve", "ledger_submit"],),
    ).fetchall()
    assert [r[0] for r in rows] == ["ledger_expire", "ledger_move", "ledger_reserve",
                                    "ledger_submit"]
    for name, definer, owner, owner_is_super, config, app_may, public_may in rows:
        assert definer, name
        assert (owner, owner_is_super) == (OWNER_ROLE, False), name
        assert "search_path=pg_catalog, public, pg_temp" in config, name
        assert (app_may, public_may) == (True, False), name


def test_what_the_app_role_may_do(ledger: psycopg.Connection) -> None:
    def may(table: str, privilege: str) -> bool:
        query = "SELECT has_table_privilege('sika_app', %s, %s)"
        return ledger.execute(query, (table, privilege)).fetchone()[0]

    assert may("ledger_transfers", "SELECT")
    assert not any(may("ledger_transfers", p) for p in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"))
    assert not any(may("ledger_accounts", p) for p in ("UPDATE", "DELETE", "TRUNCATE"))
    for table, allowed, refused in [
        ("ledger_seals", "INSERT", "UPDATE"),
        ("audit_log", "INSERT", "UPDATE"),
        ("payout_lines", "UPDATE", "DELETE"),
    ]:
        assert may(table, allowed), table
        assert not may(table, refused), table
    # no table of the schema lets sika_app delete, truncate, reference or add a trigger
    tables = [r[0] for r in ledger.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    )]
    for table in tables:
        for privilege in ("DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"):
            assert not may(table, privilege), (table, privilege)
    # and an account is created with a code, kind and limit, never with counters
    ledger.execute("INSERT INTO ledger_accounts (code, kind, limit_on) VALUES ('x', 'asset', NULL)")


def _create_owned_database() -> str:
    name = f"sika_o_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(OWNER_ROLE)
            )
        )
    return name


def _drop(name: str) -> None:
    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def owned_database(template_database: str) -> Iterator[str]:
    """An empty database belonging to sika_owner, as scripts/create-roles.sql leaves a
    managed server's (the template's migration made the roles on this server)."""
    name = _create_owned_database()
    yield name
    _drop(name)


def test_the_owner_migrates_a_managed_database_and_the_app_works_in_it(
    owned_database: str,
) -> None:
    # Given only the owner's connection (no superuser), the schema is made from nothing
    owner = db.build_engine(_app_url_for(owned_database, OWNER_ROLE), pool_size=1)
    try:
        assert migrate.upgrade(owner) == migrate.head_revision()
    finally:
        owner.dispose()
    # Then sika_app works through the functions and is walled off the rows
    app = db.build_engine(_app_url_for(owned_database), pool_size=1)
    factory = db.sessionmaker(app)
    try:
        with db.unit_of_work(factory) as s:
            api.create_accounts(
                s,
                [AccountSpec("a", AccountKind.ASSET), AccountSpec("b", AccountKind.EQUITY)],
            )
        assert api.transfer(factory, Transfer.single("t", "b", "a", 7)).result.ok
    finally:
        app.dispose()
    with _connect(_app_url_for(owned_database)) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("UPDATE ledger_accounts SET credits_posted = 0")
        assert conn.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'ledger_transfers'"
        ).fetchone() == (OWNER_ROLE,)


def test_the_app_role_cannot_migrate_and_is_told_how(owned_database: str) -> None:
    app = db.build_engine(_app_url_for(owned_database), pool_size=1)
    try:
        with pytest.raises(ConfigError, match="SIKA_DATABASE_OWNER_URL"):
            migrate.upgrade(app)
    finally:
        app.dispose()


def test_an_external_database_is_made_through_the_owner_url(
    owned_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SIKA_DATABASE_URL as sika_app and SIKA_DATABASE_OWNER_URL as sika_owner
    monkeypatch.setenv("SIKA_DATABASE_URL", _app_url_for(owned_database))
    monkeypatch.setenv("SIKA_DATABASE_OWNER_URL", _app_url_for(owned_database, OWNER_ROLE))
    load_settings.cache_clear()
    db.get_engine.cache_clear()
    try:
        # When a process starts on the empty database, Then the owner creates the schema
        # and the process connects as sika_app
        engine = db.get_engine()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_user").scalar() == "sika_app"
        assert migrate.current_revision(engine) == migrate.head_revision()
        engine.dispose()
    finally:
        load_settings.cache_clear()
        db.get_engine.cache_clear()


def test_the_owner_url_alone_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIKA_DATABASE_URL", raising=False)
    monkeypatch.setenv("SIKA_DATABASE_OWNER_URL", "postgresql://sika_owner@localhost/sika")
    load_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="SIKA_DATABASE_URL"):
            db.resolve_urls(load_settings())
    finally:
        load_settings.cache_clear()


def test_sika_db_upgrade_uses_the_owner_url(owned_database: str, tmp_path) -> None:
    env = {
        "SIKA_HOME": str(tmp_path / "home"),
        "SIKA_DATABASE_URL": _app_url_for(owned_database),
        "SIKA_LOG_FORMAT": "json",
    }
    # only the app's URL: refused in one sentence naming the way out
    refused = run_sika("db", "upgrade", env=env)
    assert refused.code == 1, refused.stderr
    assert "SIKA_DATABASE_OWNER_URL" in refused.stderr
    assert "Traceback" not in refused.stderr
    env["SIKA_DATABASE_OWNER_URL"] = _app_url_for(owned_database, OWNER_ROLE)
    done = run_sika("db", "upgrade", "--json", env=env)
    assert done.code == 0, done.stderr
    assert migrate.head_revision() in done.stdout
    assert make_url(_url_for(owned_database)).database in done.stdout
