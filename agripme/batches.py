"""AgriPME payout batches: who is owed what this season, handed to the payout engine.

A farmer already paid, or with a payout in flight, in the season is left out; the batch
is refused when it is over what the season's budget has left. Building one is a maker's
signed request (`agripme.batch.create`); every farmer's wallet is then looked up at the
operator (`payouts.preflight`) before the batch is written, and the maker submits it
(`payouts.batches`). A number found at the other operator is paid there, and the
farmer's operator override in the registry follows it (audited).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from agripme.models import FIRST_NAME, LAST_NAME, PHONE, Farmer, Region
from agripme.registry import find_region
from agripme.seasons import budget_account, get_season, remaining_budget, scope_of
from core.audit import record as audit_record
from core.authority import SignedRequest, authorize
from core.crypto import PiiKeys, load_keys
from core.errors import ValidationError
from core.models import Agent, Role
from core.settings import Settings, load_settings
from payouts.batches import LineSpec, create_batch
from payouts.models import PayoutBatch
from payouts.preflight import (
    PreflightProgress,
    Subject,
    check_no_preflight,
    verdicts_of,
)
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
            "SELECT f.id, f.phone_enc, f.first_name_enc, f.last_name_enc, f.operator,"
            " f.area_m2 FROM farmers f"
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
        name = _name(keys, bytes(row.first_name_enc), bytes(row.last_name_enc))
        lines.append(
            LineSpec(f"farmer:{row.id}", msisdn, route(msisdn, row.operator), amount, name)
        )
        if limit is not None and len(lines) >= limit:
            break
    return lines


def batch_create_arguments(
    code: str, *, region: str | None = None, limit: int | None = None, no_preflight: bool = False
) -> dict[str, Any]:
    """What an `agripme.batch.create` request signs; skipping the pre-flight is signed too."""
    arguments: dict[str, Any] = {"season": code, "region": region, "limit": limit}
    if no_preflight:
        arguments["no_preflight"] = True
    return arguments


def _name(keys: PiiKeys, first_enc: bytes, last_enc: bytes) -> str:
    """A farmer's registered name, given names then family name, as the pre-flight
    compares it with the wallet holder's."""
    ring = keys.keyring
    return f"{ring.decrypt(first_enc, FIRST_NAME)} {ring.decrypt(last_enc, LAST_NAME)}"


def _farmer_id(payee: str) -> int:
    return int(payee.removeprefix("farmer:"))


class FarmerRegistry:
    """The farmer registry as the pre-flight needs it (`payouts.preflight.PayeeRegistry`):
    registered names, and the operator override a ported number moves."""

    def __init__(self, keys: PiiKeys | None = None) -> None:
        self._keys = keys

    @property
    def keys(self) -> PiiKeys:
        """The PII keys, loaded from the settings when first needed (the CLI registers
        the registry before any command has run)."""
        if self._keys is None:
            self._keys = load_keys(load_settings())
        return self._keys

    def names(self, session: Session, payees: Sequence[str]) -> Mapping[str, str | None]:
        """Each farmer's registered name by payee (`farmer:<id>`)."""
        ids = [_farmer_id(p) for p in payees if p.startswith("farmer:")]
        rows = session.execute(
            # one array parameter: a batch of 100,000 lines is past PostgreSQL's 65,535
            # bind parameters as an IN list
            select(Farmer.id, Farmer.first_name_enc, Farmer.last_name_enc).where(
                Farmer.id == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))
            )
        ).all()
        return {f"farmer:{r.id}": _name(self.keys, r.first_name_enc, r.last_name_enc) for r in rows}

    def reroute(self, session: Session, agent: Agent, payee: str, operator: str) -> None:
        """Pay the farmer at `operator` from now on: the registry's operator override,
        changed and audited (the farmer's id and the operators only: no personal data)."""
        farmer = session.get(Farmer, _farmer_id(payee), with_for_update=True)
        if farmer is None:
            return
        before = route(self.keys.keyring.decrypt(farmer.phone_enc, PHONE), farmer.operator)
        if before.value == operator and farmer.operator == operator:
            return
        farmer.operator = operator
        session.flush()
        audit_record(
            session,
            agent,
            REROUTED,
            {"farmer_id": farmer.id, "from": before.value, "to": operator, "why": "ported"},
        )


# the audit log's action when the pre-flight moves a farmer's operator override
REROUTED = "agripme.farmer.rerouted"


@dataclass(frozen=True)
class _Plan:
    maker_id: int
    lines: list[LineSpec]


def _plan(
    factory: sessionmaker[Session],
    request: SignedRequest,
    code: str,
    keys: PiiKeys,
    *,
    region: str | None,
    limit: int | None,
    no_preflight: bool,
    settings: Settings,
) -> _Plan:
    """The maker's request checked and recorded, and the farmers owed (one transaction);
    `no_preflight` refused unless every operator of the batch offers no look-up."""
    with factory() as session, session.begin():
        maker = authorize(
            session,
            request,
            command=BATCH_CREATE,
            arguments=batch_create_arguments(
                code, region=region, limit=limit, no_preflight=no_preflight
            ),
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
                f"the batch would pay {total} FCFA but season {code} has {max(remaining, 0)}"
                " FCFA of budget left; use --limit or --region to make it smaller"
            )
        if no_preflight:
            # refused here, before the request is recorded: nothing is spent or built
            check_no_preflight({line.operator for line in lines}, settings)
        return _Plan(maker.id, lines)



def create_season_batch(
    factory: sessionmaker[Session],
    request: SignedRequest,
    code: str,
    keys: PiiKeys,
    *,
    settings: Settings,
    region: str | None = None,
    limit: int | None = None,
    no_preflight: bool = False,
    on_progress: Callable[[PreflightProgress], Any] | None = None,
    then: Callable[[Session, PayoutBatch], Any] | None = None,
) -> PayoutBatch:
    """Build the season's next batch at a maker's signed request: the request is checked
    and recorded with the list of farmers owed, each farmer's wallet is looked up (no
    transaction is held meanwhile: look-ups are network calls, each committed as it comes,
    so a new request after an interruption continues where it stopped), then the batch is
    written with every line and its verdict, and `then` (the maker's submit) runs in that
    same last transaction. A ported farmer is paid at the other operator and the
    registry's override follows, audited."""
    plan = _plan(
        factory,
        request,
        code,
        keys,
        region=region,
        limit=limit,
        no_preflight=no_preflight,
        settings=settings,
    )
    subjects = [Subject(line.msisdn, line.operator, line.name) for line in plan.lines]
    verdicts = verdicts_of(
        factory, subjects, keys, settings, no_preflight=no_preflight, on_progress=on_progress
    )
    registry = FarmerRegistry(keys)
    with factory() as session, session.begin():
        maker = session.get(Agent, plan.maker_id)
        assert maker is not None
        batch = create_batch(
            session,
            programme="agripme",
            scope=scope_of(code),
            debit_account=budget_account(code),
            description=f"AgriPME {code}",
            notice=NOTICE.replace("{season}", code),
            lines=plan.lines,
            maker=maker,
            keys=keys,
            verdicts=verdicts,
        )
        for spec, verdict in zip(plan.lines, verdicts, strict=True):
            if verdict.operator != spec.operator:
                registry.reroute(session, maker, spec.payee, verdict.operator)
        if then is not None:
            then(session, batch)
        session.expunge(batch)
        return batch
