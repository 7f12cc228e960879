"""`sika agent` and `sika audit log` as people run them, each on their own laptop: their
own SIKA_KEYS_DIR, one shared Sika database."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import psycopg

from tests.conftest import Result, enrol_agents, run_sika


class Laptop:
    """One person's machine: Sika's environment with their own keys directory."""

    def __init__(self, sika_env: dict[str, str], tmp_path: Path, name: str) -> None:
        self.name = name
        self.keys = tmp_path / "laptops" / name
        self.env = {**sika_env, "SIKA_KEYS_DIR": str(self.keys)}
        self.public_key = tmp_path / f"{name}.pub"

    def sika(self, *args: str, code: int = 0, **env: str) -> Result:
        result = run_sika(*args, env={**self.env, **env})
        assert result.code == code, f"sika {' '.join(args)} → {result.code}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    def keygen(self) -> Path:
        """A key made here; its public half saved where an admin can read it."""
        result = self.sika("agent", "keygen", self.name)
        assert result.stdout.startswith("-----BEGIN PUBLIC KEY-----")
        self.public_key.write_text(result.stdout)
        return self.public_key

    def json(self, *args: str) -> dict:
        return json.loads(self.sika(*args, "--json", "--agent", self.name).stdout)


def _refusal(result: Result) -> str:
    """The one sentence a refused command printed."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_keys_live_with_people_and_bootstrap_happens_once(sika_env, tmp_path):
    # Given root and awa, each making a key on their own laptop
    root, awa = Laptop(sika_env, tmp_path, "root"), Laptop(sika_env, tmp_path, "awa")
    root.keygen()
    awa.keygen()
    # Then each private key is theirs alone: mode 0600 in a 0700 directory of their own
    for person in (root, awa):
        key = person.keys / f"{person.name}.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(person.keys.stat().st_mode) == 0o700
        assert [p.name for p in person.keys.iterdir()] == [f"{person.name}.pem"]
    # And a second keygen does not overwrite a key
    assert "a key already exists" in _refusal(root.sika("agent", "keygen", "root", code=1))
    # When root bootstraps, then enrols awa
    created = root.sika("agent", "bootstrap", "root", "--public-key", str(root.public_key),
                        "--json")  # fmt: skip
    assert json.loads(created.stdout)["grants"] == {"admin": "active"}
    root.sika("agent", "add", "awa", "--role", "maker", "--public-key", str(awa.public_key),
              "--agent", "root")  # fmt: skip
    # Then bootstrap never works again
    again = awa.sika("agent", "bootstrap", "awa", "--public-key", str(awa.public_key), code=1)
    assert "agents already exist" in _refusal(again)
    # And nothing under SIKA_HOME holds an agent's private key
    home = Path(sika_env["SIKA_HOME"])
    secrets = {(p.keys / f"{p.name}.pem").read_bytes() for p in (root, awa)}
    if home.exists():
        stored = [f.read_bytes() for f in home.rglob("*") if f.is_file()]
        assert not any(secret in blob for secret in secrets for blob in stored)
    assert not (home / "agents").exists()
    # And keygen refuses to write a person's key under SIKA_HOME
    inside = root.sika("agent", "keygen", "kofi", code=1, SIKA_KEYS_DIR=str(home / "keys"))
    assert "lies under SIKA_HOME" in _refusal(inside)


def test_who_may_enrol_confirm_and_act(sika_env, tmp_path, admin_database_url):
    root, adm2, awa, kodjo = (
        Laptop(sika_env, tmp_path, name) for name in ("root", "adm2", "awa", "kodjo")
    )
    for person in (root, adm2, awa, kodjo):
        person.keygen()
    root.sika("agent", "bootstrap", "root", "--public-key", str(root.public_key))
    for person, role in ((adm2, "admin"), (awa, "maker")):
        root.sika("agent", "add", person.name, "--role", role,
                  "--public-key", str(person.public_key), "--agent", "root")  # fmt: skip
    # A maker cannot enrol anyone
    minted = awa.sika("agent", "add", "eve", "--role", "approver",
                      "--public-key", str(kodjo.public_key), "--agent", "awa", code=1)  # fmt: skip
    assert _refusal(minted) == "error: agent 'awa' holds maker; agent.add needs admin"
    # With two admins, an approver grant waits for the second
    added = root.sika("agent", "add", "kodjo", "--role", "approver", "--json",
                      "--public-key", str(kodjo.public_key), "--agent", "root")  # fmt: skip
    assert json.loads(added.stdout)["grants"] == {"approver": "pending"}
    assert "sika agent confirm kodjo" in added.stderr
    own = root.sika("agent", "confirm", "kodjo", "--agent", "root", code=1)
    assert "another admin must confirm it" in _refusal(own)
    adm2.sika("agent", "confirm", "kodjo", "--agent", "adm2")
    # Acting under root's name from awa's laptop: she has no key of root's
    forged = awa.sika("agent", "revoke", "kodjo", "--agent", "root", code=1)
    assert "no private key for agent 'root'" in _refusal(forged)
    # and pointing SIKA_AGENT_KEY at her own key does not make her root
    own_key = str(awa.keys / "awa.pem")
    forged = awa.sika("agent", "revoke", "kodjo", "--agent", "root", code=1,
                      SIKA_AGENT_KEY=own_key)  # fmt: skip
    assert "does not verify with the key of agent 'root'" in _refusal(forged)
    # The roster: roles, grant status, who granted and confirmed, fingerprints
    listed = {a["name"]: a for a in kodjo.json("agent", "list")}
    assert sorted(listed) == ["adm2", "awa", "kodjo", "root"]
    grant = listed["kodjo"]["grants"][0]
    seen = (grant["role"], grant["status"], grant["granted_by"], grant["confirmed_by"])
    assert seen == ("approver", "active", "root", "adm2")
    assert listed["kodjo"]["roles"] == ["approver"]
    assert len(listed["kodjo"]["fingerprint"]) == 16
    # Every act is in the audit log with its signed request, and everything verifies
    log = json.loads(root.sika("audit", "log", "--json", "--verify").stdout)
    assert log["intact"]
    actions = [(e["action"], e["agent"]) for e in log["entries"]]
    assert actions == [
        ("agent.bootstrap", "root"),
        ("agent.add", "root"),
        ("agent.add", "root"),
        ("agent.add", "root"),
        ("agent.confirm", "adm2"),
        ("agent.list", "kodjo"),
    ]
    assert all(e["signature"] and e["request_id"] for e in log["entries"][1:])
    # When a superuser alters the signature of the confirmation
    confirm = next(e["id"] for e in log["entries"] if e["action"] == "agent.confirm")
    with psycopg.connect(admin_database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE audit_log SET signature = %s WHERE id = %s",
            (log["entries"][1]["signature"], confirm),
        )
    # Then verification fails with exit 3, naming the entry
    broken = root.sika("audit", "log", "--verify", code=3)
    assert f"entry {confirm}: signature does not verify" in broken.stderr
    assert f"first at entry {confirm}" in broken.stderr


