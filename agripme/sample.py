"""A synthetic farmer registry file, for the demo, the tests and the benchmarks.

Names and places are plausible for Togo; phone numbers are random under real Flooz and
T-Money prefixes, never on a sandbox test number unless asked for with `test_numbers` or
`mismatched`. A farmer is named after their phone number as the sandbox names the wallet
(`providers.sandbox.people.holder_name`), so the operator's KYC look-up agrees with the
registry; about one row in ten writes that name with a harmless variation that name
matching must still accept (`VARIATIONS`).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from unidecode import unidecode

from providers.sandbox.people import holder_name

HEADER = (
    "national_id",
    "first_name",
    "last_name",
    "phone",
    "region",
    "prefecture",
    "canton",
    "village",
    "crop",
    "area_ha",
)
FLOOZ_PREFIXES = ("96", "97", "98", "99", "79")
TMONEY_PREFIXES = ("90", "91", "92", "93", "70")
_PLACES = (
    ("Maritime", "Zio", "Tsévié", "Davié"),
    ("Maritime", "Vo", "Vogan", "Akoumapé"),
    ("Plateaux", "Kloto", "Kpalimé", "Kpadapé"),
    ("Plateaux", "Ogou", "Atakpamé", "Glei"),
    ("Centrale", "Tchaoudjo", "Sokodé", "Kparataou"),
    ("Kara", "Kozah", "Lama", "Pya"),
    ("Kara", "Binah", "Pagouda", "Kétao"),
    ("Savanes", "Tône", "Dapaong", "Nano"),
    ("Savanes", "Kpendjal", "Mandouri", "Borgou"),
)
_CROPS = ("maïs", "sorgho", "riz", "manioc", "igname", "soja", "coton")
# Sandbox test numbers (last six digits); what each does: docs/operators.md#sandbox.
TEST_SUFFIXES = (
    "000001",
    "000002",
    "000003",
    "000004",
    "000005",
    "000006",
    "000007",
    "000008",
    "000009",
    "000010",
    "000011",
    "000012",
)
# The suffix of a number whose wallet is in someone else's name (docs/operators.md#sandbox).
SOMEONE_ELSE = "000010"
# How a registry may write the holder's (first, last) name and still name the holder.
VARIATIONS = ("accents_dropped", "swapped", "initial", "upper")
VARIATION_RATE = 0.1


def vary(first: str, last: str, how: str) -> tuple[str, str]:
    """(first, last) as a registry clerk might have written them: accents dropped, the
    two names swapped, the first name as an initial (`K.`), or all in upper case."""
    if how == "accents_dropped":
        return unidecode(first), unidecode(last)
    if how == "swapped":
        return last, first
    if how == "initial":
        return f"{first[0]}.", last
    if how == "upper":
        return first.upper(), last.upper()
    raise ValueError(f"unknown variation {how!r}")


def _specials(test_numbers: Sequence[str], mismatched: int) -> list[str]:
    """National numbers of the rows on test numbers: each suffix of `test_numbers` under
    one Flooz and one T-Money prefix, then `mismatched` numbers ending 000010 under the
    prefixes not used yet (every number distinct)."""
    specials = [f"{prefix}{suffix}" for suffix in test_numbers for prefix in ("97", "91")]
    spare = [
        f"{prefix}{SOMEONE_ELSE}"
        for pair in zip(FLOOZ_PREFIXES, TMONEY_PREFIXES, strict=True)
        for prefix in pair
        if f"{prefix}{SOMEONE_ELSE}" not in specials
    ]
    if mismatched > len(spare):
        raise ValueError(f"at most {len(spare)} mismatched farmers: one per spare prefix")
    return list(dict.fromkeys(specials)) + spare[:mismatched]


def sample_rows(
    count: int, *, seed: int = 2016, test_numbers: Sequence[str] = (), mismatched: int = 0
) -> Iterator[tuple[str, ...]]:
    """`count` registry rows; the first ones take the given sandbox test suffixes, one on a
    Flooz and one on a T-Money prefix each, then `mismatched` numbers ending 000010 (whose
    wallets the sandbox names after someone else). Rows on test numbers carry the holder's
    name as the sandbox spells it; about one other row in ten a harmless variation."""
    rng = random.Random(seed)
    specials = _specials(test_numbers, mismatched)
    used: set[str] = set()
    for index in range(count):
        if index < len(specials):
            national = specials[index]
        else:
            while True:
                prefixes = FLOOZ_PREFIXES if rng.random() < 0.5 else TMONEY_PREFIXES
                # six random digits from 100000 up never hit a test number (0000xx)
                national = rng.choice(prefixes) + str(rng.randint(100_000, 999_999))
                if national not in used:
                    break
        used.add(national)
        first, last = holder_name(national)
        variation = rng.random() < VARIATION_RATE
        how = rng.choice(VARIATIONS)
        if variation and index >= len(specials):
            first, last = vary(first, last, how)
        region, prefecture, canton, village = rng.choice(_PLACES)
        hectares = rng.choice((0.5, 0.75, 1.2, 1.5, 1.8, 2.4, 3.0, 4.5))
        yield (
            f"TG-{seed}-{index + 1:07d}",
            first,
            last,
            f"+228 {national[:2]} {national[2:4]} {national[4:6]} {national[6:]}",
            region,
            prefecture,
            canton,
            village,
            rng.choice(_CROPS),
            f"{hectares}".replace(".", ","),
        )


def write_sample_registry(
    path: Path,
    count: int,
    *,
    seed: int = 2016,
    test_numbers: Sequence[str] = (),
    mismatched: int = 0,
) -> Path:
    """Write a `;`-separated registry CSV of `count` farmers to `path` (`sample_rows`)."""
    rows = sample_rows(count, seed=seed, test_numbers=test_numbers, mismatched=mismatched)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path
