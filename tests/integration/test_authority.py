"""Signed requests and agents' grants on real PostgreSQL: who may act, and proof of it.

Each refusal is one sentence and leaves nothing behind: no effect and no audit entry.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError as PydanticError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import agents, audit, authority, signing
from core.authority import SignedRequest, authorize, sign_request
from core.db import unit_of_work
from core.errors import AuthorizationError, ConfigError, NotFoundError, ValidationError
from core.models import INCOMPATIBLE_ROLES, Agent, AuditEntry, Role
from core.settings import Settings


@dataclass
class People:
    """Agents' private keys, each held by its person, and the database they act on."""

    factory: sessionmaker[Session]
    keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)

    def key(self, name: str) -> Ed25519PrivateKey:
        return self.keys.setdefault(name, signing.generate_private_key())

    def pem(self, name: str) -> str:
        return signing.public_pem(self.key(name)).decode("ascii")

    def sign(self, name: str, command: str, arguments: dict[str, Any], **kw: Any) -> SignedRequest:
        return sign_request(command, arguments, name, self.key(name), **kw)

    def run(self, work: Callable[[Session], Any]) -> Any:
        with unit_of_work(self.factory) as session:
            return work(session)

    def bootstrap(self, name: str) -> None:
        self.run(lambda s: agents.bootstrap(s, name, self.pem(name)))

    def add(self, admin: str, name: str, role: str) -> Agent:
        arguments = {"name": name, "role": role, "public_key": self.pem(name)}
        request = self.sign(admin, "agent.add", arguments)
        return self.run(
            lambda s: agents.enrol(s, request, name=name, role=role, public_key_pem=self.pem(name))
        )

    def confirm(self, admin: str, name: str) -> None:
        request = self.sign(admin, "agent.confirm", {"name": name, "role": None})
        self.run(lambda s: agents.confirm(s, request, name=name))

    def grant_status(self, name: str) -> dict[str, str]:
        return self.run(lambda s: {g.role: g.status for g in agents.get_agent(s, name).grants})

    def entries(self) -> int:
        return self.run(lambda s: s.scalar(select(func.count()).select_from(AuditEntry)))


@pytest.fixture
def people(session_factory: sessionmaker[Session], sika_env: dict[str, str]) -> People:
    return People(session_factory)


@pytest.fixture
def office(people: People) -> People:
    """root (first admin), awa (maker), aud (auditor); one admin only."""
    people.bootstrap("root")
    people.add("root", "awa", "maker")
    people.add("root", "aud", "auditor")
    return people


def _touch(people: People, request: SignedRequest, roles: tuple[Role, ...] = (Role.MAKER,)) -> Any:
    """A stand-in for a programme's service function: authorise, then act."""
    return people.run(
        lambda s: authorize(
            s, request, command="test.touch", arguments={"batch_id": 7}, roles=roles
        )
    )


def _refused(people: People, attempt: Callable[[], Any], match: str) -> str:
    """`attempt` is refused with one sentence matching `match`, and nothing is recorded."""
    before = people.entries()
    with pytest.raises(AuthorizationError, match=match) as caught:
        attempt()
    sentence = str(caught.value)
    assert "\n" not in sentence
    assert ". " not in sentence, sentence
    assert people.entries() == before
    return sentence


def test_bootstrap_only_on_an_empty_agents_table(people: People) -> None:
    # Given the first admin, bootstrapped
    people.bootstrap("root")
    assert people.grant_status("root") == {"admin": "active"}
    # When anyone bootstraps again
    # Then it is refused, and nothing is recorded
    _refused(people, lambda: people.bootstrap("mallory"), "agents already exist")
    with pytest.raises(NotFoundError, match="no agent named"):
        people.grant_status("mallory")


def test_maker_and_auditor_cannot_add_agents(office: People) -> None:
    for who, role in (("awa", "maker"), ("aud", "auditor")):
        _refused(
            office,
            lambda who=who: office.add(who, "eve", "admin"),
            f"agent '{who}' holds {role}; agent.add needs admin",
        )
    with pytest.raises(NotFoundError, match="no agent named"):
        office.grant_status("eve")


