"""The auditors' report of a run: a CSV of every break, the JSON summary and one
self-contained HTML page with an inline SVG chart, each with a detached Ed25519 signature.

Reports are signed with the ledger key (`ledger.seals.load_ledger_key`): the key that
already vouches for the books vouches for what was said about them.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.orm import Session

from core import csvsafe, signing
from core.errors import ValidationError
from reconciliation.models import Category
from reconciliation.service import RunSummary

SIGNATURE_SUFFIX = ".sig"
SIGNATURE_VERSION = "sika-report-signature-v1"
CSV_COLUMNS = (
    "category",
    "resolution",
    "line",
    "kind",
    "sika_reference",
    "operator_reference",
    "statement_status",
    "sika_status",
    "statement_amount",
    "ledger_amount",
    "statement_fee",
    "expected_fee",
    "amount",
    "exception_id",
)
_COLOURS = {
    Category.MATCHED: "#2e7d32",
    Category.MISSING_AT_PROVIDER: "#c62828",
    Category.MISSING_IN_LEDGER: "#ad1457",
    Category.AMOUNT_MISMATCH: "#6a1b9a",
    Category.STATUS_MISMATCH: "#283593",
    Category.DUPLICATE_AT_PROVIDER: "#ef6c00",
    Category.REVERSED_AFTER_SUCCESS: "#00838f",
    Category.AGED_PENDING: "#9e9d24",
    Category.FEE_MISMATCH: "#4e342e",
}


def reports_dir(home: Path, summary: RunSummary) -> Path:
    """SIKA_HOME/reports/reconciliation/<provider>/<day>/run-<id>/."""
    return (
        home
        / "reports"
        / "reconciliation"
        / summary.provider
        / summary.day.isoformat()
        / f"run-{summary.run_id}"
    )


def breaks(session: Session, run_id: int) -> list[dict[str, Any]]:
    """Every break of a run, in statement order (Sika's own lines last)."""
    rows = session.execute(
        text(
            f"SELECT {', '.join(CSV_COLUMNS)} FROM recon_breaks WHERE run_id = :run"  # noqa: S608
            " ORDER BY line NULLS LAST, id"
        ),
        {"run": run_id},
    ).mappings()
    return [dict(r) for r in rows]


def open_exceptions(session: Session, provider: str | None = None) -> list[dict[str, Any]]:
    """Exceptions waiting for an auditor (or for a second agent's approval)."""
    rows = session.execute(
        text(
            "SELECT id, provider, day, category, status, amount, sika_reference,"
            " operator_reference, detail, action FROM recon_exceptions"
            " WHERE status IN ('open', 'awaiting_approval')"
            " AND (CAST(:p AS text) IS NULL OR provider = :p) ORDER BY day, provider, id"
        ),
        {"p": provider},
    ).mappings()
    return [{**dict(r), "day": r["day"].isoformat()} for r in rows]


def render_csv(rows: list[dict[str, Any]]) -> bytes:
    """Every break, one per line, with a header."""
    out = io.StringIO()
    writer = csvsafe.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow("" if row[c] is None else row[c] for c in CSV_COLUMNS)
    return out.getvalue().encode("utf-8")


def render_json(summary: RunSummary, exceptions: list[dict[str, Any]]) -> bytes:
    """The run summary (the `--json` shape) with the day's open exceptions."""
    data = {**summary.as_dict(), "exceptions": exceptions}
    data.pop("report", None)
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def chart_svg(counts: dict[str, int], amounts: dict[str, int]) -> str:
    """Horizontal bars of lines by category, with the francs at stake written beside."""
    width, bar_h, gap, label_w = 720, 22, 8, 190
    top = 10
    height = top + len(Category) * (bar_h + gap) + 10
    peak = max([1, *counts.values()])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="chart" role="img" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}"'
        ' aria-label="Statement lines by category">'
    ]
    for i, category in enumerate(Category):
        y = top + i * (bar_h + gap)
        n = counts.get(category, 0)
        length = 0 if n == 0 else max(2, round((width - label_w - 170) * n / peak))
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="13">'
            f"{category.value}</text>"
            f'<rect class="bar" data-category="{category.value}" x="{label_w}" y="{y}"'
            f' width="{length}" height="{bar_h}" fill="{_COLOURS[category]}"/>'
            f'<text x="{label_w + length + 6}" y="{y + 16}" font-size="13">{n} lines ·'
            f" {_fcfa(amounts.get(category, 0))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _fcfa(amount: int) -> str:
    return f"{amount:,}".replace(",", "\u202f") + " FCFA"


