"""How well a wallet holder's name matches a payee's registered name, as Togolese names are
written.

The operator's look-up returns the name the wallet was opened under; the registry holds the
name the programme enrolled. The same person is written many ways: upper or lower case,
with or without accents (`Essowè`/`ESSOWE`), family name first or last, a given name as an
initial (`K. Mensah`), a middle name left out (`Kossi Mensah` for `Kossi Yao Mensah`), and
the French and Ewe/Kabye spellings of one name (`Kodjo`/`Codjo`, `Dzifa`/`Zifa`,
`Kouassi`/`Kwasi`, `Amah`/`Ama`). A different person must not pass for the holder, not even
a relative who shares the family name (`Komlan Mensah` for `Kossi Mensah`).

How the score is made:

1. Each name is normalised: accents and Ewe letters to ASCII (unidecode: ɖ→d, ɔ→o, ɛ→e,
   ŋ→ng), case folded, anything not a letter or digit (hyphens, dots, apostrophes) made a
   space, then split into words, and each word folded by `FOLDS` (a small table of
   transliteration variants, applied identically to both names), doubled letters made
   single and a final `h` after a vowel dropped.
2. Word order does not count: each word of the shorter name is paired with a different word
   of the longer one so that the pairs' similarities add up to the most. A pair of words
   scores rapidfuzz's `fuzz.ratio` (0..100), except an initial: a one-letter word against a
   word that begins with it scores `INITIAL` (90), an initial against its own letter 100.
3. The mean of those pairs is stretched, so that every point a pair misses costs `STRETCH`
   points: a letter more or less in a name still passes, another given name does not, nor
   a derived one (`Kossiwa` or `Akossiwa` for `Kossi`, `Ablavi` for `Abla`). Each
   word of the longer name left without a pair costs `MISSING_WORD` (a middle name), or
   `MISSING_NAME` when the shorter name is a single word (a name alone identifies nobody).

The score is symmetric, 100 for a name against itself, and by construction does not move
when either name's words are reordered, re-accented or re-cased.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from itertools import permutations

from rapidfuzz import fuzz
from unidecode import unidecode

# Transliteration folds, applied left to right in one pass to each normalised word of both
# names. Each maps the spellings of one sound to a single one; a fold applied to both sides
# never separates two spellings that were equal.
FOLDS: dict[str, str] = {
    "dj": "j",  # Kodjo / Kojo, Adjo / Ajo
    "dz": "z",  # Dzifa / Zifa, Adzoh / Azo
    "ph": "f",  # Philomène / Filomène
    "th": "t",  # Thérèse / Térèse
    "qu": "ku",  # Quassi / Kouassi / Kwasi
    "gn": "ny",  # Gnonam / Nyonam (French gn, Ewe ny)
    "ou": "u",  # Kouami / Kwami, Sossou / Sosu
    "w": "u",  # Kwami / Kuami, Mawuli / Maouli
    "c": "k",  # Codjo / Kodjo (not before e, i, y, nor in ch: see _FOLD)
}
INITIAL = 90  # an initial against a given name that begins with it
STRETCH = 2.0  # each point the words' mean similarity misses costs this many points
MISSING_WORD = 5  # a word of the longer name with no pair (a middle name left out)
MISSING_NAME = 30  # ... when the shorter name is one word: a family name alone
_EXACT_PAIRING_WORDS = 8  # beyond this many words, words are paired greedily

_FOLD = re.compile(r"dj|dz|ph|th|qu|gn|ou|w|c(?![eihy])")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_DOUBLED = re.compile(r"([a-z])\1+")
_FINAL_H = re.compile(r"(?<=[aeiou])h\b")


@lru_cache(maxsize=65_536)
def words(name: str) -> tuple[tuple[str, str], ...]:
    """The normalised words of a name, sorted: (folded word, its first letter unfolded).

    The unfolded first letter lets an initial match a name whose first letter a fold
    changed (`C.` for `Célestin`, folded `celestin`, and for `Codjo`, folded `kojo`).
    """
    text = unicodedata.normalize("NFKC", name or "")
    plain = _NOT_ALNUM.sub(" ", unidecode(text).casefold())
    out: list[tuple[str, str]] = []
    for word in plain.split():
        folded = _FOLD.sub(lambda m: FOLDS[m.group()], word)
        folded = _FINAL_H.sub("", _DOUBLED.sub(r"\1", folded)) or word
        out.append((folded, word[0]))
    return tuple(sorted(out))


def _pair(a: tuple[str, str], b: tuple[str, str]) -> float:
    """Similarity of two normalised words, 0..100."""
    fa, fb = a[0], b[0]
    if fa == fb:
        return 100.0
    short, long_ = (a, b) if len(fa) <= len(fb) else (b, a)
    if len(short[0]) == 1:
        initial = {short[0], short[1]}
        if len(long_[0]) == 1:
            return 100.0 if initial & {long_[0], long_[1]} else 0.0
        return float(INITIAL) if initial & {long_[0][0], long_[1]} else 0.0
    return fuzz.ratio(fa, fb)


def _best_total(shorter: tuple[tuple[str, str], ...], longer: tuple[tuple[str, str], ...]) -> float:
    """The largest sum of similarities pairing each word of `shorter` with a distinct word of
    `longer` (exact for names of up to `_EXACT_PAIRING_WORDS` words, greedy beyond)."""
    sims = [[_pair(s, t) for t in longer] for s in shorter]
    n, m = len(shorter), len(longer)
    if n == 1:
        return max(sims[0])
    if m <= 3:
        return max(sum(sims[i][j] for i, j in enumerate(p)) for p in permutations(range(m), n))
    if m <= _EXACT_PAIRING_WORDS:
        # assignment by dynamic programming over the sets of `longer`'s words used
        best: dict[int, float] = {0: 0.0}
        for row in sims:
            step: dict[int, float] = {}
            for used, total in best.items():
                for j in range(m):
                    if not used & (1 << j):
                        key, value = used | (1 << j), total + row[j]
                        if value > step.get(key, -1.0):
                            step[key] = value
            best = step
        return max(best.values())
    greedy = _greedy(sims)
    if n == m:  # either name may come first: pair from both sides, so the score is symmetric
        greedy = max(greedy, _greedy([list(col) for col in zip(*sims, strict=True)]))
    return greedy


def _greedy(sims: list[list[float]]) -> float:
    """Pairs taken best first (words are sorted, so ties fall the same for any word order)."""
    cells = sorted(
        ((value, i, j) for i, row in enumerate(sims) for j, value in enumerate(row)),
        key=lambda cell: (-cell[0], cell[1], cell[2]),
    )
    rows: set[int] = set()
    cols: set[int] = set()
    total = 0.0
    for value, i, j in cells:
        if i not in rows and j not in cols:
            rows.add(i)
            cols.add(j)
            total += value
    return total


def name_score(registered: str, holder: str) -> int:
    """0..100: how well the wallet holder's name (as the operator returned it, given names
    and family name joined) matches the payee's registered name; see the module's text."""
    a, b = words(registered), words(holder)
    if not a or not b:
        return 0
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    mean = _best_total(shorter, longer) / len(shorter)
    score = 100.0 - STRETCH * (100.0 - mean)
    missing = len(longer) - len(shorter)
    score -= missing * (MISSING_NAME if len(shorter) == 1 else MISSING_WORD)
    return max(0, min(100, round(score)))


def names_match(registered: str, holder: str, threshold: int) -> bool:
    """True when the holder's name scores at least `threshold` against the registered one."""
    return name_score(registered, holder) >= threshold
