"""SMS gateway client and French-style amounts."""

from __future__ import annotations

import json

import httpx
import pytest

from providers.base import Outcome
from providers.sms import SmsClient, format_fcfa


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0, "0 FCFA"), (900, "900 FCFA"), (9000, "9 000 FCFA"), (2_000_000, "2 000 000 FCFA")],
)
def test_amounts_are_written_the_french_way(amount: int, text: str) -> None:
    assert format_fcfa(amount) == text


def test_send_posts_the_documented_body() -> None:
    seen: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "m-1", "status": "accepted"})

    client = SmsClient("http://sms.test/sms/send", transport=httpx.MockTransport(gateway))
    result = client.send("22890000001", "Vous avez reçu 9 000 FCFA", "AGR-1")
    assert (result.outcome, result.gateway_id) == (Outcome.SUCCEEDED, "m-1")
    assert str(seen[0].url) == "http://sms.test/sms/send"
    assert json.loads(seen[0].content) == {
        "to": "22890000001",
        "message": "Vous avez reçu 9 000 FCFA",
        "reference": "AGR-1",
    }


def test_gateway_errors_are_outcomes() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    client = SmsClient("http://sms.test/x", transport=httpx.MockTransport(down))
    assert client.send("22890000001", "m", "R").outcome is Outcome.UNKNOWN
    refused = SmsClient(
        "http://sms.test/x",
        transport=httpx.MockTransport(lambda r: httpx.Response(400, json={"error": "bad number"})),
    )
    assert refused.send("22890000001", "m", "R").outcome is Outcome.FAILED
