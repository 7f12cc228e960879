"""Callback hints coalesced: however many callbacks name a subject (a payout line, a CIZO
push or kit), at most one status query is made on their word per
`SIKA_CALLBACK_QUERY_INTERVAL`.

A callback is unsigned, so anyone can send a thousand naming the same line; each is still
stored, but only the first of an interval costs the operator a query. The claim is one
conditional upsert in PostgreSQL, so every receiver and worker process agrees without a
memory of its own, and a claim rolls back with the transaction that queues the query.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

# A subject claimed less than `interval` seconds ago is left as it is (and not returned).
_CLAIM = text(
    "INSERT INTO callback_hint_queries AS q (subject, queried_at)"
    " SELECT s, now() FROM unnest(CAST(:subjects AS text[])) AS s"
    " ON CONFLICT (subject) DO UPDATE SET queried_at = EXCLUDED.queried_at"
    " WHERE q.queried_at <= EXCLUDED.queried_at - make_interval(secs => :interval)"
    " RETURNING subject"
)


def claim(session: Session | Connection, subjects: Iterable[str], interval: float) -> set[str]:
    """The `subjects` a status query may be made about now, each recorded as queried.

    A subject is the caller's name for what a callback designates, prefixed by its kind
    (`payout_line:42`), so programmes share the table without knowing one another.

    A concurrent claim of the same subject waits for this transaction and then sees its
    time, so of any number of callbacks racing, one wins the interval.
    """
    # sorted: two claims of several subjects lock them in one order, never deadlocking;
    # distinct: an upsert may not touch one row twice
    ordered = sorted(set(subjects))
    if not ordered:
        return set()
    rows = session.execute(_CLAIM, {"subjects": ordered, "interval": interval})
    return set(rows.scalars())