def test_privileged_grants_wait_for_a_second_admin(office: People) -> None:
    # Given one admin: a second admin and an approver are in force at once
    office.add("root", "adm2", "admin")
    assert office.grant_status("adm2") == {"admin": "active"}
    # When, with two admins, root grants approver to kodjo
    office.add("root", "kodjo", "approver")
    # Then the grant is pending and kodjo cannot approve yet
    assert office.grant_status("kodjo") == {"approver": "pending"}
    approve = office.sign("kodjo", "test.touch", {"batch_id": 7})
    _refused(
        office,
        lambda: _touch(office, approve, (Role.APPROVER,)),
        "approver grant of agent 'kodjo' awaits a second admin's confirmation",
    )
    # And root cannot confirm the grant root made
    _refused(office, lambda: office.confirm("root", "kodjo"), "another admin must confirm it")
    # nor can kodjo, who is no admin
    _refused(office, lambda: office.confirm("kodjo", "kodjo"), "needs admin")
    # When adm2 confirms
    office.confirm("adm2", "kodjo")
    # Then kodjo approves
    assert _touch(office, office.sign("kodjo", "test.touch", {"batch_id": 7}), (Role.APPROVER,))
    kodjo = office.run(lambda s: agents.get_agent(s, "kodjo"))
    grant = kodjo.grants[0]
    names = office.run(lambda s: {a.id: a.name for a in s.scalars(select(Agent))})
    assert (names[grant.granted_by], names[grant.confirmed_by]) == ("root", "adm2")


def test_a_maker_grant_needs_no_second_admin(office: People) -> None:
    office.add("root", "adm2", "admin")
    office.add("root", "yawo", "maker")
    assert office.grant_status("yawo") == {"maker": "active"}


def test_acting_under_another_name_without_their_key_is_refused(office: People) -> None:
    office.add("root", "kodjo", "approver")
    # Given awa signing with her own key a request that names kodjo
    forged = sign_request("test.touch", {"batch_id": 7}, "kodjo", office.key("awa"))
    # Then it is refused as not kodjo's signature
    _refused(
        office,
        lambda: _touch(office, forged, (Role.APPROVER,)),
        "does not verify with the key of agent 'kodjo'",
    )


def test_the_cli_needs_the_named_agents_own_key(office: People, sika_env, tmp_path) -> None:
    # Given awa's machine holding awa's key only
    keys = Path(sika_env["SIKA_KEYS_DIR"])
    signing.write_private_key(keys / "awa.pem", office.key("awa"))
    settings = Settings(keys_dir=keys)
    # Then signing as kodjo there finds no key
    with pytest.raises(ConfigError, match=r"no private key for agent 'kodjo' at .*kodjo\.pem"):
        authority.signed_by("kodjo", "test.touch", {"batch_id": 7}, settings=settings)
    # And signing as herself works
    request = authority.signed_by("awa", "test.touch", {"batch_id": 7}, settings=settings)
    assert _touch(office, request).name == "awa"
    # And SIKA_AGENT_KEY naming her key, with --agent kodjo, signs a request kodjo refuses
    office.add("root", "kodjo", "approver")
    as_key = Settings(keys_dir=tmp_path / "elsewhere", agent_key=keys / "awa.pem")
    forged = authority.signed_by("kodjo", "test.touch", {"batch_id": 7}, settings=as_key)
    _refused(office, lambda: _touch(office, forged, (Role.APPROVER,)), "does not verify")
    # And a key others may read is not used
    (keys / "awa.pem").chmod(0o644)
    with pytest.raises(ConfigError, match="can be read by others"):
        authority.load_agent_key("awa", settings)
    with pytest.raises(AuthorizationError, match="no acting agent"):
        authority.signed_by(None, "test.touch", {}, settings=settings)


@pytest.fixture
def accepted(office: People) -> SignedRequest:
    """A request of awa's that was accepted once."""
    request = office.sign("awa", "test.touch", {"batch_id": 7})
    _touch(office, request)
    return request


