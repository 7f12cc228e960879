"""Sika's clock: the one place that reads the time for a business decision or a recorded
timestamp (a day's seal, a month's chèque solaire, a year's allocation, who decided when).

It is the wall clock plus `SIKA_CLOCK_OFFSET` seconds, a test hook refused unless
SIKA_ENVIRONMENT=test, so a test can run at 23:59:59 on 31 December whatever the time
is. Lomé is UTC+0 all year, so Sika's day is the UTC calendar day.

PostgreSQL stamps some rows itself with `now()` (a ledger transfer's `created_at` is its
transaction's start, enforced by a trigger), and its clock cannot be moved. Such a stamp
is the wall clock: `sika_time` reads it on Sika's clock, and `database_time` turns an
instant of Sika's clock (a day's bounds, a cut-off) into one to compare with it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from core.settings import load_settings


def offset() -> timedelta:
    """How far Sika's clock is from the wall clock (zero outside tests)."""
    return timedelta(seconds=load_settings().clock_offset)


def now() -> datetime:
    """The current time on Sika's clock, UTC and aware."""
    return datetime.now(UTC) + offset()


def today() -> date:
    """Today on Sika's clock (a Lomé day is a UTC day)."""
    return now().date()


def database_time(at: datetime) -> datetime:
    """The database's instant for `at` on Sika's clock: what to compare with a row the
    database stamped with `now()`."""
    return at - offset()


def sika_time(at: datetime) -> datetime:
    """A time the database stamped with `now()`, read on Sika's clock."""
    return at + offset()
