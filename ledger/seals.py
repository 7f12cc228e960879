"""Daily seals: each day's transfers hashed into a chain over the previous seal and signed
with the ledger's Ed25519 key, and the verification that recomputes the whole chain.

Days are Lomé days (Africa/Lome is UTC+0 all year), so a day is a UTC calendar day, on
Sika's clock (core.clock): the database stamps a transfer's `created_at` on the wall
clock, so a day's bounds are turned into the database's time before they are compared.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.orm import Session

from core import clock, signing
from core.errors import LedgerError, ValidationError
from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)

SEAL_VERSION = "sika-ledger-seal-v1"
_STREAM_ROWS = 10_000
SEAL_LOCK = 0x5EA1  # one sealer at a time; writers never take it


def ledger_key_path(settings: Settings) -> Path:
    """SIKA_LEDGER_KEY, else SIKA_HOME/keys/ledger.pem."""
    return settings.ledger_key or settings.home_dir / "keys" / "ledger.pem"


def load_ledger_key(settings: Settings) -> Ed25519PrivateKey:
    """The key that signs seals, created on first use when SIKA_LEDGER_KEY is unset."""
    if settings.ledger_key is not None:
        return signing.load_private_key(settings.ledger_key)
    return signing.load_or_create_private_key(ledger_key_path(settings))


def today_utc() -> dt.date:
    """Today in Lomé, on Sika's clock."""
    return clock.today()


@dataclass(frozen=True)
class Seal:
    """One sealed day."""

    day: dt.date
    transfers: int
    rows_hash: str
    hash: str
    previous: str | None
    signature: str
    key_fingerprint: str
    created: bool = True

    def as_dict(self) -> dict[str, object]:
        """The `sika audit seal --json` shape."""
        return {
            "day": self.day.isoformat(),
            "result": "sealed" if self.created else "already_sealed",
            "transfers": self.transfers,
            "hash": self.hash,
            "previous": self.previous,
            "signature": self.signature,
            "key": self.key_fingerprint,
        }


@dataclass(frozen=True)
class SealReport:
    """The result of recomputing every seal."""

    seals: int
    last_day: dt.date | None
    problems: tuple[str, ...] = field(default_factory=tuple)
    bad_days: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when every seal holds."""
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        """The `sika audit verify --json` shape."""
        return {
            "ok": self.ok,
            "seals": self.seals,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "bad_days": list(self.bad_days),
            "problems": list(self.problems),
        }


def _bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The day's start and end as the database stamps transfers (`created_at`)."""
    start = clock.database_time(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC))
    return start, start + dt.timedelta(days=1)


def rows_digest(session: Session, day: dt.date) -> tuple[int, str]:
    """(count, SHA-256) of the day's transfers in a canonical form, streamed in id order."""
    start, end = _bounds(day)
    digest = hashlib.sha256()
    count = 0
    rows = session.execute(
        text(
            "SELECT id, debit_account_id, credit_account_id, amount, kind,"
            " coalesce(pending_id, ''), timeout,"
            " coalesce(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), ''),"
            " code, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
            " FROM ledger_transfers WHERE created_at >= :start AND created_at < :end"
            ' ORDER BY id COLLATE "C"'
        ).execution_options(stream_results=True, yield_per=_STREAM_ROWS),
        {"start": start, "end": end},
    )
    for row in rows:
        digest.update(("|".join(str(v) for v in row) + "\n").encode())
        count += 1
    return count, digest.hexdigest()


def chain_hash(day: dt.date, transfers: int, rows_hash: str, previous: str | None) -> str:
    """The seal's hash: the day's rows and the previous seal, so one edit breaks the rest."""
    body = f"{SEAL_VERSION}\n{day.isoformat()}\n{transfers}\n{rows_hash}\n{previous or ''}"
    return hashlib.sha256(body.encode()).hexdigest()


def _message(day: dt.date, seal_hash: str) -> bytes:
    return f"{SEAL_VERSION}\n{day.isoformat()}\n{seal_hash}".encode()


def _in_flight_guard(session: Session, day_end: dt.datetime) -> None:
    """Refuse while a transaction that began before the day ended is still open.

    Why this guard and not a lock: a transfer's created_at is its transaction's start time
    (the insert trigger enforces it), so only a transaction that started before the day's
    end can still add a row to the day, and it may commit after we read. If none is open
    now, every row of the day is committed and visible to our next statement (READ
    COMMITTED takes a new snapshot per statement), and none can appear later. Writers are
    never blocked; a long-open transaction only postpones sealing. The check needs to see
    other sessions' xact_start: run sealing as the writers' role, a superuser, or a role
    with pg_read_all_stats. Prepared (two-phase) transactions are refused the same way.
    """
    open_tx = session.execute(
        text(
            "SELECT pid, xact_start FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
            " AND xact_start < :end ORDER BY xact_start LIMIT 1"
        ),
        {"end": day_end},
    ).first()
    if open_tx is not None:
        raise LedgerError(
            f"a transaction open since {open_tx.xact_start:%Y-%m-%d %H:%M:%S} UTC (pid"
            f" {open_tx.pid}) may still add transfers to that day; seal again when it ends"
        )
    prepared = session.execute(
        text("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()")
    ).scalar_one()
    if prepared:
        raise LedgerError("a prepared transaction may still add transfers; seal again later")


