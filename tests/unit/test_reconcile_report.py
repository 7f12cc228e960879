"""The report's pieces without a database: the chart's bars, the CSV, and the detached
signature that `sika reconcile verify-report` checks."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from core import signing
from reconciliation import reports
from reconciliation.models import Category
from reconciliation.service import RunSummary


def _summary(counts: dict[str, int]) -> RunSummary:
    full = dict.fromkeys((c.value for c in Category), 0) | counts
    amounts = {c: n * 9000 for c, n in full.items()}
    return RunSummary(3, "flooz", dt.date(2026, 11, 23), full, amounts, 100, 90, 1, 2)


def _bar_widths(svg: str) -> dict[str, int]:
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r'data-category="([a-z_]+)" x="\d+" y="\d+" width="(\d+)"', svg)
    }


def test_chart_has_a_bar_per_category_scaled_to_its_lines() -> None:
    svg = reports.chart_svg(*_pieces({"matched": 100, "fee_mismatch": 10, "aged_pending": 1}))
    widths = _bar_widths(svg)
    assert set(widths) == {c.value for c in Category}
    assert widths["matched"] > widths["fee_mismatch"] > widths["aged_pending"] > 0
    assert widths["missing_in_ledger"] == 0
    # the francs at stake are written beside each bar, French style
    assert "900\u202f000 FCFA" in svg


def test_chart_of_an_empty_day_draws_no_bar() -> None:
    widths = _bar_widths(reports.chart_svg(*_pieces({})))
    assert set(widths.values()) == {0}


def _pieces(counts: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    summary = _summary(counts)
    return summary.counts, summary.amounts


def test_html_is_self_contained_and_escapes_what_it_shows() -> None:
    exception = {
        "id": 1,
        "category": "amount_mismatch",
        "status": "open",
        "amount": 500,
        "detail": "<script>alert(1)</script>",
    }
    page = reports.render_html(_summary({"matched": 2}), [exception], []).decode()
    assert "<svg" in page
    assert "<script>alert" not in page
    assert not re.search(r'(src|href)="https?:', page)


def test_csv_has_the_header_and_one_row_per_break() -> None:
    row = dict.fromkeys(reports.CSV_COLUMNS) | {"category": "fee_mismatch", "amount": 50}
    data = reports.render_csv([row]).decode().splitlines()
    assert data[0] == ",".join(reports.CSV_COLUMNS)
    assert data[1].startswith("fee_mismatch,")
    assert len(data) == 2


def test_signature_round_trip_and_tampering(tmp_path: Path) -> None:
    key = signing.generate_private_key()
    report = tmp_path / "reconciliation-flooz-2026-11-23.json"
    report.write_text('{"open_exceptions": 0}\n')
    sig = reports.sign_file(report, key)
    assert json.loads(sig.read_text())["key"] == signing.fingerprint(key)
    assert reports.verify_file(report, key.public_key())[0]
    # a changed byte, another key, a renamed file or a missing signature: not intact
    report.write_text('{"open_exceptions": 1}\n')
    assert not reports.verify_file(report, key.public_key())[0]
    report.write_text('{"open_exceptions": 0}\n')
    assert not reports.verify_file(report, signing.generate_private_key().public_key())[0]
    renamed = tmp_path / "reconciliation-flooz-2026-11-24.json"
    renamed.write_bytes(report.read_bytes())
    renamed.with_name(renamed.name + ".sig").write_bytes(sig.read_bytes())
    assert not reports.verify_file(renamed, key.public_key())[0]
    sig.unlink()
    ok, why = reports.verify_file(report, key.public_key())
    assert not ok
    assert "signature" in why
