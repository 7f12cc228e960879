"""What the sandbox's handlers share at run time: its settings, the simulator, bounded body
reading, and the callback sender (asynchronous, never blocking an API answer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request

from core.logging import get_logger
from providers.dialects import Dialect
from providers.msisdn import Operator
from providers.sandbox.faults import FaultProfile
from providers.sandbox.state import Simulator, Transaction

MAX_BODY = 64 * 1024
log = get_logger(__name__)


@dataclass
class Config:
    """How `sika sandbox serve` was started; `reset` returns to these."""

    seed: int = 7
    profile: FaultProfile = field(default_factory=FaultProfile)
    callback_url: str | None = None
    hang_seconds: float = 30.0
    token_ttl_seconds: int = 900
    username: str = "sika"
    password: str = "sika"  # noqa: S105 - the sandbox's documented default
    flooz_key: str = "tlc12345tlc12345tlc12345tlc12345"
    # Which wire both simulators answer in: `clients` is the operators as the public client
    # libraries show them, `model` the wire Sika first modelled. Fixed for the life of the
    # process (a reset keeps it), so a peer never sees the wire change under it.
    dialect: Dialect = Dialect.CLIENTS


class BodyTooLarge(Exception):
    """A request body over `MAX_BODY` bytes."""


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refusing more than `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> Any:
    """The request body as JSON; raises `BodyTooLarge` or `ValueError`."""
    body = await read_body(request)
    return json.loads(body or b"null")


Formatter = Callable[[Transaction], dict[str, Any]]


class Context:
    """The running sandbox: settings, simulator, and callbacks in flight."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sim = Simulator(config.seed, config.profile)
        self.callback_url = config.callback_url
        self.formatters: dict[Operator, Formatter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.callbacks_sent = 0

    def reset(self, seed: int | None = None) -> None:
        """Back to a clean world; callbacks still in flight are cancelled.

        The dialect is the configured one before and after: it is part of how the sandbox
        was started, not of the world it simulates.
        """
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self.sim.reset(self.config.seed if seed is None else seed, self.config.profile)
        self.callback_url = self.config.callback_url

    async def start(self) -> None:
        """Open the callback client."""
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(5.0))

    async def stop(self) -> None:
        """Cancel callbacks in flight and close the client."""
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()

    def flush(self) -> None:
        """Settle what is due and schedule the callbacks of every new final outcome."""
        self.sim.tick()
        for tx in self.sim.take_outbox():
            url = self.callback_url
            if not url or tx.forever_pending:
                continue
            body = self.formatters[tx.operator](tx)
            target = f"{url.rstrip('/')}/{tx.operator}"
            tx.callbacks_scheduled += len(tx.callback_delays)
            for delay in tx.callback_delays:
                task = asyncio.get_running_loop().create_task(self._post(tx, target, body, delay))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _post(self, tx: Transaction, url: str, body: dict[str, Any], delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if self._client is None:
            return
        try:
            await self._client.post(url, json=body)
            self.callbacks_sent += 1
        except httpx.HTTPError as exc:
            log.warning("sandbox.callback_failed", url=url, error=str(exc))
        finally:
            # answered or not, this callback is over: a test waits on this, not on a sleep
            tx.callbacks_delivered += 1

    @property
    def callbacks_in_flight(self) -> int:
        """Callbacks scheduled and not yet over."""
        return len(self._tasks)

    async def ticker(self, every: float = 0.1) -> None:
        """Let time pass: pending transactions resolve and reversals happen unprompted."""
        while True:
            await asyncio.sleep(every)
            try:
                self.flush()
            except Exception as exc:  # the ticker must outlive a bug in one transaction
                log.error("sandbox.tick_failed", error=repr(exc))


def context(request: Request) -> Context:
    """The sandbox context of the app serving `request`."""
    ctx: Context = request.app.state.ctx
    return ctx