def test_stale_and_future_requests_are_refused(office: People) -> None:
    now = datetime.now(UTC)
    stale = office.sign("awa", "test.touch", {"batch_id": 7}, now=now - timedelta(minutes=6))
    sentence = _refused(office, lambda: _touch(office, stale), "signed 6 minutes ago")
    assert "5 minutes" in sentence
    ahead = office.sign("awa", "test.touch", {"batch_id": 7}, now=now + timedelta(minutes=6))
    _refused(office, lambda: _touch(office, ahead), "ahead of the server's clock")
    # just inside the window is fine
    fresh = office.sign("awa", "test.touch", {"batch_id": 7}, now=now - timedelta(minutes=4))
    assert _touch(office, fresh).name == "awa"


def test_a_replayed_request_is_refused(office: People, accepted: SignedRequest) -> None:
    used = f"request {accepted.request_id} was already used"
    _refused(office, lambda: _touch(office, accepted), used)


def test_a_replay_racing_the_original_is_refused(office: People) -> None:
    # Given the same request submitted twice at once; the first holds its transaction open
    request = office.sign("awa", "test.touch", {"batch_id": 7})
    first_in = threading.Event()
    outcomes: dict[str, Any] = {}

    def first() -> None:
        with unit_of_work(office.factory) as session:
            authorize(
                session,
                request,
                command="test.touch",
                arguments={"batch_id": 7},
                roles=[Role.MAKER],
            )
            first_in.set()
            # the second has passed the used-id check by now and waits for the log
            threading.Event().wait(1.0)
        outcomes["first"] = "ok"

    def second() -> None:
        first_in.wait(10)
        try:
            _touch(office, request)
            outcomes["second"] = "ok"
        except AuthorizationError as exc:
            outcomes["second"] = str(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Then exactly one was accepted
    assert outcomes["first"] == "ok"
    assert "already used" in outcomes["second"]
    assert (
        office.run(
            lambda s: s.scalar(
                select(func.count()).where(AuditEntry.request_id == request.request_id)
            )
        )
        == 1
    )


def test_tampered_arguments_are_refused(office: People) -> None:
    # Given a maker's request to add... an agent, altered on its way to make her an admin
    office.add("root", "adm2", "admin")
    arguments = {"name": "eve", "role": "maker", "public_key": office.pem("eve")}
    request = office.sign("root", "agent.add", arguments)
    tampered = request.model_copy(update={"arguments": {**arguments, "role": "admin"}})
    # Then the signature no longer verifies, and eve does not exist
    _refused(
        office,
        lambda: office.run(
            lambda s: agents.enrol(
                s, tampered, name="eve", role="admin", public_key_pem=office.pem("eve")
            )
        ),
        "signature does not verify",
    )
    # And a service acting on other arguments than those signed refuses the request
    _refused(
        office,
        lambda: office.run(
            lambda s: agents.enrol(
                s, request, name="eve", role="admin", public_key_pem=office.pem("eve")
            )
        ),
        "signed arguments of 'agent.add' differ",
    )
    # as does one serving another command with it
    _refused(
        office,
        lambda: office.run(
            lambda s: authorize(
                s, request, command="agent.grant", arguments=arguments, roles=[Role.ADMIN]
            )
        ),
        "signed for 'agent.add', not for 'agent.grant'",
    )
    with pytest.raises(NotFoundError, match="no agent named"):
        office.grant_status("eve")


def test_a_revoked_agent_is_refused_at_once(office: People) -> None:
    office.run(
        lambda s: agents.revoke(
            s, office.sign("root", "agent.revoke", {"name": "awa", "role": None}), name="awa"
        )
    )
    signed_before = office.sign("awa", "test.touch", {"batch_id": 7})
    _refused(office, lambda: _touch(office, signed_before), "agent 'awa' was revoked")
    awa = office.run(lambda s: agents.get_agent(s, "awa"))
    assert awa.roles == frozenset()
    assert awa.current_key is None


def test_revoking_one_grant_leaves_the_others(office: People) -> None:
    office.run(
        lambda s: agents.grant(
            s,
            office.sign("root", "agent.grant", {"name": "aud", "role": "treasurer"}),
            name="aud",
            role="treasurer",
        )
    )
    office.run(
        lambda s: agents.revoke(
            s,
            office.sign("root", "agent.revoke", {"name": "aud", "role": "auditor"}),
            name="aud",
            role="auditor",
        )
    )
    assert office.grant_status("aud") == {"auditor": "revoked", "treasurer": "active"}


def test_the_last_admin_cannot_be_revoked(office: People) -> None:
    request = office.sign("root", "agent.revoke", {"name": "root", "role": None})
    with pytest.raises(ValidationError, match="last admin"):
        office.run(lambda s: agents.revoke(s, request, name="root"))


def test_a_key_rotated_away_is_refused(office: People) -> None:
    # Given awa's request signed with her key, then her key rotated by herself
    old = office.key("awa")
    signed_with_old = office.sign("awa", "test.touch", {"batch_id": 7})
    before = datetime.now(UTC)
    new = signing.generate_private_key()
    new_pem = signing.public_pem(new).decode("ascii")
    rotation = office.sign("awa", "agent.rotate_key", {"name": "awa", "public_key": new_pem})
    office.run(lambda s: agents.rotate_key(s, rotation, name="awa", public_key_pem=new_pem))
    office.keys["awa"] = new
    # Then a request kept from before stands for that time only
    assert office.run(lambda s: authority.signature_valid(s, signed_with_old, at=before))
    assert not office.run(lambda s: authority.signature_valid(s, signed_with_old))
    # And the old key no longer acts, even for a request signed before the rotation
    _refused(office, lambda: _touch(office, signed_with_old), "does not verify")
    late = sign_request("test.touch", {"batch_id": 7}, "awa", old)
    _refused(office, lambda: _touch(office, late), "does not verify")
    # And the new key does, and an old key is never anyone's again
    assert _touch(office, office.sign("awa", "test.touch", {"batch_id": 7})).name == "awa"
    office.keys["copy"] = old
    with pytest.raises(ValidationError, match=r"is \(or was\) the key of agent 'awa'"):
        office.add("root", "copy", "auditor")
    # And every signature still verifies against the key valid when it was recorded
    assert office.run(authority.verify_audit_log) == []


def test_separation_of_duties(office: People, admin_database_url: str) -> None:
    def grant(admin: str, name: str, role: str) -> Any:
        request = office.sign(admin, "agent.grant", {"name": name, "role": role})
        return office.run(lambda s: agents.grant(s, request, name=name, role=role))

    # maker and approver never on one agent; admins neither make nor approve
    for name, role in (("awa", "approver"), ("root", "maker")):
        with pytest.raises((ValidationError, AuthorizationError)):
            grant("root", name, role)
    office.add("root", "kodjo", "approver")
    with pytest.raises(ValidationError, match="holds approver and cannot also hold admin"):
        grant("root", "kodjo", "admin")
    # other pairs are allowed: a maker may also audit
    grant("root", "awa", "auditor")
    assert office.grant_status("awa") == {"maker": "active", "auditor": "active"}
    # And the database refuses every incompatible pair whoever writes it
    with psycopg.connect(admin_database_url.replace("+psycopg", ""), autocommit=True) as conn:
        ids = dict(conn.execute("SELECT name, id FROM agents").fetchall())
        for pair in INCOMPATIBLE_ROLES:
            # admin second: a third admin would need a confirmation of its own
            first, second = sorted(pair, key=lambda role: role is Role.ADMIN)
            conn.execute("INSERT INTO agents (name) VALUES (%s)", (f"p-{first}-{second}",))
            agent = conn.execute(
                "SELECT id FROM agents WHERE name = %s", (f"p-{first}-{second}",)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO agent_grants (agent_id, role, status) VALUES (%s, %s, 'active')",
                (agent, first),
            )
            with pytest.raises(psycopg.errors.CheckViolation, match="cannot hold both"):
                conn.execute(
                    "INSERT INTO agent_grants (agent_id, role, status) VALUES (%s, %s, 'active')",
                    (agent, second),
                )
        # and a grant of approver made active without a second admin, once two exist
        conn.execute(
            "INSERT INTO agent_grants (agent_id, role, status) VALUES (%s, 'admin', 'active')",
            (ids["aud"],),
        )
        late = conn.execute("INSERT INTO agents (name) VALUES ('late') RETURNING id").fetchone()
        with pytest.raises(psycopg.errors.CheckViolation, match="second admin"):
            conn.execute(
                "INSERT INTO agent_grants (agent_id, role, status, granted_by)"
                " VALUES (%s, 'approver', 'active', %s)",
                (late[0], ids["root"]),
            )


@pytest.mark.parametrize("role", ["sika_app", "superuser"])
def test_identities_are_history_in_the_database(
    office: People, role: str, database_url: str, admin_database_url: str
) -> None:
    # sika_app lacks the privileges; even a superuser is refused by the triggers
    url = database_url if role == "sika_app" else admin_database_url
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        for statement in (
            "DELETE FROM agent_keys",
            "DELETE FROM agent_grants",
            "DELETE FROM agents WHERE name = 'aud'",
            "UPDATE agents SET name = 'root2' WHERE name = 'root'",
            "UPDATE agent_keys SET public_key = 'x'",
            "UPDATE agent_grants SET role = 'admin' WHERE role = 'auditor'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_audit_log_verify_detects_a_tampered_signature(
    office: People, admin_database_url: str
) -> None:
    # Given signed entries that verify
    _touch(office, office.sign("awa", "test.touch", {"batch_id": 7}))
    assert office.run(authority.verify_audit_log) == []
    target = office.run(
        lambda s: s.scalar(select(AuditEntry.id).where(AuditEntry.action == "test.touch"))
    )
    # When a superuser changes an entry's arguments and re-chains the whole log
    with psycopg.connect(admin_database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE audit_log SET arguments = '{\"batch_id\": 8}' WHERE id = %s", (target,)
        )
    _rechain(office, admin_database_url)
    # Then the chain looks intact but the signature gives it away, naming the entry
    assert office.run(audit.verify_chain) == []
    breaks = office.run(authority.verify_audit_log)
    assert [(b.entry_id, b.reason) for b in breaks] == [(target, "signature does not verify")]
    # And a signature swapped for another of awa's real signatures is caught the same way
    with psycopg.connect(admin_database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE audit_log SET signature = %s WHERE id = %s",
            (signing.sign(office.key("awa"), b"something else"), target),
        )
    reasons = [b.reason for b in office.run(authority.verify_audit_log) if b.entry_id == target]
    assert "entry altered" in reasons
    assert "signature does not verify" in reasons


def _rechain(people: People, admin_database_url: str) -> None:
    """Recompute every entry's hashes, as a superuser covering their tracks would (the
    chain's recipe is no secret)."""
    with unit_of_work(people.factory) as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        updates = []
        prev = audit.GENESIS
        for entry in rows:
            digest = hashlib.sha256(audit.canonical_json(entry.arguments)).digest()
            entry_hash = audit._entry_hash(
                prev, entry.at, entry.agent_name, entry.action, digest, audit.seal_of(entry)
            )
            updates.append((entry.id, prev, digest, entry_hash))
            prev = entry_hash
    with psycopg.connect(admin_database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        # the unique prev_hash would trip over an intermediate state: move everything aside
        conn.execute(
            "UPDATE audit_log SET prev_hash = sha256(prev_hash || 'x'::bytea),"
            " entry_hash = sha256(entry_hash || 'x'::bytea)"
        )
        for entry_id, prev_hash, digest, entry_hash in updates:
            conn.execute(
                "UPDATE audit_log SET prev_hash = %s, arguments_sha256 = %s, entry_hash = %s"
                " WHERE id = %s",
                (prev_hash, digest, entry_hash, entry_id),
            )


def test_requests_carry_json_types_only(office: People) -> None:
    with pytest.raises(ValidationError, match="float"):
        office.sign("awa", "test.touch", {"amount": 1.5})
    with pytest.raises(ValidationError, match="NUL"):
        office.sign("awa", "test.touch", {"note": "a\x00b"})
    # key order and tuples do not matter: the canonical form is signed
    request = office.sign("awa", "test.touch", {"b": [1, 2], "a": "x"})
    assert request.arguments == {"a": "x", "b": [1, 2]}
    with unit_of_work(office.factory) as session:
        agent = authorize(
            session,
            request,
            command="test.touch",
            arguments={"a": "x", "b": (1, 2)},
            roles=[Role.MAKER],
        )
        assert agent.name == "awa"
    with pytest.raises(PydanticError):
        SignedRequest(**{**request.model_dump(), "extra": 1})
