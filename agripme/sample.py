"""A synthetic farmer registry file, for the demo, the tests and the benchmarks.

Names and places are plausible for Togo; phone numbers are random under real Flooz and
T-Money prefixes, never on a sandbox test number unless asked for with `test_numbers`.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

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
_FIRST = (
    "Kossi",
    "Komlan",
    "Afi",
    "Ama",
    "Yawa",
    "Essowè",
    "Pyabalo",
    "Akouvi",
    "Kodjo",
    "Abla",
    "Mawuli",
    "Enyonam",
    "Tchilabalo",
    "Essodina",
    "Dzifa",
    "Yao",
)
_LAST = (
    "AGBODJAN",
    "MENSAH",
    "LAWSON",
    "AMEGAH",
    "ADJOVI",
    "AKAKPO",
    "TCHALLA",
    "KPODAR",
    "GBEASOR",
    "ASSOGBA",
    "ATTIOGBE",
    "DOGBE",
    "KODJOVI",
    "AMOUZOU",
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
)


def sample_rows(
    count: int, *, seed: int = 2016, test_numbers: Sequence[str] = ()
) -> Iterator[tuple[str, ...]]:
    """`count` registry rows; the first ones take the given sandbox test suffixes, one on a
    Flooz and one on a T-Money prefix each."""
    rng = random.Random(seed)
    specials = [f"{prefix}{suffix}" for suffix in test_numbers for prefix in ("97", "91")]
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
        region, prefecture, canton, village = rng.choice(_PLACES)
        hectares = rng.choice((0.5, 0.75, 1.2, 1.5, 1.8, 2.4, 3.0, 4.5))
        yield (
            f"TG-{seed}-{index + 1:07d}",
            rng.choice(_FIRST),
            rng.choice(_LAST),
            f"+228 {national[:2]} {national[2:4]} {national[4:6]} {national[6:]}",
            region,
            prefecture,
            canton,
            village,
            rng.choice(_CROPS),
            f"{hectares}".replace(".", ","),
        )


def write_sample_registry(
    path: Path, count: int, *, seed: int = 2016, test_numbers: Sequence[str] = ()
) -> Path:
    """Write a `;`-separated registry CSV of `count` farmers to `path`."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(HEADER)
        writer.writerows(sample_rows(count, seed=seed, test_numbers=test_numbers))
    return path
