"""The sandbox's Starlette app: Flooz, T-Money, SMS and admin routes over one simulator,
with a background ticker that lets pending transactions resolve and reversals happen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from providers.msisdn import Operator
from providers.sandbox import admin, flooz, sms, tmoney
from providers.sandbox.runtime import Config, Context


def create_app(config: Config | None = None) -> Starlette:
    """A sandbox app; nothing runs until the ASGI server starts it."""
    ctx = Context(config or Config())
    ctx.formatters = {
        Operator.FLOOZ: flooz.callback_body,
        Operator.TMONEY: tmoney.transaction_fields,
    }

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await ctx.start()
        ticker = asyncio.get_running_loop().create_task(ctx.ticker())
        try:
            yield
        finally:
            ticker.cancel()
            await ctx.stop()

    app = Starlette(
        routes=[*flooz.routes, *tmoney.routes, *sms.routes, *admin.routes],
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return app
