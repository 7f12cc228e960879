"""`sika agent` and `sika audit log` as a user runs them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from core import signing
from tests.conftest import run_sika


def test_agent_add_list_and_audit_log(sika_env, tmp_path):
    # Given a generated agent and one registered by its public key
    result = run_sika("agent", "add", "ama", "--role", "maker", "--json", env=sika_env)
    assert result.code == 0, result.stderr
    key_file = Path(json.loads(result.stdout)["private_key"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pem = tmp_path / "kofi.pub"
    pem.write_bytes(signing.public_pem(signing.generate_private_key()))
    result = run_sika("agent", "add", "kofi", "--role", "approver", "--public-key", str(pem),
                      env=sika_env)
    assert result.code == 0, result.stderr
    # When listed
    listed = json.loads(run_sika("agent", "list", "--json", env=sika_env).stdout)
    assert [(a["name"], a["role"], a["private_key_here"]) for a in listed] == [
        ("ama", "maker", True), ("kofi", "approver", False)
    ]
    # Then both creations are in an intact audit log
    log = run_sika("audit", "log", "--json", "--verify", env=sika_env)
    assert log.code == 0, log.stderr
    data = json.loads(log.stdout)
    assert data["intact"]
    assert [e["action"] for e in data["entries"]] == ["agent.add"] * 2


def test_bad_role_and_missing_role_are_one_sentence(sika_env, tmp_path):
    bad = run_sika("agent", "add", "ama", "--role", "king", env=sika_env)
    assert bad.code == 1
    assert "unknown role 'king'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert run_sika("agent", "add", "ama", "--role", "auditor", env=sika_env).code == 0
    csv_file = tmp_path / "f.csv"
    csv_file.write_text(
        "national_id,first_name,last_name,phone,region,prefecture,canton,village,crop,area_ha\n"
    )
    refused = run_sika("agripme", "farmers", "import", str(csv_file), "--agent", "ama",
                       env=sika_env)
    assert refused.code == 1
    sentence = "error: agent 'ama' has the role auditor; this needs maker or admin"
    assert refused.stderr.strip() == sentence
