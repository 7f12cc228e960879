"""Deterministic crash points: a test hook that SIGKILLs a worker at a dangerous moment of
a payout's send (docs/architecture.md#crash-points).

`SIKA_CRASH_POINT` names the moment; the settings refuse it unless `SIKA_ENVIRONMENT=test`,
and `crash_at` checks the environment again before it kills anything. With
`SIKA_CRASH_ONCE` set, only the process that creates that file dies, so a worker restarted
with the same environment runs on and shows what Sika makes of the crash.
"""

from __future__ import annotations

import os
import signal
from typing import Final

from core.logging import get_logger
from core.settings import load_settings

log = get_logger(__name__)

# the moments of a send, in order
CLAIMED: Final = "claimed"  # the line is `submitted` in the database, no request made
EXECUTED: Final = "executed"  # the operator answered the payout request, body unread
ANSWERED: Final = "answered"  # the adapter returned its result, nothing recorded
RECORDED: Final = "recorded"  # the outcome is committed, the message not yet acked
POINTS: Final = (CLAIMED, EXECUTED, ANSWERED, RECORDED)


def crash_at(point: str) -> None:
    """SIGKILL this process if the settings name `point` as the crash point (tests only).

    Costs one attribute read when no crash point is set.
    """
    settings = load_settings()
    if settings.crash_point != point:
        return
    if settings.environment != "test":  # the settings refuse it already; never in production
        return
    if settings.crash_once is not None and not _first(settings.crash_once, point):
        return
    log.warning("crash_point.kill", point=point, pid=os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


def _first(marker: os.PathLike[str], point: str) -> bool:
    """True for the one process that creates `marker`, which then names it and the point."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"{os.getpid()} {point}\n")
        out.flush()
        os.fsync(out.fileno())
    return True