def test_revocation_and_key_rotation_take_effect_at_once(sika_env, tmp_path):
    root, awa, kodjo = (Laptop(sika_env, tmp_path, name) for name in ("root", "awa", "kodjo"))
    for person in (root, awa, kodjo):
        person.keygen()
    root.sika("agent", "bootstrap", "root", "--public-key", str(root.public_key))
    for person, role in ((awa, "maker"), (kodjo, "approver")):
        root.sika("agent", "add", person.name, "--role", role,
                  "--public-key", str(person.public_key), "--agent", "root")  # fmt: skip
    # When kodjo makes a new key and rotates to it, signing with the old one
    new_key = kodjo.keys / "kodjo-2026.pem"
    new_public = tmp_path / "kodjo-2026.pub"
    new_public.write_text(
        kodjo.sika("agent", "keygen", "kodjo", SIKA_AGENT_KEY=str(new_key)).stdout
    )
    kodjo.sika("agent", "rotate-key", "kodjo", "--public-key", str(new_public), "--agent", "kodjo")
    # Then the old key acts no more, the new one does
    stale = kodjo.sika("agent", "list", "--agent", "kodjo", code=1)
    assert "does not verify with the key of agent 'kodjo'" in _refusal(stale)
    kodjo.sika("agent", "list", "--agent", "kodjo", SIKA_AGENT_KEY=str(new_key))
    # When root revokes awa
    root.sika("agent", "revoke", "awa", "--agent", "root")
    # Then awa is refused at once, by every command
    gone = awa.sika("agent", "list", "--agent", "awa", code=1)
    assert "agent 'awa' was revoked" in _refusal(gone)
    csv_file = tmp_path / "f.csv"
    csv_file.write_text(
        "national_id,first_name,last_name,phone,region,prefecture,canton,village,crop,area_ha\n"
    )
    named = awa.sika("agripme", "farmers", "import", str(csv_file), "--agent", "awa", code=1)
    assert "revoked" in _refusal(named)
    # And the whole log still verifies, each signature against the key valid at the time
    assert json.loads(root.sika("audit", "log", "--json", "--verify").stdout)["intact"]


def test_bad_input_and_missing_roles_are_one_sentence(sika_env, tmp_path):
    root = Laptop(sika_env, tmp_path, "root")
    root.keygen()
    root.sika("agent", "bootstrap", "root", "--public-key", str(root.public_key))
    bad = root.sika("agent", "add", "ama", "--role", "king", "--public-key",
                    str(root.public_key), "--agent", "root", code=1)  # fmt: skip
    assert "unknown role 'king'" in _refusal(bad)
    private = root.sika("agent", "add", "ama", "--role", "maker", "--public-key",
                        str(root.keys / "root.pem"), "--agent", "root", code=1)  # fmt: skip
    assert "holds a private key" in _refusal(private)
    nobody = root.sika("agent", "list", code=1)
    assert _refusal(nobody) == "error: no acting agent: pass --agent NAME or set SIKA_AGENT"
    # a programme's command checks the role of the signed request, in one sentence
    enrol_agents(root.env, {"ama": "auditor"})
    csv_file = tmp_path / "f.csv"
    csv_file.write_text(
        "national_id,first_name,last_name,phone,region,prefecture,canton,village,crop,area_ha\n"
    )
    refused = root.sika("agripme", "farmers", "import", str(csv_file), "--agent", "ama", code=1)
    assert _refusal(refused) == (
        "error: agent 'ama' holds auditor; agripme.farmers.import needs maker"
    )
