"""Farmer registry import on real PostgreSQL: counts, duplicates, updates, encryption at rest,
and who may import, look up and re-encrypt (each a signed, logged request)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from agripme import registry
from core.audit import audit_entries
from core.authority import signed_by
from core.crypto import PiiKeys, load_keys
from core.db import unit_of_work
from core.errors import AuthorizationError, ValidationError
from core.settings import load_settings
from tests.conftest import enrol_agents

HEADER_EN = "national_id,first_name,last_name,phone,region,prefecture,canton,village,crop,area_ha"
HEADER_FR = (
    "\ufeffNuméro Carte;Prénom;Nom;Téléphone;Région;Préfecture;Canton;Village;Culture;"
    "Superficie_ha;Opérateur"
)


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def keys(sika_env):
    """Sika's keys, and the agents ama (maker), aud (auditor), kodjo (approver), root (admin)."""
    enrol_agents(sika_env, {"ama": "maker", "aud": "auditor", "kodjo": "approver", "root": "admin"})
    return load_keys(load_settings())


def _import(factory, path: Path, keys: PiiKeys, agent: str = "ama") -> registry.ImportReport:
    request = signed_by(agent, registry.FARMERS_IMPORT, registry.import_arguments(path))
    return registry.import_farmers(factory, path, keys, request=request)


def _dry(factory, path: Path, keys: PiiKeys) -> registry.ImportReport:
    return registry.import_farmers(factory, path, keys, request=None, dry_run=True)


def test_french_headers_bom_semicolon(session_factory, keys, tmp_path, database_url):
    # Given a French file with a BOM, ';' and decimal commas
    path = _write(tmp_path / "fr.csv", HEADER_FR, [
        "tg-001;Afi;Mensah;+228 90 12 34 56;maritime;Zio;Tsévié;Davié;maïs;1,25;",
        "TG-002;Koffi;Adjo;99 11 22 33;SAVANES;Tône;Dapaong;Nano;mil;3;tmoney",
    ])
    # When imported
    report = _import(session_factory, path, keys)
    # Then both are in, and findable through the blind index
    assert (report.accepted, report.rejected, report.ok) == (2, 0, True)
    with unit_of_work(session_factory) as session:
        farmer = registry.get_farmer(session, "TG-001 ", keys)
        assert registry.farmer_msisdn(farmer, keys) == "22890123456"
        assert (farmer.region, farmer.area_m2) == ("Maritime", 12_500)
        second = registry.get_farmer(session, "tg-002", keys)
        assert registry.farmer_operator(second, keys) == "tmoney"  # override beats the prefix
        assert registry.find_by_phone(session, "99112233", keys).id == second.id
    # And no personal data is stored in plaintext
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        dump = " ".join(str(row) for row in conn.execute("SELECT f::text FROM farmers f"))
    for secret in ("22890123456", "90123456", "Mensah", "Afi", "TG-001", "Koffi"):
        assert secret not in dump
        assert secret.encode().hex() not in dump


