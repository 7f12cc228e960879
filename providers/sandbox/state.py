"""The simulated world behind both operators: clock, wallets, merchant floats, limits and
every transaction executed. Pure and synchronous; the HTTP modules translate to and from
each operator's wire format, and the app drains `outbox` to send callbacks.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from core import clock as sika_clock
from providers.config import SANDBOX_FLOOZ_MSISDN
from providers.msisdn import InvalidMsisdn, Operator, default_operator, normalise
from providers.sandbox.faults import Decision, FaultProfile, Faults
from providers.sandbox.people import holder_name, stranger_name

BALANCE_CAP = 2_000_000  # BCEAO cap on e-money held by an identified client
MERCHANT_MSISDN = {Operator.FLOOZ: SANDBOX_FLOOZ_MSISDN, Operator.TMONEY: "22890999999"}
MERCHANT_NAME = "SIKA"


class WalletStatus(StrEnum):
    """A subscriber's standing at the operator that holds the number."""

    ACTIVE = "active"
    LOCKED = "locked"
    INACTIVE = "inactive"
    UNREGISTERED = "unregistered"


class Kind(StrEnum):
    """What a transaction does, seen from Sika's merchant account."""

    PAYOUT = "payout"  # B2C: float → wallet
    COLLECTION = "collection"  # C2B: wallet → float
    REVERSAL = "reversal"  # the operator takes back an earlier payout


class TxStatus(StrEnum):
    """Where a transaction stands."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Reason(StrEnum):
    """Why a transaction failed; each operator module maps these to its own codes."""

    NOT_REGISTERED = "not_registered"
    LOCKED = "locked"
    INACTIVE = "inactive"
    BALANCE_CAP = "balance_cap"
    ABOVE_MAX = "above_max"
    BELOW_MIN = "below_min"
    DAILY_AMOUNT = "daily_amount"
    MONTHLY_AMOUNT = "monthly_amount"
    DAILY_COUNT = "daily_count"
    MONTHLY_COUNT = "monthly_count"
    FLOAT_INSUFFICIENT = "float_insufficient"
    FUNDS_INSUFFICIENT = "funds_insufficient"


@dataclass
class Limits:
    """Per-wallet limits an operator enforces on payouts (defaults documented here)."""

    min_amount: int = 100
    max_amount: int = 1_000_000
    daily_amount: int = 2_000_000
    monthly_amount: int = 10_000_000
    daily_count: int = 50
    monthly_count: int = 300
    balance_cap: int = BALANCE_CAP


# Test numbers, by the last six digits of the national number, under any prefix.
SUCCEEDS, NOT_REGISTERED, LOCKED = "000001", "000002", "000003"
INACTIVE, AT_CAP, PENDING_FOREVER = "000004", "000005", "000006"
HANGS, REVERSED, CALLBACK_TWICE = "000007", "000008", "000009"
# ... and for the KYC look-up: a wallet in someone else's name, a number held by the other
# operator than its prefix's, a look-up answered only after the client gave up.
SOMEONE_ELSE, PORTED, LOOKUP_HANGS = "000010", "000011", "000012"


class Clock:
    """The sandbox clock: Sika's clock (core.clock: the wall clock, moved by
    SIKA_CLOCK_OFFSET in tests) plus an offset that admin calls move; a new clock, as a
    reset makes, starts where Sika's clock is, so tests and the sandbox agree on the day."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        """The sandbox's current time (UTC, whole seconds)."""
        return self.precise().replace(microsecond=0)

    def precise(self) -> datetime:
        """The sandbox's current time to the microsecond (for short pending delays)."""
        return sika_clock.now() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward (never back: statements and limits would lie)."""
        self.offset += timedelta(seconds=max(0.0, seconds))

    def set(self, when: datetime) -> None:
        """Jump to `when` (UTC when naive)."""
        target = when if when.tzinfo else when.replace(tzinfo=UTC)
        self.offset = target - sika_clock.now()


@dataclass
class Wallet:
    """A subscriber's e-money account at one operator."""

    msisdn: str
    operator: Operator
    status: WalletStatus
    first_name: str
    last_name: str
    balance: int
    credits: list[dict[str, Any]] = field(default_factory=list)
    debits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The KYC name, `First LAST`."""
        return f"{self.first_name} {self.last_name}"

    def as_dict(self) -> dict[str, Any]:
        """The admin view of the wallet."""
        return {
            "msisdn": self.msisdn,
            "operator": str(self.operator),
            "status": str(self.status),
            "name": self.name,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "balance": self.balance,
            "credits": list(self.credits),
            "debits": list(self.debits),
        }


@dataclass
class Transaction:
    """One transaction the operator recorded (payout, collection or reversal)."""

    operator: Operator
    kind: Kind
    operator_reference: str
    reference: str  # Sika's: referenceid / idRequete / externaldata1 / merchant reference
    msisdn: str
    amount: int
    fee: int
    status: TxStatus
    at: datetime
    reason: Reason | None = None
    completed_at: datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    original_operator_reference: str | None = None
    float_after: int | None = None
    resolve_at: datetime | None = None
    forever_pending: bool = False
    callback_delays: tuple[float, ...] = (0.0,)
    reversed_by: str | None = None
    # what the operator saw of it: status queries that found it, callbacks it made
    status_queries: int = 0
    callbacks_scheduled: int = 0
    callbacks_delivered: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view for `/_sandbox/transactions`."""
        data = asdict(self)
        for key in ("at", "completed_at", "resolve_at"):
            value = getattr(self, key)
            data[key] = value.isoformat() if value else None
        for key in ("operator", "kind", "status", "reason"):
            value = getattr(self, key)
            data[key] = str(value) if value is not None else None
        data["callback_delays"] = list(self.callback_delays)
        return data


