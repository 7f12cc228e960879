"""`sika agripme farmers import` and `show` as a user runs them."""

from __future__ import annotations

import json

from tests.conftest import enrol_agents, run_sika

FRENCH = (
    "\ufeffNuméro Carte;Prénom;Nom;Téléphone;Région;Préfecture;Canton;Village;Culture;"
    "Superficie_ha\n"
    "TG-001;Afi;Mensah;+228 90 12 34 56;Maritime;Zio;Tsévié;Davié;maïs;1,25\n"
)
ENGLISH = (
    "national_id,first_name,last_name,phone,region,prefecture,canton,village,crop,area_ha\n"
    "TG-002,Koffi,Adjo,99112233,Kara,Kozah,Lama,X,rice,2\n"
    "TG-003,Ama,Doe,9.01234E+10,Kara,Kozah,Lama,X,rice,2\n"
)


def _agents(env: dict[str, str]) -> None:
    enrol_agents(env, {"ama": "maker", "aud": "auditor"})


def test_import_exit_codes_json_and_stderr(sika_env, tmp_path):
    _agents(sika_env)
    french, english = tmp_path / "fr.csv", tmp_path / "en.csv"
    french.write_text(FRENCH, encoding="utf-8")
    english.write_text(ENGLISH, encoding="utf-8")
    # A clean file imports with exit 0
    ok = run_sika("agripme", "farmers", "import", str(french), "--agent", "ama", "--json",
                  env=sika_env)
    assert ok.code == 0, ok.stderr
    assert json.loads(ok.stdout)["accepted"] == 1
    # A dry run of a file with one bad row: exit 1, same counts, nothing written
    dry = run_sika("agripme", "farmers", "import", str(english), "--dry-run", "--json",
                   env=sika_env)
    assert dry.code == 1
    report = json.loads(dry.stdout)
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert report["errors"][0]["row"] == 2
    assert report["errors"][0]["field"] == "phone"
    assert run_sika("agripme", "farmers", "show", "TG-002", env=sika_env).code == 1
    # Without --json: a table on stdout, the errors on stderr
    real = run_sika("agripme", "farmers", "import", str(english), "--agent", "ama", env=sika_env)
    assert real.code == 1
    assert "accepted" in real.stdout
    assert "row 2: phone:" in real.stderr
    assert "scientific notation" in real.stderr


def test_show_is_signed_masks_and_reveal_needs_an_auditor_and_is_logged(sika_env, tmp_path):
    _agents(sika_env)
    french = tmp_path / "fr.csv"
    french.write_text(FRENCH, encoding="utf-8")
    assert run_sika("agripme", "farmers", "import", str(french), "--agent", "ama",
                    env=sika_env).code == 0
    # decrypting a farmer is a signed request: no agent, no look
    anonymous = run_sika("agripme", "farmers", "show", "tg-001", env=sika_env)
    assert anonymous.code == 1
    assert "no acting agent" in anonymous.stderr
    shown = json.loads(run_sika("agripme", "farmers", "show", "tg-001", "--json",
                                "--agent", "ama", env=sika_env).stdout)
    assert shown["phone"] == "22890****56"
    assert shown["last_name"] == "Mensah"
    refused = run_sika("agripme", "farmers", "show", "TG-001", "--reveal", "--agent", "ama",
                       env=sika_env)
    assert refused.code == 1
    assert "agent 'ama' holds maker; agripme.farmers.show needs auditor" in refused.stderr
    assert "Traceback" not in refused.stderr
    revealed = run_sika("agripme", "farmers", "show", "TG-001", "--reveal", "--json",
                        env={**sika_env, "SIKA_AGENT": "aud"})
    assert json.loads(revealed.stdout)["phone"] == "22890123456"
    log = json.loads(run_sika("audit", "log", "--json", env=sika_env).stdout)
    assert [(e["action"], e["agent"]) for e in log[-2:]] == [
        ("agripme.farmers.show", "ama"), ("agripme.farmers.show", "aud")
    ]
    assert log[-1]["arguments"]["reveal"] is True
    assert "22890123456" not in json.dumps(log)
    assert "TG-001" not in json.dumps(log)


def test_import_needs_a_maker_s_signed_request(sika_env, tmp_path):
    _agents(sika_env)
    french = tmp_path / "fr.csv"
    french.write_text(FRENCH, encoding="utf-8")
    refused = run_sika("agripme", "farmers", "import", str(french), "--agent", "aud",
                       env=sika_env)
    assert refused.code == 1
    assert "needs maker" in refused.stderr
    assert run_sika("agripme", "farmers", "show", "TG-001", "--agent", "ama",
                    env=sika_env).code == 1