def test_bad_fields_duplicates_updates_and_dry_run(session_factory, keys, tmp_path):
    # Given a known farmer
    first = _write(tmp_path / "a.csv", HEADER_EN, [
        "TG-1,Afi,Mensah,90000001,Maritime,Zio,C,V,maize,1.5",
        "TG-9,Yao,Kossi,90000009,Kara,Kozah,C,V,maize,2",
    ])
    assert _import(session_factory, first, keys).accepted == 2
    # When a file holds every kind of problem
    path = _write(tmp_path / "b.csv", HEADER_EN, [
        "TG-1,Afi,Mensah-Doe,90000001,Maritime,Zio,C,V,maize,1.5",  # 1 update
        "TG-2,Ama,Doe,90000002,Lomé,Zio,C,V,maize,1",               # 2 bad region
        "TG-3,Ama,Doe,90000003,Kara,Zio,C,V,maize,-1",              # 3 negative area
        "TG-4,Ama,Doe,90000004,Kara,Zio,C,V,maize,0",               # 4 zero area
        "TG-5,Ama,Doe,90000005,Kara,Zio,C,V,maize,abc",             # 5 non-numeric area
        "TG-6,Ama,Doe,9.0000006E+10,Kara,Zio,C,V,maize,1",          # 6 scientific phone
        "TG-7,Ama,Doe,12345,Kara,Zio,C,V,maize,1",                  # 7 invalid phone
        ",Ama,Doe,90000008,Kara,Zio,C,V,maize,1",                   # 8 missing national id
        "TG-10,Ama,Doe,90000010,Kara,Zio,C,V,maize,1",              # 9 accepted
        "TG-10,Ama,Doe,90000011,Kara,Zio,C,V,maize,1",              # 10 same id in file
        "TG-11,Ama,Doe,90000010,Kara,Zio,C,V,maize,1",              # 11 phone earlier in file
        "TG-12,Ama,Doe,90000009,Kara,Zio,C,V,maize,1",              # 12 phone held by TG-9
        "TG-9,Yao,Kossi,90000009,Kara,Kozah,C,V,maize,2",           # 13 unchanged
    ])
    dry = _dry(session_factory, path, keys)
    real = _import(session_factory, path, keys)
    # Then each is reported with its row and field, and the dry run predicted it exactly
    errors = {(e.row, e.field) for e in real.errors}
    assert errors == {
        (2, "region"), (3, "area_ha"), (4, "area_ha"), (5, "area_ha"), (6, "phone"),
        (7, "phone"), (8, "national_id"), (10, "national_id"), (11, "phone"), (12, "phone"),
    }
    assert "scientific notation" in next(e.message for e in real.errors if e.row == 6)
    counts = (real.accepted, real.updated, real.unchanged, real.rejected, real.duplicates)
    assert counts == (1, 2, 1, 7, 3)
    assert dry.as_dict() | {"dry_run": False} == real.as_dict()
    with unit_of_work(session_factory) as session:
        farmer = registry.get_farmer(session, "TG-1", keys)
        assert registry.farmer_view(farmer, keys)["last_name"] == "Mensah-Doe"
        assert registry.farmer_view(farmer, keys)["phone"] == "22890****01"


def test_dry_run_changes_nothing(session_factory, keys, tmp_path):
    path = _write(tmp_path / "a.csv", HEADER_EN, ["TG-1,Afi,Mensah,90000001,Kara,K,C,V,m,1"])
    assert _dry(session_factory, path, keys).accepted == 1
    with unit_of_work(session_factory) as session, pytest.raises(Exception, match="no farmer"):
        registry.get_farmer(session, "TG-1", keys)


def test_missing_column_is_refused_before_any_row(session_factory, keys, tmp_path):
    path = _write(tmp_path / "a.csv", HEADER_EN.replace(",crop", ""), ["x"])
    with pytest.raises(ValidationError, match="no crop column"):
        _import(session_factory, path, keys)


def test_rotation_reencrypts_the_registry(session_factory, keys, tmp_path, monkeypatch):
    from core.crypto import add_dev_key_version

    path = _write(tmp_path / "a.csv", HEADER_EN, ["TG-1,Afi,Mensah,90000001,Kara,K,C,V,m,1"])
    _import(session_factory, path, keys)
    add_dev_key_version(load_settings().home_dir)
    rotated = load_keys(load_settings())

    def reencrypt(agent: str) -> int:
        arguments = registry.reencrypt_arguments(rotated)
        request = signed_by(agent, registry.FARMERS_REENCRYPT, arguments)
        return registry.reencrypt_farmers(session_factory, request, rotated)

    # re-encrypting decrypts everyone's data: key management, the admin's
    with pytest.raises(AuthorizationError, match="needs admin"):
        reencrypt("ama")
    assert reencrypt("root") == 1
    assert reencrypt("root") == 0
    with unit_of_work(session_factory) as session:
        farmer = registry.get_farmer(session, "TG-1", rotated)
        assert rotated.keyring.version_of(farmer.phone_enc) == 2
        assert registry.farmer_msisdn(farmer, rotated) == "22890000001"


