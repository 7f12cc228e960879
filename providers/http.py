"""One HTTP exchange with an operator, classified by what may have happened at its end.

The only question that matters after a failure is "could the operator have executed it?":
a connect failure means no byte left, anything later means maybe. Answers are read up to
a size cap so a hostile or broken endpoint cannot exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from core.crash import EXECUTED, crash_at

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 15.0
MAX_ANSWER_BYTES = 256 * 1024


class ExchangeFailed(Exception):
    """No usable HTTP answer. `sent` is False only when the request surely never left."""

    def __init__(self, detail: str, *, sent: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.sent = sent


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read in full (below the cap)."""

    status: int
    body: bytes
    content_type: str


def build_client(
    base_url: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An httpx client with explicit timeouts; `transport` lets tests stand in for the operator."""
    timeout = httpx.Timeout(
        connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
    )
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
        trust_env=False,
    )


def exchange(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    max_bytes: int = MAX_ANSWER_BYTES,
    payout: bool = False,
    **kwargs: Any,
) -> Answer:
    """Send one request and read its answer, or raise `ExchangeFailed` saying whether it left.

    `payout` marks the request that moves money (an adapter's `payout` passes it): a 2xx
    status line arriving for it is the moment the operator took it while Sika knows
    nothing yet, the `executed` crash point of the tests (`core.crash`). A gateway's 401
    or 403, refusing a token before the operator saw anything, is not that moment.
    """
    try:
        with client.stream(method, url, **kwargs) as response:
            if payout and response.is_success:
                crash_at(EXECUTED)
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ExchangeFailed(f"answer of {declared} bytes exceeds {max_bytes}", sent=True)
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ExchangeFailed(f"answer longer than {max_bytes} bytes", sent=True)
                chunks.append(chunk)
            return Answer(
                response.status_code, b"".join(chunks), response.headers.get("content-type", "")
            )
    # ConnectError/ConnectTimeout/PoolTimeout are raised before any byte is written: the
    # operator cannot have seen the request. Every other transport error (ReadTimeout,
    # WriteError, RemoteProtocolError, ReadError...) may come after it executed.
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise ExchangeFailed(f"not sent: {type(exc).__name__}: {exc}", sent=False) from exc
    except httpx.TransportError as exc:
        raise ExchangeFailed(f"no answer: {type(exc).__name__}: {exc}", sent=True) from exc
    except httpx.HTTPError as exc:
        raise ExchangeFailed(f"unusable answer: {type(exc).__name__}: {exc}", sent=True) from exc
