"""The SMS gateway simulator: `POST /sms/send` accepts a message for a Togolese number and
keeps it for tests to read back through `GET /_sandbox/sms`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.msisdn import InvalidMsisdn, normalise
from providers.sandbox.runtime import BodyTooLarge, context, read_json


async def send(request: Request) -> Response:
    """`{"to", "message", "reference"}` → `{"id", "status": "accepted"}`."""
    ctx = context(request)
    try:
        body = await read_json(request)
    except BodyTooLarge:
        return JSONResponse({"status": "rejected", "error": "request too large"}, status_code=413)
    except ValueError:
        return JSONResponse({"status": "rejected", "error": "invalid JSON"}, status_code=400)
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return JSONResponse(
            {"status": "rejected", "error": "to and message are required"}, status_code=400
        )
    try:
        to = normalise(str(body.get("to", "")))
    except InvalidMsisdn as exc:
        return JSONResponse({"status": "rejected", "error": str(exc)}, status_code=400)
    sim = ctx.sim
    message_id = f"SMS{len(sim.sms) + 1:08d}"
    sim.sms.append(
        {
            "id": message_id,
            "to": to,
            "message": body["message"],
            "reference": str(body.get("reference", "")),
            "at": sim.clock.now().isoformat(),
        }
    )
    return JSONResponse({"id": message_id, "status": "accepted"})


routes = [Route("/sms/send", send, methods=["POST"])]
