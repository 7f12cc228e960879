"""Farmer registry import on real PostgreSQL: counts, duplicates, updates, encryption at rest."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from agripme import registry
from core.crypto import load_keys
from core.db import unit_of_work
from core.errors import ValidationError
from core.settings import load_settings

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
    return load_keys(load_settings())


def test_french_headers_bom_semicolon(session_factory, keys, tmp_path, database_url):
    # Given a French file with a BOM, ';' and decimal commas
    path = _write(tmp_path / "fr.csv", HEADER_FR, [
        "tg-001;Afi;Mensah;+228 90 12 34 56;maritime;Zio;Tsévié;Davié;maïs;1,25;",
        "TG-002;Koffi;Adjo;99 11 22 33;SAVANES;Tône;Dapaong;Nano;mil;3;tmoney",
    ])
    # When imported
    report = registry.import_farmers(session_factory, path, keys)
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
    assert registry.import_farmers(session_factory, first, keys).accepted == 2
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
    dry = registry.import_farmers(session_factory, path, keys, dry_run=True)
    real = registry.import_farmers(session_factory, path, keys)
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
    assert registry.import_farmers(session_factory, path, keys, dry_run=True).accepted == 1
    with unit_of_work(session_factory) as session, pytest.raises(Exception, match="no farmer"):
        registry.get_farmer(session, "TG-1", keys)


def test_missing_column_is_refused_before_any_row(session_factory, keys, tmp_path):
    path = _write(tmp_path / "a.csv", HEADER_EN.replace(",crop", ""), ["x"])
    with pytest.raises(ValidationError, match="no crop column"):
        registry.import_farmers(session_factory, path, keys)


def test_rotation_reencrypts_the_registry(session_factory, sika_env, tmp_path, monkeypatch):
    from core.crypto import add_dev_key_version

    keys = load_keys(load_settings())
    path = _write(tmp_path / "a.csv", HEADER_EN, ["TG-1,Afi,Mensah,90000001,Kara,K,C,V,m,1"])
    registry.import_farmers(session_factory, path, keys)
    add_dev_key_version(load_settings().home_dir)
    rotated = load_keys(load_settings())
    assert registry.reencrypt_farmers(session_factory, rotated) == 1
    assert registry.reencrypt_farmers(session_factory, rotated) == 0
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
    report = registry.import_farmers(session_factory, path, keys)
    elapsed = time.perf_counter() - started
    assert (report.accepted, report.rejected, report.duplicates) == (20_000, 0, 0)
    assert elapsed < 10, elapsed
    again = registry.import_farmers(session_factory, path, keys)
    assert (again.updated, again.unchanged) == (20_000, 20_000)
