"""How a household's money reaches CIZO and when it counts: USSD pushes Sika requests,
payments to a kit's merchant reference (the serial) seen in callbacks, and operator
statements. Callbacks are hints; a payment counts only once a status query (or the
operator's own statement) confirms it, and the unique operator reference counts it once.

A push and a statement counted by hand are an agent's signed requests, checked here.
Everything else (callbacks, `sika cizo collections check`) runs as the server, with no
agent: it counts only what the operator itself confirms when asked.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from cizo import payments, registry
from cizo.models import (
    Collection,
    CollectionStatus,
    Kit,
    KitStatus,
    Payment,
    PaymentSource,
    PaymentStatus,
)
from core.authority import SignedRequest, authorize
from core.bounds import MAX_AMOUNT, check_amount
from core.crypto import PiiKeys, load_keys
from core.db import get_sessionmaker, run_in_transaction
from core.errors import ValidationError
from core.logging import get_logger
from core.models import Role
from core.settings import Settings, load_settings
from providers import hints
from providers import registry as providers
from providers.base import (
    CallbackEvent,
    CollectionRequest,
    Kind,
    Outcome,
    ProviderAdapter,
    StatementStatus,
    TransactionResult,
)
from providers.receiver import register_callback_handler

log = get_logger(__name__)

Clock = Callable[[], datetime]
# who may count payments from an operator's statement: it moves money on a file's word
STATEMENT_ROLES = (Role.MAKER, Role.AUDITOR)
_STATUS = {
    Outcome.PENDING: CollectionStatus.PENDING,
    Outcome.UNKNOWN: CollectionStatus.UNKNOWN,
    Outcome.FAILED: CollectionStatus.FAILED,
    Outcome.SUCCEEDED: CollectionStatus.PENDING,  # succeeded only once the payment counts
}


@dataclass
class Outcomes:
    """What a confirmation pass did (for the CLI and the tests)."""

    confirmed: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    sms: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "confirmed": self.confirmed,
            "unconfirmed": self.unconfirmed,
            "failed": self.failed,
            "sms": self.sms,
        }


def _adapter(provider: str, settings: Settings) -> ProviderAdapter:
    """The operator's adapter, waiting no longer than `SIKA_OPERATOR_TIMEOUT` for answers."""
    return providers.load_adapter(provider, settings, read_timeout=settings.operator_timeout)


