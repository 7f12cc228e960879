"""AgriPME payout batches: who is owed what this season, handed to the payout engine.

A farmer already paid, or with a payout in flight, in the season is left out; the batch
is refused when it is over what the season's budget has left. Building one is a maker's
signed request (`agripme.batch.create`); the maker then submits it (`payouts.batches`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from agripme.models import PHONE, Region
from agripme.registry import find_region
from agripme.seasons import budget_account, get_season, remaining_budget, scope_of
from core.authority import SignedRequest, authorize
from core.crypto import PiiKeys
from core.errors import ValidationError
from core.models import Role
from payouts.batches import LineSpec, create_batch
from payouts.models import PayoutBatch
from providers.msisdn import route

BATCH_CREATE = "agripme.batch.create"

# the SMS a farmer receives when paid; `{amount}` and `{reference}` are filled per line
NOTICE = (
    "AgriPME {season} : vous avez reçu {amount} de subvention engrais. "
    "À utiliser chez un agro-dealer agréé. Réf. {reference}"
)


def parse_region(name: str) -> Region:
    """A region by name, case and accents ignored."""
    region = find_region(name)
    if region is None:
        known = ", ".join(r.value for r in Region)
        raise ValidationError(f"--region: {name!r} is not a region of Togo ({known})")
    return region


def owed_lines(
    session: Session,
    code: str,
    keys: PiiKeys,
    *,
    region: str | None = None,
    limit: int | None = None,
) -> list[LineSpec]:
    """One line per eligible farmer not yet paid nor in flight this season, oldest first."""
    _, rules = get_season(session, code)
    regions = list(rules.regions or Region)
    if region is not None:
        wanted = parse_region(region)
        if wanted not in regions:
            raise ValidationError(f"--region: {wanted.value} is not eligible in season {code}")
        regions = [wanted]
    if limit is not None and limit <= 0:
        raise ValidationError("--limit must be a positive number of farmers")
    rows = session.execute(
        text(
            "SELECT f.id, f.phone_enc, f.operator, f.area_m2 FROM farmers f"
            " WHERE f.region = ANY(:regions) AND NOT EXISTS ("
            "   SELECT 1 FROM payout_lines l WHERE l.scope = :scope"
            "   AND l.payee = 'farmer:' || f.id AND l.status <> 'failed')"
            " ORDER BY f.id"
        ).execution_options(yield_per=5000),
        {"regions": [r.value for r in regions], "scope": scope_of(code)},
    )
    lines: list[LineSpec] = []
    for row in rows:
        amount = rules.amount_for(int(row.area_m2))
        if amount <= 0:
            continue
        msisdn = keys.keyring.decrypt(bytes(row.phone_enc), PHONE)
        lines.append(LineSpec(f"farmer:{row.id}", msisdn, route(msisdn, row.operator), amount))
        if limit is not None and len(lines) >= limit:
            break
    return lines


def batch_create_arguments(
    code: str, *, region: str | None = None, limit: int | None = None
) -> dict[str, Any]:
    """What an `agripme.batch.create` request signs."""
    return {"season": code, "region": region, "limit": limit}


def create_season_batch(
    session: Session,
    request: SignedRequest,
    code: str,
    keys: PiiKeys,
    *,
    region: str | None = None,
    limit: int | None = None,
) -> PayoutBatch:
    """Build and write the season's next batch at a maker's signed request; the maker
    submits it next (`payouts.batches.submit_batch`), signing its manifest."""
    maker = authorize(
        session,
        request,
        command=BATCH_CREATE,
        arguments=batch_create_arguments(code, region=region, limit=limit),
        roles=[Role.MAKER],
    )
    lines = owed_lines(session, code, keys, region=region, limit=limit)
    if not lines:
        raise ValidationError(
            f"no farmer is owed anything in season {code}: every eligible farmer is paid "
            "or in flight"
        )
    total = sum(line.amount for line in lines)
    remaining = remaining_budget(session, code)
    if total > remaining:
        raise ValidationError(
            f"the batch would pay {total} FCFA but season {code} has {max(remaining, 0)} FCFA "
            "of budget left; use --limit or --region to make it smaller"
        )
    return create_batch(
        session,
        programme="agripme",
        scope=scope_of(code),
        debit_account=budget_account(code),
        description=f"AgriPME {code}",
        notice=NOTICE.replace("{season}", code),
        lines=lines,
        maker=maker,
        keys=keys,
    )
