"""Seasons: rules as data (per-bag amount, bags by area band, regions, budget), the budget
booked in the ledger, and who is owed what.

A rules file is TOML, checked strictly: an unknown key, a negative amount or a band list
that does not end unbounded is refused with the key named. Creating a season allocates
its budget, so it is a treasurer's signed request.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agripme.models import Region, Season
from agripme.registry import find_region
from core.authority import SignedRequest, authorize
from core.bounds import MAX_AMOUNT
from core.errors import LedgerError, NotFoundError, ValidationError
from core.models import Role
from ledger import api as ledger
from ledger.types import AccountKind, AccountSpec, Limit, Result, Transfer
from payouts.batches import committed_total

ALLOCATIONS_ACCOUNT = "treasury:allocations"
SEASON_CREATE = "agripme.season.create"
# no farm takes a million 50 kg bags (50,000 tonnes) of subsidised fertiliser
MAX_BAGS = 1_000_000
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


class Band(BaseModel):
    """Bags for farms smaller than `below_ha` hectares (no bound: every larger farm)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    below_ha: Decimal | None = Field(default=None, gt=0)
    bags: int = Field(ge=0, le=MAX_BAGS)


class SeasonRules(BaseModel):
    """A season's rules as written in its TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_bag: int = Field(gt=0, le=MAX_AMOUNT, description="FCFA per 50 kg bag")
    max_bags: int = Field(gt=0, le=MAX_BAGS)
    budget: int = Field(gt=0, le=MAX_AMOUNT, description="FCFA for the season")
    regions: tuple[Region, ...] | None = None
    bands: tuple[Band, ...] = Field(min_length=1)

    @field_validator("regions", mode="before")
    @classmethod
    def _known_regions(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise ValueError("must be a non-empty list of region names")
        regions = []
        for name in value:
            region = find_region(str(name))
            if region is None:
                known = ", ".join(r.value for r in Region)
                raise ValueError(f"{name!r} is not a region of Togo ({known})")
            regions.append(region)
        return tuple(dict.fromkeys(regions))

    @model_validator(mode="after")
    def _amount_bounded(self) -> SeasonRules:
        # a farmer's payout is at most max_bags bags: it must be an amount Sika can pay
        if self.per_bag * self.max_bags > MAX_AMOUNT:
            raise ValueError(
                f"per_bag x max_bags ({self.per_bag * self.max_bags:,} FCFA, one farmer's"
                f" most) must not exceed {MAX_AMOUNT:,} FCFA (10^15)"
            )
        return self

    @model_validator(mode="after")
    def _bands_end_unbounded(self) -> SeasonRules:
        *bounded, last = self.bands
        if last.below_ha is not None:
            raise ValueError(
                "bands: the last band must have no below_ha (it takes every farm left)"
            )
        previous = Decimal(0)
        for number, band in enumerate(bounded, start=1):
            if band.below_ha is None:
                raise ValueError(f"bands: only the last band may be unbounded (band {number} is)")
            if band.below_ha <= previous:
                raise ValueError(f"bands: below_ha must increase (band {number})")
            previous = band.below_ha
        return self

    def bags_for(self, area_m2: int) -> int:
        """Bags a farm of `area_m2` square metres is entitled to (first band that fits)."""
        for band in self.bands:
            if band.below_ha is None or area_m2 < band.below_ha * 10_000:
                return min(band.bags, self.max_bags)
        raise AssertionError("the last band is unbounded")

    def amount_for(self, area_m2: int) -> int:
        """FCFA a farm of `area_m2` square metres is owed this season."""
        return self.bags_for(area_m2) * self.per_bag

    def as_stored(self) -> dict[str, Any]:
        """The rules as JSON for the database."""
        return self.model_dump(mode="json")


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(
        f"[{part + 1}]" if isinstance(part, int) else str(part) for part in error["loc"]
    ).replace(".[", "[")
    if error["type"] == "extra_forbidden":
        return f"unknown key {location!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"key {location!r}: {message}" if location else message


def parse_rules(data: dict[str, Any], source: str = "rules") -> SeasonRules:
    """Rules from parsed TOML; `ValidationError` naming every bad key."""
    try:
        return SeasonRules.model_validate(data)
    except PydanticError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ValidationError(f"{source}: {problems}") from None


def load_rules(path: Path) -> SeasonRules:
    """Read and check a season's TOML rules file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"rules file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} is not valid TOML: {exc}") from None
    return parse_rules(data, str(path))


def budget_account(code: str) -> str:
    """The ledger account holding a season's allocation."""
    return f"agripme:budget:{code.lower()}"


def scope_of(code: str) -> str:
    """The payout scope of a season: one live line per farmer in it."""
    return f"agripme:{code}"


def season_arguments(code: str, rules: SeasonRules) -> dict[str, Any]:
    """What an `agripme.season.create` request signs: the code and the rules, budget
    included."""
    return {"season": code, "rules": rules.as_stored()}


def create_season(
    session: Session, request: SignedRequest, code: str, rules: SeasonRules
) -> Season:
    """Record the season and book its budget (Treasury allocations → the season's budget),
    at a treasurer's signed request: allocating a budget is the treasurer's."""
    if not _CODE.match(code):
        raise ValidationError(
            "season code: letters, digits, '-' and '_' only, at most 40 characters"
        )
    agent = authorize(
        session,
        request,
        command=SEASON_CREATE,
        arguments=season_arguments(code, rules),
        roles=[Role.TREASURER],
    )
    if session.get(Season, code) is not None:
        raise ValidationError(f"season {code} already exists")
    season = Season(code=code, rules=rules.as_stored(), budget=rules.budget, created_by=agent.id)
    session.add(season)
    try:
        session.flush()
    except IntegrityError:
        raise ValidationError(f"season {code} already exists") from None
    ledger.create_accounts(
        session,
        [
            AccountSpec(ALLOCATIONS_ACCOUNT, AccountKind.EQUITY),
            # the season's payouts can never exceed what was allocated, pending included
            AccountSpec(budget_account(code), AccountKind.LIABILITY, Limit.DEBITS),
        ],
    )
    outcome = ledger.create_transfer(
        session,
        Transfer.single(
            f"agripme:season:{code.lower()}:budget",
            ALLOCATIONS_ACCOUNT,
            budget_account(code),
            rules.budget,
        ),
    )
    if outcome.result is not Result.CREATED:
        raise LedgerError(f"the ledger refused season {code}'s budget: {outcome.result.value}")
    return season


def get_season(session: Session, code: str) -> tuple[Season, SeasonRules]:
    """The season and its parsed rules, or `NotFoundError`."""
    season = session.get(Season, code)
    if season is None:
        raise NotFoundError(f"no season {code}")
    return season, SeasonRules.model_validate(season.rules)


def list_seasons(session: Session) -> Sequence[Season]:
    """Every season, oldest first."""
    return session.scalars(select(Season).order_by(Season.created_at)).all()


def remaining_budget(session: Session, code: str) -> int:
    """What the season can still pay: its budget less what is reserved or paid, less what
    created (not yet dispatched) batches will reserve."""
    available = ledger.balance(session, budget_account(code))
    free = available.credits_posted - available.debits_posted - available.debits_pending
    return free - committed_total(session, scope_of(code))
