"""Agents, roles, signatures and the append-only, hash-chained audit log on real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import agents, authority, signing
from core.db import unit_of_work
from core.errors import AuthorizationError, ValidationError
from core.models import Role


def test_roles_signatures_and_public_key_registration(session_factory, sika_env, tmp_path):
    # Given a maker with a generated key and an approver registered by public key only
    outside = signing.generate_private_key()
    with unit_of_work(session_factory) as session:
        maker = agents.add_agent(session, "Ama", Role.MAKER)
        approver = agents.add_agent(
            session, "kofi", "approver", public_key_pem=signing.public_pem(outside)
        )
    assert maker.name == "ama"
    # the generated private key is in SIKA_KEYS_DIR; a registered agent's is not here at all
    assert authority.key_path("ama").exists()
    assert not authority.key_path("kofi").exists()
    # Then a request is held to the agent's roles, in a sentence naming both
    request = authority.signed_by("ama", "test.approve", {"batch_id": 1})
    needs = "agent 'ama' holds maker; test.approve needs approver"
    with unit_of_work(session_factory) as session, pytest.raises(AuthorizationError, match=needs):
        authority.authorize(
            session,
            request,
            command="test.approve",
            arguments={"batch_id": 1},
            roles=[Role.APPROVER],
        )
    with pytest.raises(AuthorizationError, match="no acting agent"):
        authority.signed_by(None, "test.approve", {"batch_id": 1})
    with unit_of_work(session_factory) as session:
        with pytest.raises(ValidationError):
            agents.add_agent(session, "ama", Role.ADMIN)
        with pytest.raises(ValidationError):
            agents.add_agent(session, "bad name!", Role.ADMIN)
    # And a request verifies against the registered key only: kofi's name signed with
    # ama's key proves nothing, signed with kofi's own key it does
    ama_key = authority.load_agent_key("ama")
    forged = authority.sign_request("test.look", {}, "kofi", ama_key)
    genuine = authority.sign_request("test.look", {}, "kofi", outside)
    with unit_of_work(session_factory) as session:
        assert not authority.signature_valid(session, forged)
        assert authority.signature_valid(session, genuine)
        assert (
            authority.authorize(
                session, genuine, command="test.look", arguments={}, roles=[Role.APPROVER]
            ).id
            == approver.id
        )


def test_role_is_checked_by_the_database(session_factory, sika_env):
    with unit_of_work(session_factory) as session:
        eve = agents.add_agent(session, "eve", Role.AUDITOR)
    insert = text(
        "INSERT INTO agent_grants (agent_id, role, status) VALUES (:agent, 'root', 'active')"
    )
    with unit_of_work(session_factory) as session, pytest.raises(DBAPIError):
        session.execute(insert, {"agent": eve.id})


def _raw(database_url: str) -> psycopg.Connection:
    return psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)


def test_audit_log_refuses_update_delete_truncate(session_factory, sika_env, admin_database_url):
    with unit_of_work(session_factory) as session:
        agents.add_agent(session, "ama", Role.MAKER)
    # even a superuser is refused by the triggers (sika_app by its privileges: test_db_roles)
    with _raw(admin_database_url) as conn:
        for statement in (
            "UPDATE audit_log SET action = 'nothing'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)


def test_hash_chain_detects_a_tampered_entry(session_factory, sika_env, admin_database_url):
    # Given three entries
    with unit_of_work(session_factory) as session:
        actor = agents.add_agent(session, "ama", Role.ADMIN)
        agents.record(session, actor, "test.one", {"amount": 3000})
        agents.record(session, actor, "test.two", {"amount": 4000})
    with unit_of_work(session_factory) as session:
        assert agents.verify_chain(session) == []
    # When a superuser goes around the trigger and alters the middle entry's arguments
    with _raw(admin_database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE audit_log SET arguments = '{\"amount\": 9000}' WHERE action = 'test.one'"
        )
    # Then the chain shows where
    with unit_of_work(session_factory) as session:
        breaks = agents.verify_chain(session)
    assert [b.reason for b in breaks] == ["arguments altered"]
    # And removing an entry is seen too
    with _raw(admin_database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_log WHERE action = 'test.one'")
    with unit_of_work(session_factory) as session:
        assert any("removed" in b.reason for b in agents.verify_chain(session))
