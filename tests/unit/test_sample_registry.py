"""The sample registry names farmers as the sandbox names their wallets (agripme/sample.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from agripme.sample import HEADER, VARIATIONS, sample_rows, vary, write_sample_registry
from core.settings import Settings
from payouts.names import name_score
from providers.msisdn import normalise
from providers.sandbox.people import holder_name, stranger_name

THRESHOLD = Settings.model_fields["preflight_name_threshold"].default


def test_every_farmer_is_named_after_the_wallet_a_few_with_harmless_variations() -> None:
    # Given 2,000 generated farmers
    rows = list(sample_rows(2_000, seed=11))
    varied = 0
    for row in rows:
        first, last, phone = row[1], row[2], row[3]
        holder = " ".join(holder_name(phone))
        # Then each one's registered name matches the wallet's KYC name
        assert name_score(f"{first} {last}", holder) >= THRESHOLD, row
        varied += (first, last) != holder_name(phone)
    # and about one in ten writes it differently
    assert 100 <= varied <= 300


@pytest.mark.parametrize("how", VARIATIONS)
def test_each_variation_still_matches(how: str) -> None:
    first, last = vary("Essowè", "TCHALLA", how)
    assert (first, last) != ("Essowè", "TCHALLA")
    assert name_score(f"{first} {last}", "Essowè TCHALLA") >= THRESHOLD


def test_test_numbers_and_mismatched_farmers(tmp_path: Path) -> None:
    # Given a registry with test numbers (000010 among them) and three more mismatched
    path = write_sample_registry(
        tmp_path / "farmers.csv", 40, test_numbers=("000002", "000010"), mismatched=3
    )
    with path.open(encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=";")
        assert tuple(next(reader)) == HEADER
        rows = list(reader)
    phones = [normalise(row[3]) for row in rows]
    # Then every number is distinct, and the first rows are the test numbers in order
    assert len(set(phones)) == 40
    assert phones[:7] == [
        "22897000002",
        "22891000002",
        "22897000010",
        "22891000010",
        "22896000010",
        "22890000010",
        "22898000010",
    ]
    # and those farmers carry the holder's own name: the sandbox's wallet on 000010 is in
    # someone else's name, far from it
    for row, phone in zip(rows[:7], phones[:7], strict=True):
        assert (row[1], row[2]) == holder_name(phone)
    for phone in phones[2:7]:
        assert name_score(" ".join(holder_name(phone)), " ".join(stranger_name(phone))) < 70


def test_more_mismatched_farmers_than_prefixes_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 10"):
        list(sample_rows(20, mismatched=11))
