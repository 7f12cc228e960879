"""The arithmetic of a PAYG plan and the chèque solaire: how a confirmed payment splits into
what counts, what is refunded, the subsidy it earns, and the days of light it buys.
Pure functions of integers and dates, so the rules are testable without a database.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PlanTerms:
    """A kit's price list: `deposit` before any day, then `per_day` for `term_days` days."""

    deposit: int
    per_day: int
    term_days: int

    @property
    def price(self) -> int:
        """Everything the household owes over the plan."""
        return self.deposit + self.per_day * self.term_days

    def days_for(self, total: int) -> int:
        """Days of credit bought by `total` francs counted so far (deposit first, rest
        carried to the next payment, never more than the term)."""
        if total < self.deposit:
            return 0
        return min(self.term_days, (total - self.deposit) // self.per_day)


@dataclass(frozen=True)
class Split:
    """A payment as the plan counts it.

    Attributes:
        applied: francs of the payment counted against the plan.
        excess: francs paid beyond what was left to pay (owed back to the household).
        subsidy: the chèque solaire earned by this payment.
        days: days of credit this payment adds.
        activates: True when this payment completes the deposit.
        completes: True when nothing is left to pay afterwards.
    """

    applied: int
    excess: int
    subsidy: int
    days: int
    activates: bool
    completes: bool


def add_months(when: datetime, months: int) -> datetime:
    """`when` moved `months` calendar months on, the day clamped to the month's length."""
    month_index = when.month - 1 + months
    year, month = when.year + month_index // 12, month_index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def month_bounds(when: datetime) -> tuple[datetime, datetime]:
    """The calendar month holding `when` (Lomé time is UTC): [first instant, next month)."""
    start = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, add_months(start, 1)


def split_payment(
    terms: PlanTerms,
    *,
    counted: int,
    amount: int,
    activated_at: datetime | None,
    paid_at: datetime,
    monthly_subsidy: int,
    subsidy_months: int,
    subsidy_this_month: int,
    allocation_left: int,
) -> Split:
    """How a confirmed payment of `amount` counts on a kit that has `counted` francs so far.

    The subsidy S = min(P, monthly cap minus what the kit received this calendar month),
    where P is the part of the payment beyond the deposit, only while the payment falls
    within `subsidy_months` of activation, and never beyond what is left to pay or what
    is left of the year's allocation.
    """
    if amount <= 0:
        raise ValueError("a payment amount must be positive")
    left = terms.price - counted
    applied = min(amount, max(left, 0))
    excess = amount - applied
    deposit_left = max(terms.deposit - counted, 0)
    activates = activated_at is None and counted + applied >= terms.deposit
    start = activated_at if activated_at is not None else (paid_at if activates else None)
    subsidy = 0
    beyond_deposit = applied - min(applied, deposit_left)
    if start is not None and beyond_deposit > 0 and paid_at < add_months(start, subsidy_months):
        subsidy = min(
            beyond_deposit,
            max(monthly_subsidy - subsidy_this_month, 0),
            left - applied,
            max(allocation_left, 0),
        )
    after = counted + applied + subsidy
    days = terms.days_for(after) - terms.days_for(counted)
    return Split(applied, excess, subsidy, days, activates, after >= terms.price)
