"""Who holds a sandbox wallet: a Togolese name that follows from the phone number alone.

The sandbox names a wallet after its number, not after its seed, so that anything else
that knows the number can know the name: the sample registry (`agripme/sample.py`) names a
generated farmer with `holder_name(phone)`, and the operator's KYC look-up then agrees with
the registry, as it does for a real farmer paid on their own wallet. The test number
`000010` is the exception: its wallet belongs to someone else, named by `stranger_name`.
"""

from __future__ import annotations

import hashlib

from providers.msisdn import normalise

FIRST_NAMES = (
    "Kossi",
    "Komlan",
    "Kodjo",
    "Koffi",
    "Kokou",
    "Yao",
    "Kwami",
    "Edem",
    "Mawuli",
    "Sena",
    "Yawa",
    "Akossiwa",
    "Afi",
    "Ama",
    "Abla",
    "Ablavi",
    "Adjo",
    "Dzifa",
    "Enyonam",
    "Kafui",
    "Essi",
    "Mawuena",
    "Essowè",
    "Pyabalo",
    "Essodina",
    "Tchilabalo",
    "Akouvi",
    "Mazalo",
)
LAST_NAMES = (
    "AGBODJAN",
    "MENSAH",
    "LAWSON",
    "AMEGAH",
    "ADJOVI",
    "AKAKPO",
    "AMOUZOU",
    "DOGBE",
    "KPODAR",
    "TCHALLA",
    "AGBEKO",
    "ADZOH",
    "GBEASOR",
    "ASSOGBA",
    "ATTIOGBE",
    "KODJOVI",
    "AYITE",
    "SOSSOU",
    "DJAGBA",
    "BAWA",
    "KOMBATE",
    "TCHEDRE",
    "ABALO",
    "KPATCHA",
)


def _draws(msisdn: str, purpose: str) -> tuple[int, int]:
    """Two numbers drawn from the normalised number (and what they are drawn for)."""
    digest = hashlib.sha256(f"{purpose}|{normalise(msisdn)}".encode()).digest()
    return int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:16], "big")


def holder_name(msisdn: str) -> tuple[str, str]:
    """(first name, LAST NAME) of the person a number belongs to; the same for every
    spelling of the number, in every sandbox. Raises `InvalidMsisdn`."""
    first, last = _draws(msisdn, "holder")
    return FIRST_NAMES[first % len(FIRST_NAMES)], LAST_NAMES[last % len(LAST_NAMES)]


def stranger_name(msisdn: str) -> tuple[str, str]:
    """(first name, LAST NAME) of someone who is not `holder_name(msisdn)`: another family
    name, and a given name that does not even share its initial, so that no name matching
    can take one for the other. Raises `InvalidMsisdn`."""
    own_first, own_last = holder_name(msisdn)
    firsts = [n for n in FIRST_NAMES if n[0] != own_first[0]]
    lasts = [n for n in LAST_NAMES if n != own_last]
    first, last = _draws(msisdn, "stranger")
    return firsts[first % len(firsts)], lasts[last % len(lasts)]
