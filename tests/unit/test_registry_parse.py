"""Registry row validation: headers, regions, areas, phones and national IDs."""

from __future__ import annotations

import pytest

from agripme.models import Region
from agripme.registry import FarmerRow, fold, format_area, parse_area, validate_row

GOOD = {
    "national_id": " tg-001 ", "first_name": "Afi", "last_name": "Mensah",
    "phone": "+228 90 12 34 56", "region": "  SAVANES ", "prefecture": "Tône",
    "canton": "Dapaong", "village": "Nano", "crop": "mil", "area_ha": "1,25",
}


def test_a_good_row_is_normalised() -> None:
    row = validate_row(GOOD)
    assert isinstance(row, FarmerRow)
    assert (row.national_id, row.phone, row.region, row.area_m2) == (
        "TG-001", "22890123456", Region.SAVANES, 12_500
    )


@pytest.mark.parametrize(
    ("raw", "m2"), [("1", 10_000), ("0.5", 5_000), ("2,0001", 20_001), ("3.50000", 35_000)]
)
def test_area_is_exact_square_metres(raw: str, m2: int) -> None:
    assert parse_area(raw) == m2
    assert parse_area(format_area(m2)) == m2


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "", "1.23456", "0,0"])
def test_bad_areas_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_area(raw)


def test_every_bad_field_of_a_row_is_reported() -> None:
    errors = validate_row(
        {**GOOD, "national_id": "", "region": "Lomé", "phone": "9.01234E+10", "area_ha": "0"}
    )
    assert isinstance(errors, list)
    fields = {name for name, _ in errors}
    assert fields == {"national_id", "region", "phone", "area_ha"}
    assert "scientific notation" in dict(errors)["phone"]


def test_region_and_header_folding_ignore_case_and_accents() -> None:
    assert fold(" Numéro Carte ") == "numero_carte"
    row = validate_row({**GOOD, "region": "PLÂTEAUX"})
    assert isinstance(row, FarmerRow)
    assert row.region == Region.PLATEAUX
