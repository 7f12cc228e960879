"""The import's fast paths answer exactly what the slow ones do: the MSISDN check built
from libphonenumber's metadata, and batches prepared by a forked reader process."""

from __future__ import annotations

import os
import random
from pathlib import Path

import phonenumbers
import pytest

from agripme import registry
from bench.farmer_import import HEADER, phone_for, write_csv
from core.crypto import BlindIndex, Keyring, PiiKeys
from core.errors import ValidationError
from providers import msisdn


def _libphonenumber_says_mobile(digits: str) -> bool:
    number = phonenumbers.parse("+" + digits, None)
    return phonenumbers.is_valid_number(number) and (
        phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
    )


def test_fast_mobile_check_agrees_with_libphonenumber_on_every_prefix() -> None:
    is_mobile = msisdn._togo_mobile_test()
    assert is_mobile is not None
    rng = random.Random(228)
    for prefix in range(10, 100):
        for _ in range(40):
            nsn = f"{prefix}{rng.randrange(10**6):06d}"
            assert is_mobile(nsn) == _libphonenumber_says_mobile("228" + nsn), nsn


@pytest.mark.parametrize(
    "raw",
    [
        "90123456",
        "+228 90 12 34 56",
        "22890123456",
        "0022890123456",
        "94123456",
        "22123456",
        "2289012345",
        "+229 90 12 34 56",
        "9.0123456E+7",
        "٩٠١٢٣٤٥٦",
    ],
)
def test_normalise_matches_the_libphonenumber_path(raw: str, monkeypatch) -> None:
    def outcome() -> str:
        try:
            return msisdn.normalise(raw)
        except msisdn.InvalidMsisdn as exc:
            return f"error: {exc}"

    fast = outcome()
    monkeypatch.setattr(msisdn, "_togo_mobile_test", lambda: None)
    assert outcome() == fast


def _keys() -> PiiKeys:
    return PiiKeys(Keyring({1: os.urandom(32)}), BlindIndex(os.urandom(32)))


def test_reader_process_yields_the_batches_of_the_reader_thread(tmp_path: Path) -> None:
    path = tmp_path / "farmers.csv"
    write_csv(path, 1_200)
    with path.open("a", encoding="utf-8") as handle:  # an invalid row among valid ones
        handle.write(f"TG-X,Ama,Doe,{phone_for(5)},Lomé,Zio,C,V,maize,1,\n")
    keys = _keys()

    def batches(reader) -> list[tuple[object, ...]]:
        made = reader(registry._batches(registry.iter_file_rows(path), keys, 500))
        return [
            (b.invalid, b.numbers, b.nid_bidx, b.phone_bidx, b.copy_block.count(b"\n"))
            for b in made
        ]

    through_process = batches(registry._read_ahead_process)
    assert through_process == batches(registry._read_ahead_thread)
    assert [len(b[1]) for b in through_process] == [500, 500, 200]
    assert through_process[-1][0][0][0] == 1_201


def test_reader_process_raises_the_reading_error(tmp_path: Path) -> None:
    path = tmp_path / "farmers.csv"
    path.write_text(HEADER.replace(",crop", "") + "\n", encoding="utf-8")
    made = registry._read_ahead_process(
        registry._batches(registry.iter_file_rows(path), _keys(), 10)
    )
    with pytest.raises(ValidationError, match="no crop column"):
        list(made)
