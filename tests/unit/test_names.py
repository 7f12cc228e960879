"""Name matching for the pre-flight: a payee's registered name against the wallet holder's,
as Togolese names are written (payouts/names.py)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.settings import Settings
from payouts.names import name_score, names_match, words
from providers.msisdn import normalise
from providers.sandbox.people import FIRST_NAMES, LAST_NAMES, holder_name, stranger_name

THRESHOLD = Settings.model_fields["preflight_name_threshold"].default


def test_the_default_threshold_is_85() -> None:
    assert THRESHOLD == 85


@pytest.mark.parametrize(
    ("registered", "holder"),
    [
        # case and accents
        ("Kossi Mensah", "KOSSI MENSAH"),
        ("Essowè Tchalla", "ESSOWE TCHALLA"),
        ("Akouvi Dogbé", "akouvi dogbe"),
        # word order: family name first
        ("Kossi Mensah", "MENSAH Kossi"),
        ("Kossi Yao Mensah", "Mensah Yao Kossi"),
        # punctuation and hyphens
        ("Kossi-Yao Mensah", "Kossi Yao MENSAH"),
        ("Ama d'Almeida", "Ama D ALMEIDA"),
        # transliteration variants
        ("Kodjo Amah", "Codjo Ama"),
        ("Dzifa Adjovi", "Zifa Ajovi"),
        ("Kouassi Akakpo", "Kwasi Akakpo"),
        ("Quassi Akakpo", "Kwassi Akakpo"),
        ("Mawuli Sossou", "Maouli Sosu"),
        ("Philomène Lawson", "Filomene Lawson"),
        ("Enyonam Gnassingbé", "Egnonam Nyassingbe"),
        ("Ɖɔkɔ Amegah", "Doko Amegah"),
        # an initial for a given name
        ("K. Mensah", "Kossi Mensah"),
        ("C. Agbodjan", "Célestin Agbodjan"),
        ("K Y Mensah", "Kossi Yao Mensah"),
        # a middle name left out
        ("Kossi Mensah", "Kossi Yao Mensah"),
        ("Ama Mensah", "Ama Dzifa Akouvi Mensah"),
        # a letter more or less
        ("Koffi Agbodjan", "Koffi Agbodjian"),
        ("Yao Mensah", "Yawo Mensah"),
    ],
)
def test_the_same_person_written_another_way_matches(registered: str, holder: str) -> None:
    # Given two spellings of one person's name
    # When they are scored, either way round
    # Then both directions score alike, at or above the default threshold
    score = name_score(registered, holder)
    assert score == name_score(holder, registered)
    assert score >= THRESHOLD, (registered, holder, score)
    assert names_match(registered, holder, THRESHOLD)
    assert names_match(holder, registered, THRESHOLD)


@pytest.mark.parametrize(
    ("registered", "holder", "below"),
    [
        # someone else altogether: far below
        ("Kossi Mensah", "Abla Lawson", 30),
        ("Essowè Tchalla", "Dzifa Amouzou", 30),
        ("Ama Adjovi", "Kodjo Kpodar", 30),
        # a relative: the same family name, another given name
        ("Kossi Mensah", "Komlan Mensah", 60),
        ("Ama Mensah", "Afi Mensah", 60),
        ("Kodjo Mensah", "Kokou Mensah", THRESHOLD),
        ("Koffi Mensah", "Kokou Mensah", THRESHOLD),
        ("Yawa Akakpo", "Yao Akakpo", THRESHOLD),
        # a name derived from another is another person's
        ("Kossi Mensah", "Akossiwa Mensah", THRESHOLD),
        ("Kossi Mensah", "Kossiwa Mensah", THRESHOLD),
        ("Abla Mensah", "Ablavi Mensah", THRESHOLD),
        # the same given name in another family
        ("Kossi Mensah", "Kossi Lawson", THRESHOLD),
        # a family name alone names nobody in particular
        ("Mensah", "Kossi Mensah", THRESHOLD),
        # an initial that is not the given name's
        ("A. Mensah", "Kossi Mensah", 60),
    ],
)
def test_another_person_does_not_match(registered: str, holder: str, below: int) -> None:
    # Given the names of two different people
    # When they are scored, either way round
    # Then both directions score alike, below the bound (the threshold or far below)
    score = name_score(registered, holder)
    assert score == name_score(holder, registered)
    assert score < below, (registered, holder, score)
    assert not names_match(registered, holder, THRESHOLD)
    assert not names_match(holder, registered, THRESHOLD)


def test_each_rule_scores_as_documented() -> None:
    # an exact match, an initial, a missing middle name, a one-word name
    assert name_score("Kossi Mensah", "Kossi Mensah") == 100
    assert name_score("K. Mensah", "Kossi Mensah") == 90
    assert name_score("Kossi Mensah", "Kossi Yao Mensah") == 95
    assert name_score("Mensah", "Kossi Mensah") == 70
    # nothing to compare scores nothing
    assert name_score("", "Kossi Mensah") == 0
    assert name_score("Kossi Mensah", " - . ") == 0


def test_words_are_folded_and_sorted() -> None:
    assert words("Codjo-AMAH, Célestin") == (("ama", "a"), ("celestin", "c"), ("kojo", "c"))
    assert words("Dzifa Kwassi Philomène") == (("filomene", "p"), ("kuasi", "k"), ("zifa", "d"))


def test_the_sandboxs_stranger_never_passes_for_the_holder() -> None:
    # Given any holder and any stranger the sandbox could name (another family name, a
    # given name with another initial)
    worst = max(
        name_score(f"{f1} {l1}", f"{f2} {l2}")
        for f1, l1, f2, l2 in itertools.product(FIRST_NAMES, LAST_NAMES, FIRST_NAMES, LAST_NAMES)
        if f1[0] != f2[0] and l1 != l2
    )
    # Then no pair comes near the threshold
    assert worst < 70
    # and the 000010 wallets under every prefix are named after someone else
    for prefix in ("96", "97", "98", "99", "79", "90", "91", "92", "93", "70"):
        number = f"{prefix}000010"
        holder, stranger = holder_name(number), stranger_name(number)
        assert name_score(" ".join(holder), " ".join(stranger)) < 70


def test_holder_name_depends_on_the_number_only() -> None:
    # every spelling of one number gives one name, and numbers spread over the lists
    spellings = ("+228 90 12 34 56", "0022890123456", "90.12.34.56", "22890123456")
    assert len({holder_name(n) for n in spellings}) == 1
    names = {holder_name(normalise(f"9{i:07d}")) for i in range(1_000, 1_400)}
    assert len({first for first, _ in names}) == len(FIRST_NAMES)
    assert len({last for _, last in names}) == len(LAST_NAMES)


def test_long_names_are_paired_greedily_yet_symmetric_and_order_free() -> None:
    # Given names of more words than are paired exactly
    registered = "Kossi Yao Komlan Edem Mawuli Sena Kodjo Koffi Kokou Mensah"
    holder = "MENSAH Kokou Koffi Codjo Sena Mawuli Edem Komlan Yawo Kossi"
    # Then the score still ignores word order and which name comes first
    score = name_score(registered, holder)
    assert score >= THRESHOLD
    assert score == name_score(holder, registered)
    assert score == name_score(" ".join(reversed(registered.split())), holder)


# --- properties ---------------------------------------------------------------------------

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=9)
_NAME = st.lists(_WORD, min_size=1, max_size=5)
_ACCENTS = {
    "a": "àâäá",
    "e": "éèêëɛ",
    "i": "îïí",
    "o": "ôöóɔ",
    "u": "ùûüú",
    "c": "ç",
    "n": "ñ",
    "d": "ɖ",
}


@st.composite
def _reaccented(draw: st.DrawFn, name: list[str]) -> str:
    """The same words with accents added on some letters and the case of some changed."""
    out = []
    for word in name:
        letters = []
        for letter in word:
            if letter in _ACCENTS and draw(st.booleans()):
                letter = draw(st.sampled_from(_ACCENTS[letter]))
            if draw(st.booleans()):
                letter = letter.upper()
            letters.append(letter)
        out.append("".join(letters))
    return " ".join(out)


@given(_NAME, _NAME, st.randoms(use_true_random=False))
def test_reordering_the_words_of_either_name_never_lowers_the_score(
    registered: list[str], holder: list[str], rng
) -> None:
    score = name_score(" ".join(registered), " ".join(holder))
    shuffled_registered, shuffled_holder = registered[:], holder[:]
    rng.shuffle(shuffled_registered)
    rng.shuffle(shuffled_holder)
    assert name_score(" ".join(shuffled_registered), " ".join(holder)) >= score
    assert name_score(" ".join(registered), " ".join(shuffled_holder)) >= score


@given(st.data(), _NAME, _NAME)
def test_re_accenting_either_name_never_lowers_the_score(
    data: st.DataObject, registered: list[str], holder: list[str]
) -> None:
    score = name_score(" ".join(registered), " ".join(holder))
    accented_registered = data.draw(_reaccented(registered))
    accented_holder = data.draw(_reaccented(holder))
    assert name_score(accented_registered, " ".join(holder)) >= score
    assert name_score(" ".join(registered), accented_holder) >= score
    # and taking accents away from an accented name gives the score back too
    assert name_score(accented_registered, accented_holder) >= score


@given(st.text(max_size=60), st.text(max_size=60))
def test_the_score_is_within_0_and_100_and_symmetric(registered: str, holder: str) -> None:
    score = name_score(registered, holder)
    assert 0 <= score <= 100
    assert score == name_score(holder, registered)


@given(st.text(min_size=1, max_size=60))
def test_a_name_against_itself_scores_100(name: str) -> None:
    expected = 100 if words(name) else 0  # a name of no letters or digits names nobody
    assert name_score(name, name) == expected