def test_twenty_thousand_rows_import_quickly(session_factory, keys, tmp_path):
    rows = [
        f"TG-{i},Prenom{i},Nom{i},90{i:06d},Plateaux,Kloto,C,V,maize,{1 + i % 7},"
        for i in range(20_000)
    ]
    path = _write(tmp_path / "big.csv", HEADER_EN + ",operator", rows)
    started = time.perf_counter()
    report = _import(session_factory, path, keys)
    elapsed = time.perf_counter() - started
    assert (report.accepted, report.rejected, report.duplicates) == (20_000, 0, 0)
    assert elapsed < 10, elapsed
    again = _import(session_factory, path, keys)
    assert (again.updated, again.unchanged) == (20_000, 20_000)


def test_import_is_a_makers_signed_request_of_that_very_file(session_factory, keys, tmp_path):
    path = _write(tmp_path / "a.csv", HEADER_EN, ["TG-1,Afi,Mensah,90000001,Kara,K,C,V,m,1"])
    other = _write(tmp_path / "b.csv", HEADER_EN, ["TG-2,Ama,Doe,90000002,Kara,K,C,V,m,1"])
    # no request, another role's, or a request naming another file: refused, nothing in
    with pytest.raises(AuthorizationError, match="maker's signed request"):
        registry.import_farmers(session_factory, path, keys, request=None)
    for agent in ("aud", "root", "kodjo"):
        with pytest.raises(AuthorizationError, match="needs maker"):
            _import(session_factory, path, keys, agent)
    for_other = signed_by("ama", registry.FARMERS_IMPORT, registry.import_arguments(other))
    with pytest.raises(AuthorizationError, match="signed arguments"):
        registry.import_farmers(session_factory, path, keys, request=for_other)
    with unit_of_work(session_factory) as session, pytest.raises(Exception, match="no farmer"):
        registry.get_farmer(session, "TG-1", keys)
    # the maker's request of the file imports it, and the audit log names the file
    assert _import(session_factory, path, keys).accepted == 1
    with unit_of_work(session_factory) as session:
        [entry] = audit_entries(session, limit=1)
        assert (entry.action, entry.agent_name) == ("agripme.farmers.import", "ama")
        assert entry.arguments == registry.import_arguments(path)


def test_showing_a_farmer_is_a_signed_logged_request(session_factory, keys, tmp_path):
    path = _write(tmp_path / "a.csv", HEADER_EN, ["TG-1,Afi,Mensah,90000001,Kara,K,C,V,m,1"])
    _import(session_factory, path, keys)
    with unit_of_work(session_factory) as session:
        farmer_id = registry.get_farmer(session, "TG-1", keys).id

    def show(agent: str, *, reveal: bool = False) -> dict:
        arguments = registry.show_arguments(farmer_id, reveal=reveal)
        request = signed_by(agent, registry.FARMERS_SHOW, arguments)
        with unit_of_work(session_factory) as session:
            return registry.show_farmer(session, request, farmer_id, keys, reveal=reveal)

    # a maker, an approver or an auditor sees the farmer, phone masked
    for agent in ("ama", "kodjo", "aud"):
        assert show(agent)["phone"] == "22890****01"
    # the admin manages people and keys, not farmers
    with pytest.raises(AuthorizationError, match="needs maker or approver or auditor"):
        show("root")
    # only an auditor sees the whole number
    with pytest.raises(AuthorizationError, match="needs auditor"):
        show("ama", reveal=True)
    assert show("aud", reveal=True)["phone"] == "22890000001"
    # and every look is in the audit log, by farmer id, without the personal data
    with unit_of_work(session_factory) as session:
        shown = [e for e in audit_entries(session) if e.action == "agripme.farmers.show"]
    assert [(e.agent_name, e.arguments["reveal"]) for e in shown] == [
        ("ama", False), ("kodjo", False), ("aud", False), ("aud", True)
    ]
    assert all(e.arguments["farmer_id"] == farmer_id for e in shown)
    assert not any("TG-1" in str(e.arguments) or "Mensah" in str(e.arguments) for e in shown)