def render_html(
    summary: RunSummary, exceptions: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> bytes:
    """One page, no external resource: summary table, chart, open exceptions, breaks."""
    e = html.escape
    fl = summary.as_dict()["float"]
    summary_rows = "".join(
        f"<tr><td>{e(c.value)}</td><td class=n>{summary.counts.get(c, 0)}</td>"
        f"<td class=n>{_fcfa(summary.amounts.get(c, 0))}</td></tr>"
        for c in Category
    )
    exception_rows = (
        "".join(
            f"<tr><td>{x['id']}</td><td>{e(x['category'])}</td><td>{e(x['status'])}</td>"
            f"<td class=n>{_fcfa(int(x['amount']))}</td><td>{e(str(x['detail']))}</td></tr>"
            for x in exceptions
        )
        or '<tr><td colspan="5">No open exception.</td></tr>'
    )
    break_rows = (
        "".join(
            "<tr>"
            + "".join(f"<td>{e('' if r[c] is None else str(r[c]))}</td>" for c in CSV_COLUMNS)
            + "</tr>"
            for r in rows
        )
        or f'<tr><td colspan="{len(CSV_COLUMNS)}">No break.</td></tr>'
    )
    difference = "—" if fl["difference"] is None else f"{fl['difference']:+d} FCFA"
    provider_float = "not available" if fl["provider"] is None else _fcfa(fl["provider"])
    page = f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8">
<title>Sika reconciliation — {e(summary.provider)} {summary.day.isoformat()}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #bbb; padding: 3px 8px; font-size: 13px; }}
td.n {{ text-align: right; }}
</style></head><body>
<h1>Reconciliation of {e(summary.provider)} for {summary.day.isoformat()}</h1>
<p>Run {summary.run_id}: {summary.auto_resolved} breaks resolved automatically,
<strong>{summary.open_exceptions} open exceptions</strong>.</p>
<h2>Summary</h2>
<table><tr><th>category</th><th>lines</th><th>francs</th></tr>{summary_rows}</table>
<table><tr><th>float</th><th>FCFA</th></tr>
<tr><td>ledger</td><td class=n>{_fcfa(fl["ledger"])}</td></tr>
<tr><td>operator</td><td class=n>{provider_float}</td></tr>
<tr><td>difference</td><td class=n>{difference}</td></tr></table>
<h2>Breaks by category</h2>
{chart_svg(summary.counts, summary.amounts)}
<h2>Open exceptions</h2>
<table><tr><th>id</th><th>category</th><th>status</th><th>amount</th><th>detail</th></tr>
{exception_rows}</table>
<h2>Every break</h2>
<table><tr>{"".join(f"<th>{c}</th>" for c in CSV_COLUMNS)}</tr>{break_rows}</table>
</body></html>
"""
    return page.encode("utf-8")


@dataclass(frozen=True)
class Signature:
    """A detached signature file's contents."""

    file: str
    sha256: str
    key: str
    signature: str


def _signed_bytes(name: str, data: bytes) -> bytes:
    return f"{SIGNATURE_VERSION}\n{name}\n{hashlib.sha256(data).hexdigest()}".encode()


def sign_file(path: Path, key: Ed25519PrivateKey) -> Path:
    """Write `<path>.sig`: the key's fingerprint and its signature of the file's hash."""
    data = path.read_bytes()
    signature = {
        "version": SIGNATURE_VERSION,
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "key": signing.fingerprint(key),
        "signature": signing.sign(key, _signed_bytes(path.name, data)),
    }
    target = path.with_name(path.name + SIGNATURE_SUFFIX)
    target.write_text(json.dumps(signature, indent=2) + "\n", encoding="utf-8")
    return target


def verify_file(path: Path, public_key: Ed25519PublicKey) -> tuple[bool, str]:
    """(intact?, why) for a report file and its `.sig` beside it."""
    sig_path = path.with_name(path.name + SIGNATURE_SUFFIX)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read the report {path}: {exc.strerror}") from exc
    try:
        signature = json.loads(sig_path.read_text(encoding="utf-8"))
        value = str(signature["signature"])
    except (OSError, ValueError, KeyError, TypeError):
        return False, f"no readable signature at {sig_path}"
    if signature.get("key") != signing.fingerprint(public_key):
        return False, "signed by another key than this Sika's ledger key"
    if not signing.verify(public_key, _signed_bytes(path.name, data), value):
        return False, "the file or its name changed after it was signed"
    return True, "intact: signed by the ledger key " + signing.fingerprint(public_key)


def write_reports(
    session: Session, home: Path, summary: RunSummary, key: Ed25519PrivateKey
) -> dict[str, str]:
    """Write and sign the run's CSV, JSON and HTML; their paths by format."""
    target = reports_dir(home, summary)
    target.mkdir(parents=True, exist_ok=True)
    rows = breaks(session, summary.run_id)
    exceptions = [
        x for x in open_exceptions(session, summary.provider) if x["day"] == summary.day.isoformat()
    ]
    stem = f"reconciliation-{summary.provider}-{summary.day.isoformat()}"
    files = {
        "csv": (target / f"{stem}.csv", render_csv(rows)),
        "json": (target / f"{stem}.json", render_json(summary, exceptions)),
        "html": (target / f"{stem}.html", render_html(summary, exceptions, rows)),
    }
    paths: dict[str, str] = {}
    for fmt, (path, data) in files.items():
        path.write_bytes(data)
        sign_file(path, key)
        paths[fmt] = str(path)
    return paths