class Simulator:
    """Everything both operators know; rebuilt from the seed by `reset`."""

    def __init__(self, seed: int, profile: FaultProfile) -> None:
        self.reset(seed, profile)

    def reset(self, seed: int, profile: FaultProfile) -> None:
        """A clean world: no wallets, empty floats, clock back to Sika's clock."""
        self.seed = seed
        self.faults = Faults(profile, seed)
        self.clock = Clock()
        self.limits = {op: Limits() for op in Operator}
        self.wallets: dict[str, Wallet] = {}
        self.floats: dict[Operator, int] = dict.fromkeys(Operator, 0)
        self.transactions: list[Transaction] = []
        self.by_operator_ref: dict[tuple[Operator, str], Transaction] = {}
        self.by_reference: dict[tuple[Operator, str], Transaction] = {}
        self.reversals: list[tuple[datetime, Transaction]] = []
        self.scheduled: list[Transaction] = []  # pending with a resolve_at
        self.outbox: list[Transaction] = []
        self.tokens: dict[str, datetime] = {}
        self.sms: list[dict[str, Any]] = []
        # status queries naming a transaction the operator does not have, by what was asked
        self.unknown_queries: dict[str, int] = {}
        self._seq = 0

    # --- wallets -------------------------------------------------------------------------

    def wallet(self, text: str) -> Wallet:
        """The wallet of a number, created on first sight; raises `InvalidMsisdn`."""
        msisdn = normalise(text)
        found = self.wallets.get(msisdn)
        if found is None:
            found = self._new_wallet(msisdn)
            self.wallets[msisdn] = found
        return found

    def _new_wallet(self, msisdn: str) -> Wallet:
        """A number's wallet, named after the number (`people`), so that the KYC name is the
        one a registry built with `holder_name` holds; the balance depends on the seed."""
        rng = random.Random(f"{self.seed}|wallet|{msisdn}")
        suffix = msisdn[-6:]
        first, last = (stranger_name if suffix == SOMEONE_ELSE else holder_name)(msisdn)
        balance = rng.randrange(0, 50_001, 25)
        status = {
            NOT_REGISTERED: WalletStatus.UNREGISTERED,
            LOCKED: WalletStatus.LOCKED,
            INACTIVE: WalletStatus.INACTIVE,
        }.get(suffix, WalletStatus.ACTIVE)
        if suffix == AT_CAP:
            balance = BALANCE_CAP
        operator = default_operator(msisdn)
        if suffix == PORTED:
            # ported away from the prefix's operator: held, in the same name, by the other
            operator = next(op for op in Operator if op != operator)
        return Wallet(msisdn, operator, status, first, last, balance)

    def put_wallet(self, data: dict[str, Any]) -> Wallet:
        """Create or override a wallet (portability, status, balance, name)."""
        wallet = self.wallet(str(data["msisdn"]))
        if data.get("operator"):
            wallet.operator = Operator(data["operator"])
        if data.get("status"):
            wallet.status = WalletStatus(data["status"])
        if data.get("balance") is not None:
            wallet.balance = int(data["balance"])
        if data.get("name"):
            first, _, last = str(data["name"]).strip().rpartition(" ")
            wallet.first_name, wallet.last_name = (first or last), (last.upper() if first else "")
        return wallet

    def at_cap(self, wallet: Wallet) -> bool:
        """True when the wallet holds its operator's balance cap: it can receive nothing."""
        return wallet.balance >= self.limits[wallet.operator].balance_cap

    def holder(self, operator: Operator, text: str) -> Wallet | None:
        """The wallet if `operator` holds a registered account for the number."""
        try:
            wallet = self.wallet(text)
        except InvalidMsisdn:
            return None
        if wallet.operator != operator or wallet.status == WalletStatus.UNREGISTERED:
            return None
        return wallet

    # --- references ----------------------------------------------------------------------

    def next_ref(self, operator: Operator) -> str:
        """A fresh operator reference (digits, deterministic within a run)."""
        self._seq += 1
        base = 4_100_000_000 if operator == Operator.FLOOZ else 7_200_000_000
        return str(base + self._seq)

    def token(self) -> str:
        """A fresh T-Money bearer token, deterministic within a run."""
        self._seq += 1
        return hashlib.sha256(f"{self.seed}|token|{self._seq}".encode()).hexdigest()

    def find(
        self, operator: Operator, *, reference: str = "", operator_ref: str = ""
    ) -> Transaction | None:
        """A transaction by Sika's reference or the operator's."""
        if operator_ref:
            return self.by_operator_ref.get((operator, operator_ref))
        return self.by_reference.get((operator, reference))

    def queried(self, tx: Transaction | None, asked: str) -> None:
        """Count a status query: on the transaction it found, else by what it asked for."""
        if tx is not None:
            tx.status_queries += 1
        else:
            self.unknown_queries[asked] = self.unknown_queries.get(asked, 0) + 1

    def _record(self, tx: Transaction, *, index: bool = True) -> Transaction:
        self.transactions.append(tx)
        self.by_operator_ref[(tx.operator, tx.operator_reference)] = tx
        if index and tx.kind != Kind.REVERSAL and tx.reference:
            self.by_reference[(tx.operator, tx.reference)] = tx
        return tx

    # --- payouts and collections ---------------------------------------------------------

    def submit(
        self,
        operator: Operator,
        kind: Kind,
        reference: str,
        msisdn: str,
        amount: int,
        payload: dict[str, Any],
        decision: Decision,
        *,
        settle_now: bool = True,
        index: bool = True,
    ) -> Transaction:
        """Record a payout or collection and settle it now, later, or never."""
        now = self.clock.now()
        with contextlib.suppress(InvalidMsisdn):  # an unknown number fails as not registered
            msisdn = normalise(msisdn)
        tx = Transaction(
            operator=operator,
            kind=kind,
            operator_reference=self.next_ref(operator),
            reference=reference,
            msisdn=msisdn,
            amount=amount,
            fee=0,
            status=TxStatus.PENDING,
            at=now,
            payload=dict(payload),
            callback_delays=decision.callback_delays,
        )
        suffix = msisdn[-6:]
        if suffix == CALLBACK_TWICE:
            tx.callback_delays = (0.0, 0.2)
        self._record(tx, index=index)
        if suffix == PENDING_FOREVER:
            tx.forever_pending = True
            tx.callback_delays = ()
        elif decision.pending_seconds is not None:
            tx.resolve_at = self.clock.precise() + timedelta(seconds=decision.pending_seconds)
            self.scheduled.append(tx)
        elif settle_now:
            self._settle(tx)
        else:
            tx.resolve_at = now
            self.scheduled.append(tx)
        return tx

    def _settle(self, tx: Transaction) -> None:
        if tx.kind == Kind.PAYOUT:
            tx.reason = self._payout_refusal(tx)
        else:
            tx.reason = self._collection_refusal(tx)
        now = self.clock.now()
        tx.completed_at = now
        tx.resolve_at = None
        if tx.reason is not None:
            tx.status = TxStatus.FAILED
            tx.float_after = self.floats[tx.operator]
            self.outbox.append(tx)
            return
        wallet = self.wallets[tx.msisdn]
        entry = {
            "reference": tx.reference,
            "operator_reference": tx.operator_reference,
            "amount": tx.amount,
            "at": now.isoformat(),
        }
        if tx.kind == Kind.PAYOUT:
            self.floats[tx.operator] -= tx.amount + tx.fee
            wallet.balance += tx.amount
            wallet.credits.append(entry)
            if tx.msisdn[-6:] == REVERSED:
                midnight = datetime.combine(
                    now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC
                )
                self.reversals.append((midnight, tx))
        else:
            self.floats[tx.operator] += tx.amount
            wallet.balance -= tx.amount
            wallet.debits.append({**entry, "kind": str(Kind.COLLECTION)})
        tx.status = TxStatus.SUCCEEDED
        tx.float_after = self.floats[tx.operator]
        self.outbox.append(tx)

    def _payout_refusal(self, tx: Transaction) -> Reason | None:
        limits = self.limits[tx.operator]
        if tx.amount < limits.min_amount:
            return Reason.BELOW_MIN
        if tx.amount > limits.max_amount:
            return Reason.ABOVE_MAX
        wallet = self.holder(tx.operator, tx.msisdn)
        if wallet is None:
            return Reason.NOT_REGISTERED
        if wallet.status == WalletStatus.LOCKED:
            return Reason.LOCKED
        if wallet.status == WalletStatus.INACTIVE:
            return Reason.INACTIVE
        day_amount, day_count, month_amount, month_count = self._received(wallet)
        if day_count + 1 > limits.daily_count:
            return Reason.DAILY_COUNT
        if day_amount + tx.amount > limits.daily_amount:
            return Reason.DAILY_AMOUNT
        if month_count + 1 > limits.monthly_count:
            return Reason.MONTHLY_COUNT
        if month_amount + tx.amount > limits.monthly_amount:
            return Reason.MONTHLY_AMOUNT
        if wallet.balance + tx.amount > limits.balance_cap:
            return Reason.BALANCE_CAP
        tx.fee = self.faults.profile.fee(tx.amount)
        if self.floats[tx.operator] < tx.amount + tx.fee:
            tx.fee = 0
            return Reason.FLOAT_INSUFFICIENT
        return None

    def _received(self, wallet: Wallet) -> tuple[int, int, int, int]:
        today = self.clock.now().date()
        day_amount = day_count = month_amount = month_count = 0
        for credit in wallet.credits:
            at = datetime.fromisoformat(credit["at"]).date()
            if (at.year, at.month) == (today.year, today.month):
                month_amount += credit["amount"]
                month_count += 1
                if at == today:
                    day_amount += credit["amount"]
                    day_count += 1
        return day_amount, day_count, month_amount, month_count

    def _collection_refusal(self, tx: Transaction) -> Reason | None:
        limits = self.limits[tx.operator]
        if tx.amount < limits.min_amount:
            return Reason.BELOW_MIN
        if tx.amount > limits.max_amount:
            return Reason.ABOVE_MAX
        wallet = self.holder(tx.operator, tx.msisdn)
        if wallet is None:
            return Reason.NOT_REGISTERED
        if wallet.status == WalletStatus.LOCKED:
            return Reason.LOCKED
        if wallet.status == WalletStatus.INACTIVE:
            return Reason.INACTIVE
        if wallet.balance < tx.amount:
            return Reason.FUNDS_INSUFFICIENT
        return None

    # --- time passing --------------------------------------------------------------------

    def tick(self) -> None:
        """Settle pending transactions and execute reversals that are due."""
        now = self.clock.precise()
        due = [tx for tx in self.scheduled if tx.resolve_at is not None and tx.resolve_at <= now]
        if due:
            settled = {id(tx) for tx in due}
            self.scheduled = [tx for tx in self.scheduled if id(tx) not in settled]
            for tx in due:
                self._settle(tx)
        reversals = [(when, tx) for when, tx in self.reversals if when <= now]
        self.reversals = [(when, tx) for when, tx in self.reversals if when > now]
        for when, original in reversals:
            self._reverse(original, when)

    def _reverse(self, original: Transaction, when: datetime) -> None:
        wallet = self.wallets[original.msisdn]
        wallet.balance -= original.amount
        self.floats[original.operator] += original.amount
        tx = Transaction(
            operator=original.operator,
            kind=Kind.REVERSAL,
            operator_reference=self.next_ref(original.operator),
            reference=original.reference,
            msisdn=original.msisdn,
            amount=original.amount,
            fee=0,
            status=TxStatus.SUCCEEDED,
            at=when,
            completed_at=when,
            original_operator_reference=original.operator_reference,
            float_after=self.floats[original.operator],
            callback_delays=(),
        )
        wallet.debits.append(
            {
                "reference": original.reference,
                "operator_reference": tx.operator_reference,
                "amount": original.amount,
                "at": when.isoformat(),
                "kind": str(Kind.REVERSAL),
            }
        )
        original.reversed_by = tx.operator_reference
        self._record(tx)

    def take_outbox(self) -> list[Transaction]:
        """Transactions whose final outcome is to be called back, oldest first."""
        out, self.outbox = self.outbox, []
        return out
