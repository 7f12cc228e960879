"""Admin endpoints under `/_sandbox/…`: what tests and rehearsals use to set the scene
(wallets, floats, faults, clock, callback URL) and to read back what happened.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.msisdn import InvalidMsisdn, Operator
from providers.sandbox import statements
from providers.sandbox.faults import FaultProfileError, Faults, load_profile
from providers.sandbox.runtime import BodyTooLarge, Context, context, read_json
from providers.sandbox.state import Kind, Limits, WalletStatus


class BadRequest(Exception):
    """An admin request this sandbox refuses, with the reason."""


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await read_json(request)
    except BodyTooLarge as exc:
        raise BadRequest("request too large") from exc
    except ValueError as exc:
        raise BadRequest("invalid JSON") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest("a JSON object is expected")
    return body


def _operator(value: Any) -> Operator:
    try:
        return Operator(str(value))
    except ValueError as exc:
        raise BadRequest("operator must be flooz or tmoney") from exc


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{key} must be an integer")
    return value


def _handled(
    handler: Any,
) -> Any:
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request, context(request))
        except BadRequest as exc:
            return _error(str(exc))
        except (InvalidMsisdn, FaultProfileError) as exc:
            return _error(str(exc))

    wrapper.__name__ = handler.__name__
    return wrapper


async def health(request: Request, ctx: Context) -> Response:
    """Liveness, seed, dialect, profile and clock."""
    return JSONResponse(
        {
            "status": "ok",
            "seed": ctx.sim.seed,
            "dialect": str(ctx.config.dialect),
            "faults": ctx.sim.faults.profile.name,
            "now": ctx.sim.clock.now().isoformat(),
        }
    )


async def reset(request: Request, ctx: Context) -> Response:
    """`{"seed"?}`: a clean world with the start-up profile and callback URL, in the
    dialect the sandbox was started with."""
    body = await _body(request)
    seed = _int(body, "seed") if "seed" in body else None
    ctx.reset(seed)
    return JSONResponse({"status": "ok", "seed": ctx.sim.seed, "dialect": str(ctx.config.dialect)})


async def faults(request: Request, ctx: Context) -> Response:
    """GET the profile; POST `{"profile": name|object}` or a profile object to change it."""
    if request.method == "POST":
        body = await _body(request)
        spec = body.get("profile", body)
        if isinstance(spec, str) and spec not in ("none", "flaky", "hostile"):
            raise BadRequest("profile must be none, flaky, hostile or a profile object")
        if not isinstance(spec, str | dict):
            raise BadRequest("profile must be a name or an object")
        ctx.sim.faults = Faults(load_profile(spec), ctx.sim.seed)
    return JSONResponse(ctx.sim.faults.profile.as_dict())


async def callback_url(request: Request, ctx: Context) -> Response:
    """`{"url": "http://…" | null}`: where final outcomes are POSTed (`{url}/flooz`…)."""
    body = await _body(request)
    url = body.get("url")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise BadRequest("url must be an http(s) URL or null")
    ctx.callback_url = url or None
    return JSONResponse({"url": ctx.callback_url})


async def clock(request: Request, ctx: Context) -> Response:
    """GET the sandbox time; POST `{"advance_seconds": n}` or `{"now": iso}`."""
    if request.method == "POST":
        body = await _body(request)
        if "advance_seconds" in body:
            seconds = body["advance_seconds"]
            if not isinstance(seconds, int | float) or seconds < 0:
                raise BadRequest("advance_seconds must be a non-negative number")
            ctx.sim.clock.advance(seconds)
        elif "now" in body:
            try:
                ctx.sim.clock.set(datetime.fromisoformat(str(body["now"])))
            except ValueError as exc:
                raise BadRequest("now must be an ISO 8601 date-time") from exc
        else:
            raise BadRequest("advance_seconds or now is required")
        ctx.flush()
    return JSONResponse({"now": ctx.sim.clock.now().isoformat()})


async def wallet(request: Request, ctx: Context) -> Response:
    """A wallet by number, in any form `normalise` accepts."""
    ctx.flush()
    return JSONResponse(ctx.sim.wallet(request.path_params["msisdn"]).as_dict())


async def put_wallet(request: Request, ctx: Context) -> Response:
    """`{"msisdn", "operator"?, "status"?, "balance"?, "name"?}`: create or override."""
    body = await _body(request)
    if "msisdn" not in body:
        raise BadRequest("msisdn is required")
    if body.get("operator"):
        _operator(body["operator"])
    if body.get("status") and body["status"] not in {str(s) for s in WalletStatus}:
        raise BadRequest("status must be one of " + ", ".join(WalletStatus))
    if body.get("balance") is not None:
        _int(body, "balance")
    return JSONResponse(ctx.sim.put_wallet(body).as_dict())


async def floats(request: Request, ctx: Context) -> Response:
    """GET both floats; POST `{"operator", "amount"}` tops one up."""
    if request.method == "POST":
        body = await _body(request)
        operator = _operator(body.get("operator"))
        amount = _int(body, "amount")
        if amount <= 0:
            raise BadRequest("amount must be positive")
        ctx.sim.floats[operator] += amount
    return JSONResponse({str(op): value for op, value in ctx.sim.floats.items()})


async def statement(request: Request, ctx: Context) -> Response:
    """`/statements/{operator}/{YYYY-MM-DD}` in that operator's CSV format."""
    operator = _operator(request.path_params["operator"])
    try:
        day = date.fromisoformat(request.path_params["day"])
    except ValueError as exc:
        raise BadRequest("day must be YYYY-MM-DD") from exc
    ctx.flush()
    return Response(
        statements.statement(ctx.sim, operator, day), media_type="text/csv; charset=utf-8"
    )


