"""`sika providers route` as a user runs it: JSON on stdout, exit 1 with the reason."""

from __future__ import annotations

import json

from tests.conftest import run_sika

ENV = {"SIKA_HOME": "/tmp/sika-route-e2e", "SIKA_LOG_FORMAT": "json"}


def test_route_valid_numbers() -> None:
    flooz = run_sika("providers", "route", "+228 96 00 00 01", "--json", env=ENV)
    assert flooz.code == 0, flooz.stderr
    assert json.loads(flooz.stdout) == {"msisdn": "22896000001", "operator": "flooz"}
    tmoney = run_sika("providers", "route", "90.00.00.01", "--json", env=ENV)
    assert json.loads(tmoney.stdout) == {"msisdn": "22890000001", "operator": "tmoney"}


def test_route_invalid_number_exits_1_with_the_reason() -> None:
    result = run_sika("providers", "route", "+33 6 12 34 56 78", env=ENV)
    assert result.code == 1
    assert result.stdout == ""
    assert "not a Togolese number" in result.stderr
    assert "Traceback" not in result.stderr
