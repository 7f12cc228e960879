"""Season rules as data: strict parsing with the bad key named, bands, entitlement."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agripme.seasons import parse_rules
from core.errors import ValidationError
from tests.payout_world import RULES

BASE = tomllib.loads(RULES)


def test_the_issue_example_parses_and_bands_pick_bags():
    rules = parse_rules({**BASE, "regions": ["kara", "SAVANES"]})
    assert [r.value for r in rules.regions or ()] == ["Kara", "Savanes"]
    assert rules.bags_for(9_999) == 1  # 0.9999 ha
    assert rules.bags_for(10_000) == 2  # exactly 1 ha is not below 1.0
    assert rules.bags_for(19_999) == 2
    assert rules.bags_for(45_000) == 3
    assert rules.amount_for(12_500) == 8_000


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"per_bag": -4000}, "'per_bag'"),
        ({"budget": 0}, "'budget'"),
        ({"max_bag": 3}, "unknown key 'max_bag'"),
        ({"regions": ["Lomé"]}, "'regions'"),
        ({"bands": [{"below_ha": 1.0, "bags": 1}]}, "last band must have no below_ha"),
        ({"bands": [{"bags": 1}, {"bags": 2}]}, "only the last band may be unbounded"),
        ({"bands": [{"below_ha": 2, "bags": 1}, {"below_ha": 1, "bags": 2}, {"bags": 3}]},
         "must increase"),
        ({"bands": [{"below_ha": 1, "bags": 1, "bag": 2}, {"bags": 3}]},
         "unknown key 'bands[1].bag'"),
    ],
)
def test_bad_rules_are_refused_naming_the_key(change, named):
    with pytest.raises(ValidationError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_rules({**BASE, **change}, "season.toml")


@given(area=st.integers(min_value=1, max_value=10_000_000), cap=st.integers(1, 5))
def test_entitlement_never_exceeds_the_cap(area, cap):
    rules = parse_rules({**BASE, "max_bags": cap})
    assert 0 <= rules.bags_for(area) <= cap
    assert rules.amount_for(area) == rules.bags_for(area) * rules.per_bag