async def sms(request: Request, ctx: Context) -> Response:
    """Every message the SMS gateway accepted."""
    return JSONResponse(ctx.sim.sms)


async def pay(request: Request, ctx: Context) -> Response:
    """`{"msisdn", "amount", "merchant_reference", "operator"?}`: a subscriber pays Sika.

    Many payments share one merchant reference, so the payment is found again only by the
    operator's reference (Flooz `transid`, T-Money `refTmoney`), as the callback gives it.
    """
    body = await _body(request)
    amount = _int(body, "amount")
    if amount <= 0:
        raise BadRequest("amount must be positive")
    reference = str(body.get("merchant_reference", ""))
    if not reference:
        raise BadRequest("merchant_reference is required")
    sim = ctx.sim
    holder = sim.wallet(str(body.get("msisdn", "")))
    operator = _operator(body["operator"]) if body.get("operator") else holder.operator
    decision = sim.faults.decide(f"{operator}|pay|{reference}")
    tx = sim.submit(
        operator,
        Kind.COLLECTION,
        reference,
        holder.msisdn,
        amount,
        {"refCommande": reference, "description": "paiement marchand"},
        decision,
        index=False,
    )
    ctx.flush()
    return JSONResponse(tx.as_dict())


async def transactions(request: Request, ctx: Context) -> Response:
    """Everything recorded, oldest first; `?operator=` filters."""
    ctx.flush()
    wanted = request.query_params.get("operator")
    op = _operator(wanted) if wanted else None
    return JSONResponse(
        [tx.as_dict() for tx in ctx.sim.transactions if op is None or tx.operator == op]
    )


async def activity(request: Request, ctx: Context) -> Response:
    """What the operators were asked and told: callbacks still in flight, callbacks made,
    and status queries naming a transaction they do not have, by what was asked
    (`<operator>:<reference>`); each transaction counts the queries that found it."""
    ctx.flush()
    return JSONResponse(
        {
            "callbacks_in_flight": ctx.callbacks_in_flight,
            "callbacks_sent": ctx.callbacks_sent,
            "unknown_queries": dict(ctx.sim.unknown_queries),
        }
    )


async def expire_tokens(request: Request, ctx: Context) -> Response:
    """Every T-Money token stops working now."""
    ctx.sim.tokens.clear()
    return JSONResponse({"status": "ok"})


async def limits(request: Request, ctx: Context) -> Response:
    """GET the limits; POST `{"operator"?, <limit>: n…}` overrides some (both operators
    when no operator is named) until the next reset."""
    if request.method == "POST":
        body = await _body(request)
        ops = [_operator(body.pop("operator"))] if body.get("operator") else list(Operator)
        body.pop("operator", None)
        known = set(Limits.__dataclass_fields__)
        unknown = sorted(set(body) - known)
        if unknown:
            raise BadRequest("unknown limits: " + ", ".join(unknown))
        for key in body:
            _int(body, key)
        for op in ops:
            for key, value in body.items():
                setattr(ctx.sim.limits[op], key, value)
    return JSONResponse({str(op): vars(lim) for op, lim in ctx.sim.limits.items()})


routes = [
    Route("/_sandbox/health", _handled(health), methods=["GET"]),
    Route("/_sandbox/reset", _handled(reset), methods=["POST"]),
    Route("/_sandbox/faults", _handled(faults), methods=["GET", "POST"]),
    Route("/_sandbox/callback-url", _handled(callback_url), methods=["POST"]),
    Route("/_sandbox/clock", _handled(clock), methods=["GET", "POST"]),
    Route("/_sandbox/wallets", _handled(put_wallet), methods=["POST"]),
    Route("/_sandbox/wallets/{msisdn}", _handled(wallet), methods=["GET"]),
    Route("/_sandbox/float", _handled(floats), methods=["GET", "POST"]),
    Route("/_sandbox/statements/{operator}/{day}", _handled(statement), methods=["GET"]),
    Route("/_sandbox/sms", _handled(sms), methods=["GET"]),
    Route("/_sandbox/pay", _handled(pay), methods=["POST"]),
    Route("/_sandbox/transactions", _handled(transactions), methods=["GET"]),
    Route("/_sandbox/activity", _handled(activity), methods=["GET"]),
    Route("/_sandbox/tmoney/expire-tokens", _handled(expire_tokens), methods=["POST"]),
    Route("/_sandbox/limits", _handled(limits), methods=["GET", "POST"]),
]