def seal_day(
    session: Session, key: Ed25519PrivateKey, day: dt.date | None = None,
    *, today: dt.date | None = None,
) -> Seal:
    """Seal `day` (default: yesterday). Sealing a sealed day answers the existing seal."""
    today = today or today_utc()
    day = day or today - dt.timedelta(days=1)
    if day >= today:
        raise ValidationError(f"cannot seal {day}: only days that have ended can be sealed")
    existing = _seal_rows(session, day, day)
    if existing:
        r = existing[0]
        return Seal(r.day, r.transfers, r.rows_hash, r.hash, r.previous, r.signature,
                    r.key_fingerprint, created=False)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEAL_LOCK})
    later = session.execute(
        text("SELECT max(day) FROM ledger_seals WHERE day > :day"), {"day": day}
    ).scalar_one()
    if later is not None:
        raise ValidationError(
            f"cannot seal {day}: {later} is already sealed and seals only go forward"
        )
    previous = session.execute(
        text("SELECT day, hash FROM ledger_seals ORDER BY day DESC LIMIT 1")
    ).first()
    start, end = _bounds(day)
    gap_from = _bounds(previous.day + dt.timedelta(days=1))[0] if previous else None
    unsealed = session.execute(
        text(
            "SELECT min(created_at) FROM ledger_transfers WHERE created_at < :start"
            " AND (CAST(:gap AS timestamptz) IS NULL OR created_at >= :gap)"
        ),
        {"start": start, "gap": gap_from},
    ).scalar_one()
    if unsealed is not None:
        first = clock.sika_time(unsealed).astimezone(dt.UTC).date()
        raise ValidationError(f"cannot seal {day}: seal {first} first (it has transfers)")
    _in_flight_guard(session, end)
    count, rows_hash = rows_digest(session, day)
    prev_hash = previous.hash if previous else None
    seal_hash = chain_hash(day, count, rows_hash, prev_hash)
    signature = signing.sign(key, _message(day, seal_hash))
    seal = Seal(day, count, rows_hash, seal_hash, prev_hash, signature, signing.fingerprint(key))
    session.execute(
        text(
            "INSERT INTO ledger_seals (day, transfers, rows_hash, hash, previous, signature,"
            " key_fingerprint) VALUES (:day, :transfers, :rows_hash, :hash, :previous,"
            " :signature, :key)"
        ),
        {
            "day": day, "transfers": count, "rows_hash": rows_hash, "hash": seal_hash,
            "previous": prev_hash, "signature": signature, "key": seal.key_fingerprint,
        },
    )
    log.info("ledger.sealed", day=day.isoformat(), transfers=count)
    return seal


def _seal_rows(session: Session, first: dt.date | None, last: dt.date | None) -> list:
    return list(
        session.execute(
            text(
                "SELECT day, transfers, rows_hash, hash, previous, signature, key_fingerprint"
                " FROM ledger_seals WHERE (CAST(:first AS date) IS NULL OR day >= :first)"
                " AND (CAST(:last AS date) IS NULL OR day <= :last) ORDER BY day"
            ),
            {"first": first, "last": last},
        )
    )


def verify_seals(session: Session, public_key: Ed25519PublicKey) -> SealReport:
    """Recompute every seal from today's rows: contents, chain links and signatures.

    `public_key` comes from the configured key, never from the database, so whoever can
    rewrite the tables cannot re-sign them.
    """
    seals = _seal_rows(session, None, None)
    problems: list[str] = []
    bad: list[str] = []

    def flag(day: dt.date, message: str) -> None:
        problems.append(f"{day}: {message}")
        if day.isoformat() not in bad:
            bad.append(day.isoformat())

    prev_hash: str | None = None
    for s in seals:
        count, rows_hash = rows_digest(session, s.day)
        if count != s.transfers:
            flag(s.day, f"sealed {s.transfers} transfers, the table now holds {count}")
        if rows_hash != s.rows_hash:
            flag(s.day, "the day's transfers differ from what was sealed")
        if s.previous != prev_hash:
            flag(s.day, "the chain is broken: the previous seal is missing or was replaced")
        if chain_hash(s.day, s.transfers, s.rows_hash, s.previous) != s.hash:
            flag(s.day, "the seal's hash does not match its own fields")
        if not signing.verify(public_key, _message(s.day, s.hash), s.signature):
            flag(s.day, "the signature does not verify with the configured ledger key")
        prev_hash = s.hash
    if seals:
        # Rows dated before the last seal but in no sealed day were slipped in afterwards.
        sealed_days = [s.day for s in seals]
        stray = session.execute(
            text(
                "SELECT DISTINCT ((created_at + :shift) AT TIME ZONE 'UTC')::date AS day"
                " FROM ledger_transfers WHERE created_at < :end"
                " AND ((created_at + :shift) AT TIME ZONE 'UTC')::date"
                " <> ALL(CAST(:days AS date[])) ORDER BY 1"
            ),
            {"end": _bounds(sealed_days[-1])[1], "days": sealed_days, "shift": clock.offset()},
        ).scalars()
        for day in stray:
            flag(day, "transfers exist in a day before the last seal that was never sealed")
    return SealReport(len(seals), seals[-1].day if seals else None, tuple(problems), tuple(bad))