def _record_payment(
    session: Session,
    *,
    kit: Kit,
    provider: str,
    operator_reference: str,
    sika_reference: str,
    source: PaymentSource,
    amount: int,
    paid_at: datetime,
    collection_id: int | None = None,
    callback_id: int | None = None,
) -> Payment:
    """The payment under (provider, operator reference), inserted once, then locked.

    An unconfirmed row has moved nothing, so it takes the caller's values: whoever confirms
    a payment decides its kit and amount, never an earlier (possibly forged) callback.
    """
    session.execute(
        insert(Payment)
        .values(
            kit_id=kit.id,
            provider=provider,
            operator_reference=operator_reference,
            sika_reference=sika_reference,
            source=source.value,
            status=PaymentStatus.UNCONFIRMED.value,
            collection_id=collection_id,
            callback_id=callback_id,
            amount=amount,
            applied_amount=0,
            excess_amount=0,
            subsidy_amount=0,
            days=0,
            paid_at=paid_at,
        )
        .on_conflict_do_nothing()
    )
    payment = session.scalar(
        select(Payment)
        .where(Payment.provider == provider, Payment.operator_reference == operator_reference)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert payment is not None
    if payment.status == PaymentStatus.UNCONFIRMED:
        payment.kit_id = kit.id
        payment.sika_reference = sika_reference
        payment.source = source.value
        payment.amount = amount
        payment.paid_at = paid_at
        if collection_id is not None:
            payment.collection_id = collection_id
        if callback_id is not None:
            payment.callback_id = callback_id
        session.flush()
    return payment


# --- USSD push collections ---------------------------------------------------------------------


def start_collection(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: PiiKeys,
    request: SignedRequest,
    *,
    serial: str,
    amount: int,
) -> Collection:
    """`sika cizo collect` (maker): ask the household, by USSD push, to pay `amount` for
    its kit; returns the row.

    The row is committed with the request's audit entry before the operator is called, so
    a crash after the push still leaves Sika a reference to query.
    """
    check_amount(amount, "--amount")
    with factory() as session, session.begin():
        agent = authorize(
            session,
            request,
            command="cizo.collect",
            arguments={"serial": serial, "amount": amount},
            roles=registry.FIELD_ROLES,
        )
        kit = registry.get_kit(session, serial)
        if kit.status == KitStatus.UNLOCKED:
            raise ValidationError(f"kit {kit.serial} is paid off: there is nothing to collect")
        collection = Collection(
            reference=f"cizo.c.{secrets.token_hex(6)}",
            kit_id=kit.id,
            provider=kit.operator,
            amount=amount,
            status=CollectionStatus.REQUESTED.value,
            requested_by=agent.id,
        )
        session.add(collection)
        session.flush()
        msisdn = registry.kit_msisdn(kit, keys)
        serial = kit.serial
    adapter = _adapter(collection.provider, settings)
    try:
        result = adapter.request_collection(
            CollectionRequest(
                reference=collection.reference,
                msisdn=msisdn,
                amount=amount,
                message=f"CIZO kit {serial}",
            )
        )
    finally:
        adapter.close()
    with factory() as session, session.begin():
        row = session.get(Collection, collection.id, with_for_update=True)
        assert row is not None
        if row.status == CollectionStatus.REQUESTED:
            row.status = _STATUS[result.outcome].value
            row.operator_reference = result.operator_reference
            row.detail = (result.detail or result.reason or "")[:500] or None
            row.updated_at = registry_now()
        collection = row
    return collection


def registry_now() -> datetime:
    """Sika's clock, for bookkeeping columns (money rules take an injected clock)."""
    return payments.utcnow()


def confirm_collection(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: PiiKeys,
    reference: str,
    *,
    now: Clock = payments.utcnow,
    callback_id: int | None = None,
) -> Outcomes:
    """Query the operator about one push; count the payment when it succeeded."""
    outcomes = Outcomes()
    with factory() as session:
        collection = session.scalar(select(Collection).where(Collection.reference == reference))
    if collection is None:
        raise ValidationError(f"no CIZO collection with the reference {reference!r}")
    if collection.status in (CollectionStatus.SUCCEEDED, CollectionStatus.FAILED):
        return outcomes
    adapter = _adapter(collection.provider, settings)
    try:
        status = adapter.collection_status(reference)
    finally:
        adapter.close()
    notices: list[payments.Notice] = []

    def settle(session: Session) -> None:
        notices.clear()
        row = session.get(Collection, collection.id, with_for_update=True)
        assert row is not None
        if row.status in (CollectionStatus.SUCCEEDED, CollectionStatus.FAILED):
            return
        row.updated_at = registry_now()
        if status.outcome is Outcome.SUCCEEDED and status.amount not in (None, row.amount):
            # the operator confirms another amount than Sika asked for: a human looks
            row.status = CollectionStatus.UNKNOWN.value
            row.detail = f"operator confirms {status.amount} francs, {row.amount} were asked"
            outcomes.unconfirmed.append(reference)
            return
        if status.outcome is Outcome.SUCCEEDED:
            kit = session.get(Kit, row.kit_id)
            assert kit is not None
            payment = _record_payment(
                session,
                kit=kit,
                provider=row.provider,
                operator_reference=status.operator_reference or row.reference,
                sika_reference=row.reference,
                source=PaymentSource.PUSH,
                amount=row.amount,
                paid_at=now(),
                collection_id=row.id,
                callback_id=callback_id,
            )
            notices.extend(payments.apply_payment(session, payment, keys, now=now()))
            row.status = CollectionStatus.SUCCEEDED.value
            row.operator_reference = payment.operator_reference
            outcomes.confirmed.append(reference)
        elif status.outcome is Outcome.FAILED and status.found:
            row.status = CollectionStatus.FAILED.value
            row.detail = (status.detail or status.reason or "")[:500] or None
            outcomes.failed.append(reference)
        else:
            # pending, unknown, or not (yet) known to the operator: ask again later
            outcomes.unconfirmed.append(reference)

    run_in_transaction(factory, settle)
    outcomes.sms = payments.send_notices(settings, notices)
    return outcomes


def wait_for_collection(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: PiiKeys,
    reference: str,
    *,
    timeout: float,
    interval: float = 0.5,
    now: Clock = payments.utcnow,
) -> Outcomes:
    """Query a push until it is final or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        outcomes = confirm_collection(factory, settings, keys, reference, now=now)
        if outcomes.confirmed or outcomes.failed or time.monotonic() >= deadline:
            return outcomes
        time.sleep(interval)


def check_open_collections(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: PiiKeys,
    *,
    now: Clock = payments.utcnow,
) -> Outcomes:
    """Query every push that is not final yet (a cron job, or after a lost callback)."""
    with factory() as session:
        references = list(
            session.scalars(
                select(Collection.reference)
                .where(
                    Collection.status.in_(
                        [
                            CollectionStatus.REQUESTED.value,
                            CollectionStatus.PENDING.value,
                            CollectionStatus.UNKNOWN.value,
                        ]
                    )
                )
                .order_by(Collection.id)
            )
        )
    total = Outcomes()
    for reference in references:
        one = confirm_collection(factory, settings, keys, reference, now=now)
        total.confirmed += one.confirmed
        total.unconfirmed += one.unconfirmed
        total.failed += one.failed
        total.sms += one.sms
    return total


# --- merchant payments (the household pays the kit's serial on its own) -----------------------


def note_merchant_payment(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: PiiKeys,
    event: CallbackEvent,
    *,
    callback_id: int | None = None,
    now: Clock = payments.utcnow,
) -> Outcomes:
    """Keep a callback's hint of a payment to a kit's serial, and count it at once if the
    operator, asked by its own reference, confirms it; otherwise the statement will."""
    if not _worth_a_query(event):
        return Outcomes()
    assert event.operator_reference is not None
    assert event.amount is not None
    return confirm_merchant_payment(
        factory,
        settings,
        keys,
        provider=event.provider,
        operator_reference=event.operator_reference,
        serial=event.sika_reference,
        amount=event.amount,
        callback_id=callback_id,
        now=now,
    )


def _worth_a_query(event: CallbackEvent) -> bool:
    """Whether a callback about a kit's serial says enough to ask the operator about it."""
    return (
        event.outcome is Outcome.SUCCEEDED
        and bool(event.operator_reference)
        and event.amount is not None
        and 0 < event.amount <= MAX_AMOUNT
    )


def _confirms(status: TransactionResult, serial: str, amount: int) -> bool:
    """True when the operator's record is a successful payment of `amount` to `serial`."""
    return (
        status.outcome is Outcome.SUCCEEDED
        and status.found
        and status.reference == serial
        # Flooz does not say the direction; T-Money does, and a payout is never a payment
        and status.kind in (None, Kind.COLLECTION)
        and status.amount == amount
    )


def confirm_merchant_payment(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: PiiKeys,
    *,
    provider: str,
    operator_reference: str,
    serial: str,
    amount: int,
    callback_id: int | None = None,
    now: Clock = payments.utcnow,
) -> Outcomes:
    """Ask the operator about the payment it numbered `operator_reference`, said to be
    `amount` francs to the kit `serial`; count it when the operator confirms all three.

    Whatever the answer, the hint is kept as an unconfirmed payment (a later status query
    or the statement counts it); a payment already counted is never counted again.
    """
    outcomes = Outcomes()
    with factory() as session:
        known = session.scalar(
            select(Payment.status).where(
                Payment.provider == provider, Payment.operator_reference == operator_reference
            )
        )
        if known == PaymentStatus.CONFIRMED or registry.find_kit(session, serial) is None:
            return outcomes
    adapter = _adapter(provider, settings)
    try:
        status = adapter.transaction_status(operator_reference)
    finally:
        adapter.close()
    confirmed = _confirms(status, serial, amount)
    bound = log.bind(provider=provider, reference=serial, operator_reference=operator_reference)
    if not confirmed:
        bound.warning(
            "cizo.merchant_payment.unconfirmed",
            outcome=status.outcome.value,
            found=status.found,
            operator_says=status.reference,
            operator_amount=status.amount,
            amount=amount,
            detail=status.detail,
        )
    notices: list[payments.Notice] = []

    def keep(session: Session) -> None:
        notices.clear()
        outcomes.confirmed.clear()
        outcomes.unconfirmed.clear()
        kit = registry.find_kit(session, serial)
        if kit is None:
            return
        payment = _record_payment(
            session,
            kit=kit,
            provider=provider,
            operator_reference=operator_reference,
            sika_reference=serial,
            source=PaymentSource.MERCHANT,
            amount=amount,
            paid_at=now(),
            callback_id=callback_id,
        )
        if payment.status == PaymentStatus.CONFIRMED:
            return
        if confirmed:
            notices.extend(payments.apply_payment(session, payment, keys, now=now()))
            outcomes.confirmed.append(payment.operator_reference)
        else:
            outcomes.unconfirmed.append(payment.operator_reference)

    run_in_transaction(factory, keep)
    outcomes.sms = payments.send_notices(settings, notices)
    return outcomes


def check_merchant_payments(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: PiiKeys,
    *,
    now: Clock = payments.utcnow,
) -> Outcomes:
    """Ask the operators again about every merchant payment still unconfirmed."""
    with factory() as session:
        rows = session.execute(
            select(
                Payment.provider, Payment.operator_reference, Payment.sika_reference, Payment.amount
            )
            .where(
                Payment.source == PaymentSource.MERCHANT.value,
                Payment.status == PaymentStatus.UNCONFIRMED.value,
            )
            .order_by(Payment.id)
        ).all()
    total = Outcomes()
    for provider, operator_reference, serial, amount in rows:
        one = confirm_merchant_payment(
            factory,
            settings,
            keys,
            provider=provider,
            operator_reference=operator_reference,
            serial=serial,
            amount=amount,
            now=now,
        )
        total.confirmed += one.confirmed
        total.unconfirmed += one.unconfirmed
        total.sms += one.sms
    return total


def statement_digest(data: bytes) -> str:
    """The statement as a signed request names it: the SHA-256 of its bytes (hex)."""
    return hashlib.sha256(data).hexdigest()


def confirm_statement(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: PiiKeys,
    request: SignedRequest,
    *,
    provider: str,
    data: bytes,
    now: Clock = payments.utcnow,
) -> Outcomes:
    """`sika cizo payments confirm` (maker or auditor): count every successful collection
    an operator statement lists for CIZO.

    The statement is the operator's own record, so it confirms merchant payments whose
    callback was only a hint (or never arrived) and pushes whose status stayed unknown.
    Lines already counted are skipped: the operator reference is unique. The request, which
    names the statement by its digest, is recorded once the file reads clean; each line is
    then counted in a transaction of its own, so a run cut short is finished by running it
    again.
    """
    # read whole before anything is recorded: a malformed statement is refused unspent
    lines = providers.adapter_class(provider).parse_statement(data)
    with factory() as session, session.begin():
        authorize(
            session,
            request,
            command="cizo.payments.confirm",
            arguments={"provider": provider, "statement_sha256": statement_digest(data)},
            roles=STATEMENT_ROLES,
        )
    outcomes = Outcomes()
    notices: list[payments.Notice] = []
    for line in lines:
        if line.kind is not Kind.COLLECTION or line.status is not StatementStatus.SUCCEEDED:
            continue

        def count(session: Session, line: Any = line) -> None:
            collection = session.scalar(
                select(Collection)
                .where(Collection.reference == line.sika_reference)
                .with_for_update()
            )
            if collection is not None:
                kit = session.get(Kit, collection.kit_id)
                source = PaymentSource.PUSH
            else:
                kit = registry.find_kit(session, line.sika_reference)
                source = PaymentSource.MERCHANT
            if kit is None or line.amount <= 0:
                return
            if collection is not None and collection.status == CollectionStatus.SUCCEEDED:
                return
            payment = _record_payment(
                session,
                kit=kit,
                provider=provider,
                operator_reference=line.operator_reference,
                sika_reference=line.sika_reference,
                source=source,
                amount=line.amount,
                paid_at=line.at,
                collection_id=collection.id if collection is not None else None,
            )
            if payment.status == PaymentStatus.CONFIRMED:
                return
            # the statement, not the unsigned callback, says how much was paid and when
            payment.amount = line.amount
            payment.paid_at = line.at
            notices.extend(payments.apply_payment(session, payment, keys, now=now()))
            if collection is not None:
                collection.status = CollectionStatus.SUCCEEDED.value
                collection.operator_reference = line.operator_reference
                collection.updated_at = registry_now()
            outcomes.confirmed.append(line.operator_reference)

        run_in_transaction(factory, count)
    log.info(
        "cizo.statement.confirmed",
        provider=provider,
        lines=len(lines),
        confirmed=len(outcomes.confirmed),
        agent=request.agent,
    )
    outcomes.sms = payments.send_notices(settings, notices)
    return outcomes


# --- the callback receiver's hook ---------------------------------------------------------------


def handle_callback(
    event: CallbackEvent,
    callback_id: int,
    *,
    factory: sessionmaker[Session] | None = None,
    settings: Settings | None = None,
    keys: PiiKeys | None = None,
) -> None:
    """Route one operator callback: a push of ours, a payment to a kit serial, or not CIZO's."""
    factory = factory or get_sessionmaker()
    settings = settings or load_settings()
    keys = keys or load_keys(settings)
    with factory() as session, session.begin():
        push = session.scalar(
            select(Collection.id).where(Collection.reference == event.sika_reference)
        )
        kit = None if push is not None else registry.find_kit(session, event.sika_reference)
        if kit is not None and not _worth_a_query(event):
            return  # nothing to ask the operator, so nothing to spend the interval on
        if push is not None:
            subject = f"cizo_collection:{push}"
        elif kit is not None:
            subject = f"cizo_kit:{kit.id}"
        else:
            return  # not CIZO's
        # each hint below costs a query to the operator: one a push or kit per interval,
        # however many callbacks (forged ones included) name it
        claimed = bool(hints.claim(session, [subject], settings.callback_query_interval))
    bound = log.bind(
        provider=event.provider, reference=event.sika_reference, callback_id=callback_id
    )
    if not claimed:
        # a push is still queried by `check_open_collections`, a payment counted from
        # the statement: a coalesced hint is only a query that comes later
        bound.info("cizo.callback.coalesced")
        return
    if push is not None:
        outcomes = confirm_collection(
            factory, settings, keys, event.sika_reference, callback_id=callback_id
        )
    else:
        outcomes = note_merchant_payment(factory, settings, keys, event, callback_id=callback_id)
    bound.info("cizo.callback.handled", **{k: len(v) for k, v in outcomes.as_dict().items()})


def register_handlers() -> None:
    """Subscribe CIZO to the operator callbacks `sika serve` receives."""
    register_callback_handler(handle_callback)
